import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { actorOf } from '../../src/domain/auth/auth.service.js';
import { withServices } from '../../src/cli/runtime.js';
import { recordSecrets } from '../support/harness.js';
import { withLastCharChanged } from '../support/tokens.js';
import { cli, spawnCli as spawnWith, useCliDatabase } from './support/cli.js';

/*
 * `keyplane keys`: the operator's reach from a shell (issue 27, items 1 and 2). As in
 * verify-cli.test.ts, most commands run in-process through runCli (the binary's entry point), and
 * the stdin form of revoke-leaked spawns the real binary.
 */

const { tmp, env } = useCliDatabase('keys-cli');
const spawnCli = (args: string[], input: string) => spawnWith(env, args, input);

/** Child keys minted with the service key through the domain, as POST /v1/keys does. */
async function mintChildren(serviceKey: string, count: number): Promise<{ id: string; token: string }[]> {
  return withServices(async ({ services }) => {
    const now = new Date();
    const p = await services.auth.authenticate(serviceKey, 'service', { readOnly: false, now });
    if (p.tier !== 'service') throw new Error('not a service key');
    const out: { id: string; token: string }[] = [];
    for (let i = 0; i < count; i++) {
      const ctx = { actor: actorOf(p), meta: { requestId: null, ip: null, userAgent: 'vitest' }, now };
      const input = { name: `agent ${i}`, agentLabel: null, lineId: null, permissions: 'full' as const, monthlyCapCents: null, selfRotation: false };
      const outcome = await services.keys.mint(p, input, { key: `keys-cli-${i}-${Math.random()}`, fingerprint: `f${i}` }, ctx);
      const key = (outcome.body as { key: { id: string; plaintext_key: string } }).key;
      recordSecrets(key.plaintext_key);
      out.push({ id: key.id, token: key.plaintext_key });
    }
    return out;
  });
}

const verifyCode = async (key: string) => (await cli(['verify', key, '--verb', 'read', '--json'])).json().code as string;

