import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { EXIT, exitStatusOf } from '../../src/cli/exit-codes.js';
import { buildCli } from '../../src/cli/index.js';
import { freePort } from './support/cluster.js';
import { cli, spawnCli, useCliDatabase } from './support/cli.js';

/*
 * The CLI's contract with a script (issue 31, item 6): --version, one exit status per kind of
 * outcome (src/cli/exit-codes.ts), and with --json every error as {"error":{"code","message"}}
 * carrying its real code, never SQL or a stack.
 */

const { tmp, env } = useCliDatabase('cli-exit');
const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const NO_SUCH_ID = '00000000-0000-4000-8000-000000000000';

/** Runs `fn` with some variables of this process's environment replaced (undefined = removed). */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, value] of Object.entries(v)) if (value === undefined) delete process.env[k];
    else process.env[k] = value;
  };
  apply(vars);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}

/** An error answer: its exit status and its one JSON object, with nothing that looks like SQL or a stack. */
async function failure(args: string[]) {
  const res = await cli([...args, '--json']);
  const lines = res.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const body = JSON.parse(lines[0]!) as { error: { code: string; message: string } };
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
  expect(res.stdout + res.stderr).not.toMatch(/\bselect\b|\bfrom "|Failed query|\n\s+at /i);
  return { code: res.code, error: body.error, stderr: res.stderr };
}

describe('keyplane exit codes and --json errors', () => {
  it('--version prints package.json version and exits 0', async () => {
    for (const flag of ['--version', '-V']) {
      const res = await cli([flag]);
      expect(res.code).toBe(0);
      expect(res.stdout.trim()).toBe(VERSION);
    }
  });

  it('a malformed id is a validation error (2), never a query; an unknown one not_found (1)', async () => {
    expect((await cli(['bootstrap', '--json'])).code).toBe(0);
    for (const args of [
      ['service-keys', 'list', '--account', 'not-a-uuid'],
      ['service-keys', 'revoke', "1' or '1'='1"],
      ['api-keys', 'create', '--account', 'nope'],
      ['keys', 'show', '42'],
      ['accounts', 'set-reuse-reaction', 'x', 'report'],
      ['audit', 'export', '--account', 'nope'],
    ]) {
      const f = await failure(args);
      expect({ args, code: f.code, error: f.error.code }).toEqual({ args, code: EXIT.usage, error: 'validation_error' });
      expect(f.error.message).toMatch(/must be a UUID/);
    }
    for (const args of [['service-keys', 'rotate', NO_SUCH_ID], ['keys', 'show', NO_SUCH_ID], ['keys', 'list', '--account', NO_SUCH_ID]]) {
      expect(await failure(args)).toMatchObject({ code: EXIT.no, error: { code: 'not_found', message: 'not found' } });
    }
  });

  it('usage errors exit 2 with code usage_error, also for a group without its subcommand', async () => {
    expect(await failure(['no-such-command'])).toMatchObject({ code: EXIT.usage, error: { code: 'usage_error' } });
    expect(await failure(['service-keys', 'create'])).toMatchObject({ code: EXIT.usage, error: { code: 'usage_error' } });
    expect(await failure(['keys', 'list', '--account', NO_SUCH_ID, '--status', 'maybe'])).toMatchObject({ code: EXIT.usage, error: { code: 'validation_error' } });
    expect(await failure(['verify', 'k', '--verb', 'fly'])).toMatchObject({ code: EXIT.usage });
  });

  it('every leaf command takes --json', async () => {
    const leaves = (c: Command, prefix: string[]): string[][] =>
      c.commands.flatMap((sub) => (sub.commands.length > 0 ? leaves(sub, [...prefix, sub.name()]) : [[...prefix, sub.name()]]));
    const program = buildCli();
    const all = leaves(program, []);
    expect(all.length).toBeGreaterThan(20);
    const find = (names: string[]) => names.reduce((c, n) => c.commands.find((s) => s.name() === n)!, program);
    expect(all.filter((names) => !find(names).options.some((o) => o.long === '--json'))).toEqual([]);
    // And answers in one JSON object, also when it fails before its action.
    for (const args of [['migrate', 'status'], ['operator-tokens', 'list'], ['audit', 'verify']]) {
      const res = await cli([...args, '--json']);
      const lines = res.stdout.trim().split('\n');
      expect({ args, lines: lines.length, object: typeof JSON.parse(lines[0]!) }).toEqual({ args, lines: 1, object: 'object' });
    }
  });

  it('no database given is a usage error naming the ways to give one; the CLI never creates ./data', async () => {
    const hadData = existsSync(path.resolve('data'));
    const f = await withEnv({ DATABASE_URL: undefined, DATA_DIR: undefined, KEYPLANE_URL: undefined }, () => failure(['keys', 'show', NO_SUCH_ID]));
    expect(f).toMatchObject({ code: EXIT.usage, error: { code: 'no_database' } });
    expect(f.error.message).toMatch(/DATABASE_URL.*--data-dir.*--url/);
    expect(existsSync(path.resolve('data'))).toBe(hadData);
  });

  it('says which embedded directory it opens, and --data-dir overrides DATA_DIR and DATABASE_URL', async () => {
    const dir = path.join(tmp, 'explicit');
    const res = await cli(['--data-dir', dir, 'migrate', '--json']);
    expect(res.code).toBe(0);
    expect(res.json()).toEqual({ migrated: true, database: 'pglite' });
    expect(res.stderr).toContain(`embedded database in ${dir}`);
    expect(existsSync(path.join(dir, 'pgdata'))).toBe(true);
  });

  it('an unreachable database is unavailable (4), for verify too; a URL without a scheme is refused (2)', async () => {
    const down = `postgres://postgres@127.0.0.1:${await freePort()}/keyplane`;
    const f = await withEnv({ DATABASE_URL: down, DATA_DIR: undefined }, () => failure(['verify', 'sk_test_x', '--verb', 'read']));
    expect(f).toMatchObject({ code: EXIT.unavailable, error: { code: 'database_unavailable' } });
    expect(f.error.message).toMatch(/unreachable \(ECONNREFUSED\)/);
    const noScheme = await withEnv({ DATABASE_URL: 'localhost:5432/keyplane' }, () => failure(['keys', 'show', NO_SUCH_ID]));
    expect(noScheme).toMatchObject({ code: EXIT.usage, error: { code: 'invalid_configuration' } });
    expect(noScheme.error.message).toMatch(/DATABASE_URL: must start with postgres:\/\/ or postgresql:\/\//);
  });

  it('the binary exits with the same statuses: 0, 2, 4', async () => {
    expect(await spawnCli(env, ['--version'], '')).toEqual({ code: 0, stdout: `${VERSION}\n` });
    const usage = await spawnCli(env, ['service-keys', 'list', '--account', 'not-a-uuid', '--json'], '');
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout).error.code).toBe('validation_error');
    const down = { DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/keyplane` };
    const unavailable = await spawnCli(down, ['verify', '-', '--verb', 'read', '--json'], 'sk_test_x\n');
    expect(unavailable.code).toBe(4);
    expect(JSON.parse(unavailable.stdout).error.code).toBe('database_unavailable');
  });

  it('one table maps codes to statuses', () => {
    expect(EXIT).toEqual({ ok: 0, no: 1, usage: 2, chainBroken: 3, unavailable: 4 });
    expect(['not_found', 'invalid_api_key', 'agent_revoked', 'internal_error'].map(exitStatusOf)).toEqual([1, 1, 1, 1]);
    expect(['usage_error', 'validation_error', 'no_database', 'not_available_remotely'].map(exitStatusOf)).toEqual([2, 2, 2, 2]);
    expect(['database_unavailable', 'database_not_migrated', 'data_dir_locked', 'server_unreachable'].map(exitStatusOf)).toEqual([4, 4, 4, 4]);
  });
});
