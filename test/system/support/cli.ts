import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, inject, vi } from 'vitest';
import { runCli } from '../../../src/cli/index.js';
import { recordSecrets } from '../../support/harness.js';

/*
 * The CLI as its tests drive it: most commands in-process through runCli (the entry point the
 * binary calls, so the same parsing, domain code and exit codes, without a process start per
 * command), and the real binary where the process itself is the point (exit codes, stdin).
 */

const BIN = path.resolve('bin/keyplane.js');

/**
 * Points this file's process at the run's database (Postgres, or an embedded directory of its own)
 * for the whole file. Each test file runs in its own worker process, so changing its environment is
 * safe.
 */
export function useCliDatabase(label: string) {
  const tmp = mkdtempSync(path.join(tmpdir(), `keyplane-${label}-`));
  const url = inject('databaseUrl');
  const env: Record<string, string> = url ? { DATABASE_URL: url } : { DATA_DIR: path.join(tmp, 'data') };
  beforeAll(() => {
    delete process.env.DATABASE_URL;
    Object.assign(process.env, env, { LOG_LEVEL: 'silent' });
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  return { tmp, env };
}

/** Runs one CLI command in-process, capturing what it prints (secrets in it join the leak check). */
export async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    const code = await runCli(args);
    recordSecrets(stdout);
    return { code, stdout, stderr, json: () => JSON.parse(stdout) };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** Runs the real binary in a child process, with `input` on its standard input. */
export function spawnCli(env: Record<string, string>, args: string[], input: string) {
  return new Promise<{ code: number; stdout: string }>((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, LOG_LEVEL: 'silent' }, timeout: 90_000 }, (e, stdout) => {
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout });
    });
    child.stdin!.end(input);
  });
}