describe('keyplane keys', () => {
  it('lists, shows and revokes keys of every kind; a service key needs --children when its chain has live ones', async () => {
    const boot = (await cli(['bootstrap', '--json'])).json();
    const children = await mintChildren(boot.service_key, 3);
    const list = await cli(['keys', 'list', '--account', boot.account_id, '--json']);
    expect(list.code).toBe(0);
    const kinds = list.json().keys.map((k: { kind: string }) => k.kind).sort();
    expect(kinds).toEqual(['child', 'child', 'child', 'portal', 'service']);
    expect(list.stdout).not.toMatch(/plaintext|token_hash/);
    const service = list.json().keys.find((k: { kind: string }) => k.kind === 'service');
    expect((await cli(['keys', 'list', '--account', boot.account_id])).stdout).toMatch(/service\s+sk_svc_test_\w{8}\s+test\s+active/);
    expect((await cli(['keys', 'list', '--account', boot.account_id, '--limit', '0'])).code).toBe(2);

    const shown = (await cli(['keys', 'show', children[0]!.id, '--json'])).json().key;
    expect(shown).toMatchObject({ kind: 'child', managed_by_service_key_id: service.id, created_by_service_key_id: service.id });

    const refused = await cli(['keys', 'revoke', service.id, '--json']);
    expect(refused.code).toBe(2); // validation_error is a usage error (exit-codes.ts)
    expect(refused.json().error.code).toBe('validation_error');
    expect(refused.stderr).toMatch(/children=keep .* or children=revoke/);

    const kept = await cli(['keys', 'revoke', service.id, '--children', 'keep', '--json']);
    expect(kept.json()).toMatchObject({ revoked: true, children: { revoked: 0, live: 3 } });
    expect(await verifyCode(children[0]!.token)).toBe('valid');
    const one = await cli(['keys', 'revoke', children[0]!.id]);
    expect(one.stdout).toMatch(/^child key \S+ \(sk_test_\w{8}\) revoked\n$/);
    expect(await verifyCode(children[0]!.token)).toBe('invalid_api_key');
    const rest = await cli(['keys', 'revoke', service.id, '--children', 'revoke', '--json']);
    expect(rest.json()).toMatchObject({ revoked: false, children: { revoked: 2, live: 0 } });
    for (const c of children) expect(await verifyCode(c.token)).toBe('invalid_api_key');
    expect((await cli(['keys', 'revoke', service.id, '--children', 'maybe'])).code).toBe(2);
    expect((await cli(['keys', 'show', '00000000-0000-4000-8000-000000000000'])).code).toBe(1);
    const noAccount = await cli(['keys', 'list', '--account', 'nope', '--json']);
    expect(noAccount.code).toBe(2);
    expect(noAccount.json().error.code).toBe('validation_error');

    // Each revocation's event names the CLI as its actor.
    const events = (await cli(['audit', 'export', '--account', boot.account_id])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const revocations = events.filter((e) => e.event_type === 'agent_key_revoked');
    expect(revocations).toHaveLength(3);
    for (const e of revocations) expect(e).toMatchObject({ actor_kind: 'portal', actor_key_prefix: 'cli' });
  }, 180_000);

  it('revoke-leaked reads tokens from stdin (the binary) or a file, never prints one, and is idempotent', async () => {
    const boot = (await cli(['bootstrap', '--json'])).json();
    const [child] = await mintChildren(boot.service_key, 1);
    const input = `\n${child!.token}\n  ${withLastCharChanged(boot.api_key)}  \n\nnot-a-key\n`;
    const spawned = await spawnCli(['keys', 'revoke-leaked', '-', '--json'], input);
    expect(spawned.code).toBe(0);
    expect(spawned.stdout).not.toContain(child!.token);
    expect(JSON.parse(spawned.stdout).results).toEqual([
      { prefix: child!.token.slice(0, 16), found: true, revoked: true, key_id: child!.id, kind: 'child', account_id: boot.account_id },
      { prefix: boot.api_key.slice(0, 16), found: false, revoked: false, key_id: null, kind: null, account_id: null },
      { prefix: null, found: false, revoked: false, key_id: null, kind: null, account_id: null },
    ]);
    expect(await verifyCode(child!.token)).toBe('invalid_api_key');

    const file = path.join(tmp, 'leaked.txt');
    writeFileSync(file, `${child!.token}\n${boot.service_key}\n`);
    const again = await cli(['keys', 'revoke-leaked', file]);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain(child!.token);
    expect(again.stdout).toMatch(/sk_test_\w{8}\s+already revoked/);
    expect(again.stdout).toMatch(/sk_svc_test_\w{8}\s+revoked/);
    expect(again.stdout).toMatch(/2 token\(s\): 2 found, 1 revoked now/);
    const events = (await cli(['audit', 'export', '--account', boot.account_id])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const leaked = events.filter((e) => e.data?.reason === 'leaked');
    expect(leaked.map((e) => e.event_type).sort()).toEqual(['agent_key_revoked', 'service_key_revoked']);
    expect(JSON.stringify(events)).not.toContain(child!.token);
    expect((await spawnCli(['keys', 'revoke-leaked', '-'], '\n\n')).code).toBe(2);
  }, 180_000);

  it('suspend and resume an API key: refused in between, one event each; a service key is refused (exit 2, validation_error)', async () => {
    const boot = (await cli(['bootstrap', '--json'])).json();
    const [child] = await mintChildren(boot.service_key, 1);
    const suspended = await cli(['keys', 'suspend', child!.id, '--reason', 'abuse report', '--json']);
    expect(suspended.code).toBe(0);
    expect(suspended.json()).toMatchObject({ changed: true, key: { id: child!.id, suspended_at: expect.any(String) } });
    expect(await verifyCode(child!.token)).toBe('invalid_api_key');
    expect((await cli(['keys', 'suspend', child!.id])).stdout).toMatch(/was already suspended/);
    const resumed = await cli(['keys', 'resume', child!.id]);
    expect(resumed.stdout).toMatch(/child key .* resumed/);
    expect(await verifyCode(child!.token)).toBe('valid');
    const service = (await cli(['keys', 'list', '--account', boot.account_id, '--kind', 'service', '--json'])).json().keys[0];
    const refused = await cli(['keys', 'suspend', service.id, '--json']);
    expect(refused.code).toBe(2);
    expect(refused.json().error.code).toBe('validation_error');
    const events = (await cli(['audit', 'export', '--account', boot.account_id])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const types = events.filter((e) => e.subject_key_id === child!.id).map((e) => e.event_type);
    expect(types.filter((t) => t === 'agent_key_suspended' || t === 'agent_key_resumed')).toEqual(['agent_key_suspended', 'agent_key_resumed']);
  }, 120_000);

  it('rotate a child key with an overlap (both verify), then revoke the successor as leaked (both refused)', async () => {
    const boot = (await cli(['bootstrap', '--json'])).json();
    const [child] = await mintChildren(boot.service_key, 1);
    expect((await cli(['keys', 'rotate', child!.id, '--overlap', '604801'])).code).toBe(2);
    const rotated = await cli(['keys', 'rotate', child!.id, '--overlap', '3600', '--json']);
    expect(rotated.code).toBe(0);
    const out = rotated.json();
    recordSecrets(out.key.plaintext_key);
    expect(out.rotated.id).toBe(child!.id);
    expect(await verifyCode(child!.token)).toBe('valid');
    expect(await verifyCode(out.key.plaintext_key)).toBe('valid');
    const leaked = await cli(['keys', 'revoke', out.key.id, '--leaked']);
    expect(leaked.stdout).toMatch(/child key .* revoked/);
    expect(await verifyCode(out.key.plaintext_key)).toBe('invalid_api_key');
    expect(await verifyCode(child!.token)).toBe('invalid_api_key');
    const events = (await cli(['audit', 'export', '--account', boot.account_id])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const revoked = events.find((e) => e.subject_key_id === out.key.id && e.event_type === 'agent_key_revoked');
    expect(revoked.data.reason).toBe('leaked');
  }, 120_000);
});
