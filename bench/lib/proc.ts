import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

/*
 * Child processes of the bench: keyplane and the baseline each run in their own process, so the
 * RSS and CPU sampled from /proc are the server's own, never the load generator's.
 */

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** The child's stderr (and stdout), kept for the error message when it dies. */
  output(): string;
  stop(): Promise<void>;
}

/** A free TCP port on loopback, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node [args]` with the given environment. `detached` puts it in its own process group, so
 * stop() can end it and anything it started (npm start → sh → node) by that group's id alone.
 */
export function startChild(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Child {
  const proc = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const keep = (b: Buffer) => {
    // Bounded: a chatty child must not grow the bench's own memory.
    out = (out + b.toString()).slice(-20_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    name,
    proc,
    pid: proc.pid!,
    output: () => out,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      try {
        process.kill(-proc.pid!, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-proc.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls url until it answers 200; returns the milliseconds from `since` to that answer. */
export async function waitForOk(url: string, child: Child, since: number, timeoutMs = 60_000): Promise<number> {
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`${child.name} exited (${child.proc.exitCode}):\n${child.output()}`);
    try {
      const res = await fetch(url);
      if (res.status === 200) return performance.now() - since;
    } catch {
      /* not listening yet */
    }
    if (performance.now() - since > timeoutMs) throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms:\n${child.output()}`);
    // 10 ms polling resolves the cold start well below the 5 s target without loading the CPU.
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Peak resident set (VmHWM) and current RSS of a process, in MB, from /proc. */
export function memoryOf(pid: number): { peakMb: number; rssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { peakMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  return ticksOf(readFileSync(`/proc/${pid}/stat`, 'utf8')) / 100; // USER_HZ is 100 on Linux.
}

function ticksOf(stat: string): number {
  // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** CPU ticks so far of each process named `postgres`, by pid. */
export type PostgresCpu = Map<number, number>;

/**
 * The CPU ticks of every process named `postgres` (the postmaster and its backends, the WAL writer,
 * the checkpointer, autovacuum workers): over a run, the database's share of the machine.
 */
export function postgresCpu(): PostgresCpu {
  const ticks: PostgresCpu = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === 'postgres') ticks.set(Number(entry), ticksOf(stat));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return ticks;
}

/**
 * CPU seconds the Postgres processes used since `before`, per process: one that started meanwhile
 * counts in full; one that exited meanwhile (an autovacuum worker, a closed backend) is missing
 * from both ends rather than subtracted, which a difference of two totals did (a negative figure).
 */
export function postgresCpuSecondsSince(before: PostgresCpu): number {
  let ticks = 0;
  for (const [pid, now] of postgresCpu()) ticks += now - (before.get(pid) ?? 0);
  return ticks / 100;
}
