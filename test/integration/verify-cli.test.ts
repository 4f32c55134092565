import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { recordSecrets } from '../support/harness.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/keyplane.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-verify-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent' };
  delete env.DATABASE_URL;
  const url = inject('databaseUrl');
  if (url) env.DATABASE_URL = url;
  else env.DATA_DIR = path.join(tmp, 'data');
  return env;
}

async function cli(args: string[], input?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: cliEnv(), timeout: 60_000 }, (err, stdout, stderr) => {
      recordSecrets(stdout);
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

describe('keyplane verify', () => {
  it('verifies through the same domain code: valid → exit 0, refused → exit 1, bad usage → exit 2', async () => {
    const boot = JSON.parse((await cli(['bootstrap', '--json'])).stdout);
    const key: string = boot.api_key;

    const ok = await cli(['verify', key, '--verb', 'call', '--json']);
    expect(ok.code).toBe(0);
    const lines = ok.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const body = JSON.parse(lines[0]!);
    expect(body).toMatchObject({ valid: true, code: 'valid', key: { permissions: 'legacy_full', account_id: boot.account_id } });
    expect(ok.stdout).not.toContain(key);

    const human = await cli(['verify', key, '--verb', 'admin']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^valid: sk_test_\w{8} \(legacy_full\), spend 0 cents this cycle\n$/);

    const debited = await cli(['verify', key, '--verb', 'sms', '--cost-cents', '25', '--request-id', 'cli-1', '--json']);
    expect(JSON.parse(debited.stdout)).toMatchObject({ valid: true, debit: { cost_cents: 25, replayed: false }, key: { monthly_spend_cents: 25 } });
    const again = await cli(['verify', key, '--verb', 'sms', '--cost-cents', '25', '--request-id', 'cli-1']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already debited: not again');

    // The key from stdin keeps it out of the process list.
    expect((await cli(['verify', '-', '--verb', 'read', '--json'], `${key}\n`)).code).toBe(0);

    const mangled = await cli(['verify', `${key.slice(0, -1)}x`, '--verb', 'read', '--json']);
    expect(mangled.code).toBe(1);
    expect(JSON.parse(mangled.stdout)).toEqual({
      valid: false,
      code: 'invalid_api_key',
      status: 401,
      error: { error: { code: 'invalid_api_key', message: 'The API key is invalid or has been revoked.', details: [] } },
    });

    const usage = await cli(['verify', key, '--verb', 'call', '--cost-cents', '10']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('request_id');

    // Revoked through the CLI, refused at once.
    const keyId = body.key.id;
    expect((await cli(['api-keys', 'revoke', keyId, '--json'])).code).toBe(0);
    const revoked = await cli(['verify', key, '--verb', 'read']);
    expect(revoked.code).toBe(1);
    expect(revoked.stdout).toMatch(/^not valid: invalid_api_key \(401\) The API key is invalid or has been revoked\.\n$/);
  }, 180_000);
});
