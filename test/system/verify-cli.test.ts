import { describe, expect, it } from 'vitest';
import { withLastCharChanged } from '../support/tokens.js';
import { cli, spawnCli as spawnWith, useCliDatabase } from './support/cli.js';

/*
 * `keyplane verify`: most cases run the CLI in-process through runCli (the same entry point the
 * binary calls, so the same parsing, domain code and exit codes, without a ~4 s tsx start per
 * command); two spawn the real binary, for the process exit codes and the stdin form.
 */

const { env } = useCliDatabase('verify-cli');
const spawnCli = (args: string[], input: string) => spawnWith(env, args, input);

describe('keyplane verify', () => {
  it('verifies through the same domain code: valid → 0, refused → 1, bad usage → 2', async () => {
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
    expect(again.stdout).toContain('debited 25 cents (already debited: not again)');

    const mangled = await cli(['verify', withLastCharChanged(key), '--verb', 'read', '--json']);
    expect(mangled.code).toBe(1);
    expect(JSON.parse(mangled.stdout)).toEqual({
      valid: false,
      code: 'invalid_api_key',
      status: 401,
      error: { error: { code: 'invalid_api_key', message: 'The API key is invalid or has been revoked.', details: [] } },
    });

    for (const args of [
      ['--verb', 'call', '--cost-cents', '10'],
      ['--verb', 'write'],
      ['--verb', 'call', '--cost-cents', 'ten', '--request-id', 'r'],
      ['--verb', 'call', '--line-id', 'line-1'],
      ['--verb', 'call', '--cost-cents', '0x10', '--request-id', 'r'],
      ['--verb', 'call', '--cost-cents', '1e1', '--request-id', 'r'],
      ['--verb', 'call', '--cost-cents', ' 5', '--request-id', 'r'],
      // Errors of commander's own parsing: a missing mandatory option, an unknown option, a missing
      // option value, an extra argument.
      [],
      ['--verb', 'read', '--bogus'],
      ['--verb', 'read', '--line-id'],
      ['extra', '--verb', 'read'],
    ]) {
      const usage = await cli(['verify', key, ...args]);
      expect(usage.code, args.join(' ')).toBe(2);
      expect(usage.stdout).toBe('');
    }
    expect((await cli(['verify', key, '--verb', 'call', '--cost-cents', '10'])).stderr).toContain('request_id');

    expect((await cli(['api-keys', 'revoke', body.key.id, '--json'])).code).toBe(0);
    const revoked = await cli(['verify', key, '--verb', 'read']);
    expect(revoked.code).toBe(1);
    expect(revoked.stdout).toMatch(/^not valid: invalid_api_key \(401\) The API key is invalid or has been revoked\.\n$/);
  }, 120_000);

  it('the binary exits 0 for a valid key read from stdin, 1 for a refused one', async () => {
    const boot = JSON.parse((await cli(['bootstrap', '--json'])).stdout);
    // One after the other: an embedded data directory belongs to one process at a time.
    const valid = await spawnCli(['verify', '-', '--verb', 'read', '--json'], `${boot.api_key}\n`);
    const refused = await spawnCli(['verify', '-', '--verb', 'read', '--json'], `${boot.service_key}\n`);
    expect(valid.code).toBe(0);
    expect(JSON.parse(valid.stdout)).toMatchObject({ valid: true, key: { account_id: boot.account_id } });
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).code).toBe('invalid_api_key');
  }, 120_000);
});
