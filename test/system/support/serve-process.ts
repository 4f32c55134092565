import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { inject } from 'vitest';

/*
 * `keyplane serve` as a child process whose log lines a test reads as they come (the start-up
 * banner, retry lines), with only the environment given (no inherited DATABASE_URL, HOST or token).
 * Every line also goes to the run's log directory, where teardown greps for leaked secrets.
 */

const BIN = path.resolve('bin/keyplane.js');
let started = 0;

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface ServeProcess {
  child: ChildProcess;
  lines: LogLine[];
  /** The first log line (seen or still to come) that `match` accepts; rejects if the process exits first. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

export function serve(env: Record<string, string>): ServeProcess {
  const logFile = path.join(inject('runDir'), 'logs', `serve-${process.pid}-${++started}.log`);
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  const take = (text: string) => {
    appendFileSync(logFile, `${text}\n`);
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      lines.push({ level: 50, msg: text });
    }
    for (const w of waiters) w();
  };
  createInterface({ input: child.stdout! }).on('line', take);
  createInterface({ input: child.stderr! }).on('line', take);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of waiters) w();
  });
  function waitFor(match: (l: LogLine) => boolean, timeoutMs = 60_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`no such log line within ${timeoutMs} ms; lines: ${JSON.stringify(lines.map((l) => l.msg))}`)), timeoutMs);
      const check = () => {
        const found = lines.find(match);
        if (found) finish(null, found);
        else if (done) finish(new Error(`keyplane exited (${child.exitCode}) first; lines: ${JSON.stringify(lines.map((l) => l.msg))}`));
      };
      function finish(err: Error | null, line?: LogLine) {
        clearTimeout(timer);
        waiters.delete(check);
        if (err) reject(err);
        else resolve(line!);
      }
      waiters.add(check);
      check();
    });
  }
  return {
    child,
    lines,
    waitFor,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

export const isBanner = (l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('keyplane ready');
