import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createFleetDatabase } from '../support/fleet.js';
import { recordSecrets } from '../support/harness.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/keyplane.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The CLI runs against the run's Postgres database, or an embedded data directory of its own. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent', ...extra };
  delete env.DATABASE_URL;
  const url = inject('databaseUrl');
  if (extra.DATABASE_URL) env.DATABASE_URL = extra.DATABASE_URL;
  else if (url && !extra.DATA_DIR) env.DATABASE_URL = url;
  else env.DATA_DIR ??= path.join(tmp, 'data');
  return env;
}

async function cli(args: string[], extra: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: cliEnv(extra), timeout: 60_000 });
    recordSecrets(stdout);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

// Each CLI call is a fresh process (tsx + database open): seconds each, much more on a loaded machine.
const SLOW = 180_000;

describe('keyplane CLI', () => {
  it('bootstrap --json prints exactly one JSON object with the account and both secrets', async () => {
    const res = await cli(['bootstrap', '--json']);
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]!);
    expect(Object.keys(out).sort()).toEqual(['account_id', 'api_key', 'environment', 'service_key']);
    expect(out.environment).toBe('test');
    expect(out.service_key).toMatch(/^sk_svc_test_/);
    expect(out.api_key).toMatch(/^sk_test_/);
  }, SLOW);

  it('bootstrap without --json prints the secrets readably with a curl example', async () => {
    const res = await cli(['bootstrap']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/curl -H "Authorization: Bearer sk_svc_test_\w+" http:\/\/localhost:\d+\/v1\/keys/);
  }, SLOW);

  it('accounts, service-keys and api-keys commands round-trip through the same domain code', async () => {
    const acc = JSON.parse((await cli(['accounts', 'create', '--name', 'CLI Co', '--json'])).stdout);
    expect(acc.name).toBe('CLI Co');
    const sk = JSON.parse((await cli(['service-keys', 'create', '--account', acc.id, '--environment', 'live', '--json'])).stdout);
    expect(sk.plaintext_key).toMatch(/^sk_svc_live_/);
    expect(sk.environment).toBe('live');
    const list = JSON.parse((await cli(['service-keys', 'list', '--account', acc.id, '--json'])).stdout);
    expect(list.service_keys.map((k: { id: string }) => k.id)).toEqual([sk.id]);
    expect(JSON.stringify(list)).not.toContain('plaintext_key');
    const rotated = JSON.parse((await cli(['service-keys', 'rotate', sk.id, '--json'])).stdout);
    expect(rotated.rotated_from).toBe(sk.id);
    expect(rotated.plaintext_key).toMatch(/^sk_svc_live_/);
    const revoked = JSON.parse((await cli(['service-keys', 'revoke', rotated.id, '--json'])).stdout);
    expect(revoked.revoked_at).not.toBeNull();
    const ak = JSON.parse((await cli(['api-keys', 'create', '--account', acc.id, '--json'])).stdout);
    expect(ak.permissions).toBe('legacy_full');
    expect(ak.plaintext_key).toMatch(/^sk_test_/);
    const akRevoked = JSON.parse((await cli(['api-keys', 'revoke', ak.id, '--json'])).stdout);
    expect(akRevoked.revoked_at).not.toBeNull();
    const reaction = JSON.parse((await cli(['accounts', 'set-reuse-reaction', acc.id, 'report', '--json'])).stdout);
    expect(reaction).toMatchObject({ id: acc.id, reuse_reaction: 'report' });
    const bad = await cli(['accounts', 'set-reuse-reaction', acc.id, 'ignore']);
    expect(bad.code).not.toBe(0);
  }, SLOW);

  it('errors are one line, with --json one JSON object, and a non-zero exit', async () => {
    const res = await cli(['service-keys', 'revoke', '00000000-0000-4000-8000-000000000000', '--json']);
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stdout)).toEqual({ error: { code: 'not_found', message: 'not found' } });
    expect(res.stderr).not.toMatch(/\n\s+at /);
    const usage = await cli(['service-keys', 'create']);
    expect(usage.code).not.toBe(0);
  }, SLOW);

  it('in embedded mode, refuses a data directory held by a running process, leaving it intact', async () => {
    const dir = path.join(tmp, 'held');
    const first = await cli(['migrate', '--json'], { DATA_DIR: dir });
    expect(first.code).toBe(0);
    // The test runner's own pid stands in for a live server holding the lock.
    writeFileSync(path.join(dir, 'keyplane.lock'), String(process.pid));
    const held = await cli(['bootstrap', '--json'], { DATA_DIR: dir });
    expect(held.code).toBe(4); // unavailable: the directory is held (exit-codes.ts)
    expect(held.stderr).toMatch(/in use by another keyplane process \(pid \d+\)/);
    rmSync(path.join(dir, 'keyplane.lock'));
    const after = await cli(['bootstrap', '--json'], { DATA_DIR: dir });
    expect(after.code).toBe(0);
  }, SLOW);

  it('migrate names each step it applies on stderr, and --json keeps stdout one JSON object', async () => {
    const fresh = await createFleetDatabase('cli_migrate');
    try {
      const res = await cli(['migrate', '--json'], { DATABASE_URL: fresh.url });
      expect(res.code).toBe(0);
      expect(JSON.parse(res.stdout)).toEqual({ migrated: true, database: 'postgres' });
      expect(res.stderr).toMatch(/^applied migration: 0000_baseline$/m);
      expect(res.stderr).toMatch(/^applied SQL file: verify_debit_batch\.sql$/m);
      const again = await cli(['migrate'], { DATABASE_URL: fresh.url });
      expect(again.stderr).not.toMatch(/applied/);
    } finally {
      await fresh.drop();
    }
  }, SLOW);

  it('takes over a lock left by a process that died', async () => {
    const dir = path.join(tmp, 'stale');
    expect((await cli(['migrate'], { DATA_DIR: dir })).code).toBe(0);
    writeFileSync(path.join(dir, 'keyplane.lock'), '999999999');
    expect((await cli(['migrate', '--json'], { DATA_DIR: dir })).code).toBe(0);
  }, SLOW);
});
