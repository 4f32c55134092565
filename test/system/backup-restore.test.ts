import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect } from 'vitest';
import { actorOf } from '../../src/domain/auth/auth.service.js';
import { withServices } from '../../src/cli/runtime.js';
import { createFleetDatabase } from '../support/fleet.js';
import { recordSecrets } from '../support/harness.js';
import { requires } from '../support/requirements.js';
import { cli } from './support/cli.js';

/*
 * Backups and the revoked-keys caveat (issue 31 item 9): a key revoked after a backup is live again
 * once the backup is restored, until `keyplane keys replay-revocations` replays the audit export.
 * Embedded mode round-trips through `keyplane backup` / `keyplane restore`; server mode through
 * pg_dump / pg_restore into a new database. The CLI runs in-process (runCli), pointed at each
 * database through this worker's environment.
 */

const run = promisify(execFile);
const { describe, it } = await requires(['postgres']);
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-backup-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function useEmbedded(dir: string) {
  delete process.env.DATABASE_URL;
  Object.assign(process.env, { DATA_DIR: dir, LOG_LEVEL: 'silent' });
}
function usePostgres(url: string) {
  Object.assign(process.env, { DATABASE_URL: url, LOG_LEVEL: 'silent' });
}

/** Child keys minted with the service key through the domain, as POST /v1/keys does. */
async function mintChildren(serviceKey: string, names: string[]): Promise<Record<string, { id: string; token: string }>> {
  return withServices(async ({ services }) => {
    const now = new Date();
    const p = await services.auth.authenticate(serviceKey, 'service', { readOnly: false, now });
    if (p.tier !== 'service') throw new Error('not a service key');
    const out: Record<string, { id: string; token: string }> = {};
    for (const name of names) {
      const ctx = { actor: actorOf(p), meta: { requestId: null, ip: null, userAgent: 'vitest' }, now };
      const input = { name, agentLabel: null, lineId: null, permissions: 'full' as const, monthlyCapCents: null, selfRotation: false };
      const outcome = await services.keys.mint(p, input, { key: `backup-${name}-${Math.random()}`, fingerprint: name }, ctx);
      const key = (outcome.body as { key: { id: string; plaintext_key: string } }).key;
      recordSecrets(key.plaintext_key);
      out[name] = { id: key.id, token: key.plaintext_key };
    }
    return out;
  });
}

const status = async (id: string) => (await cli(['keys', 'show', id, '--json'])).json().key.status as string;
const verifies = async (token: string) => (await cli(['verify', token, '--verb', 'read', '--json'])).code === 0;
async function ok(args: string[]) {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

/** An account with a service key and three child keys, `before` revoked already. */
async function seed() {
  const boot = (await ok(['bootstrap', '--json'])).json();
  recordSecrets(boot.service_key);
  recordSecrets(boot.api_key);
  const keys = await mintChildren(boot.service_key, ['before', 'after', 'kept']);
  const service = (await ok(['keys', 'list', '--account', boot.account_id, '--kind', 'service', '--json'])).json().keys[0].id as string;
  await ok(['keys', 'revoke', keys.before!.id]);
  return { boot, keys, service };
}

/** What happens after the backup: a revocation, a rotation, a key minted and revoked, an operator token revoked. */
async function afterBackup(s: Awaited<ReturnType<typeof seed>>) {
  const { late } = await mintChildren(s.boot.service_key, ['late']);
  await ok(['keys', 'revoke', late!.id]);
  await ok(['keys', 'revoke', s.keys.after!.id]);
  await ok(['service-keys', 'rotate', s.service, '--json']).then((r) => recordSecrets(r.json().plaintext_key));
  const token = (await ok(['operator-tokens', 'create', '--name', `backup-${Date.now()}`, '--scope', 'verify', '--json'])).json();
  recordSecrets(token.plaintext_key);
  await ok(['operator-tokens', 'revoke', token.id]);
  const exported = (await ok(['audit', 'export'])).stdout;
  const file = path.join(tmp, `export-${Date.now()}.jsonl`);
  writeFileSync(file, exported);
  return { exportFile: file, tokenId: token.id as string, lateId: late!.id };
}

/** Replays the export: what came back is revoked again, by the operator; a second replay changes nothing. */
async function replayAndCheck(s: Awaited<ReturnType<typeof seed>>, exportFile: string, lateId: string) {
  const first = (await ok(['keys', 'replay-revocations', exportFile, '--json'])).json();
  const byId = new Map(first.results.map((r: { id: string; outcome: string }) => [r.id, r.outcome]));
  expect(byId.get(s.keys.before!.id)).toBe('already_revoked');
  expect(byId.get(s.keys.after!.id)).toBe('revoked');
  expect(byId.get(s.service)).toBe('revoked');
  // Minted after the backup: not in the restored database, so nothing to revoke.
  expect(byId.get(lateId)).toBe('not_found');
  expect(await status(s.keys.after!.id)).toBe('revoked');
  expect(await status(s.service)).toBe('revoked');
  expect(await verifies(s.keys.after!.token)).toBe(false);
  expect(await verifies(s.keys.kept!.token)).toBe(true);
  const again = (await ok(['keys', 'replay-revocations', exportFile, '--json'])).json();
  expect(again.revoked).toBe(0);
  expect(again.already_revoked).toBe(first.revoked + first.already_revoked);
  // Each replayed revocation is an event of its own, the operator's, naming the event it replays.
  const events = (await ok(['audit', 'export', '--account', s.boot.account_id])).stdout.trim().split('\n').map((l) => JSON.parse(l));
  const replayed = events.filter((e) => typeof e.request_id === 'string' && e.request_id.startsWith('replay:'));
  expect(replayed.map((e) => e.subject_key_id).sort()).toEqual([s.keys.after!.id, s.service].sort());
  for (const e of replayed) expect(e).toMatchObject({ actor_kind: 'portal', actor_key_prefix: 'cli' });
  expect((await ok(['audit', 'verify', '--json'])).json().ok).toBe(true);
  return first;
}

describe('embedded mode: keyplane backup / restore, then replay-revocations', () => {
  const dataDir = path.join(tmp, 'embedded');
  beforeAll(() => useEmbedded(dataDir));

  it('restores the backup; keys revoked since are live again until the replay revokes them, once', async () => {
    const s = await seed();
    const backupFile = path.join(tmp, 'keyplane.backup');
    const b = (await ok(['backup', backupFile, '--json'])).json();
    expect(b.bytes).toBeGreaterThan(1000);
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);

    const { exportFile, tokenId, lateId } = await afterBackup(s);
    expect(await status(s.keys.after!.id)).toBe('revoked');

    const restored = await ok(['restore', backupFile, '--json']);
    expect(restored.json().previous).toMatch(/pgdata\.before-restore-/);
    expect(restored.stdout).toMatch(/replay-revocations/);
    // The restored database predates the revocations: the revoked key works again.
    expect(await status(s.keys.after!.id)).toBe('active');
    expect(await verifies(s.keys.after!.token)).toBe(true);
    expect(await status(s.service)).toBe('active');

    const first = await replayAndCheck(s, exportFile, lateId);
    expect(first.results.find((r: { id: string }) => r.id === tokenId)?.outcome).toBe('not_found');
  }, 120_000);

  it('refuses to back up or restore a data directory a running server holds, and server mode', async () => {
    const lock = path.join(dataDir, 'keyplane.lock');
    // The vitest main process: alive, and not this worker.
    writeFileSync(lock, String(process.ppid));
    try {
      const r = await cli(['backup', path.join(tmp, 'busy.backup')]);
      expect(r.code).toBe(4); // data_dir_locked: unavailable (src/cli/exit-codes.ts)
      expect(r.stderr).toMatch(/the server \(pid \d+\) is using .*: stop it first, then back up/);
      const restore = await cli(['restore', path.join(tmp, 'keyplane.backup')]);
      expect(restore.code).toBe(4);
    } finally {
      rmSync(lock, { force: true });
    }
    process.env.DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/none';
    try {
      const r = await cli(['backup', path.join(tmp, 'server.backup')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/pg_dump/);
    } finally {
      delete process.env.DATABASE_URL;
    }
    // Not a dump: refused, and the database it would have replaced is back in place.
    const garbage = path.join(tmp, 'garbage.tgz');
    writeFileSync(garbage, randomBytes(4096));
    const g = await cli(['restore', garbage]);
    expect(g.code).toBe(1);
    expect(g.stderr).toMatch(/not a backup of an embedded keyplane database/);
    expect((await ok(['audit', 'verify', '--json'])).json()).toMatchObject({ ok: true, accounts: 1 });
    process.env.DATA_DIR = path.join(tmp, 'empty');
    try {
      const none = await cli(['backup', path.join(tmp, 'none.backup')]);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/no embedded database in .*empty/);
    } finally {
      process.env.DATA_DIR = dataDir;
    }
    const bad = path.join(tmp, 'bad.jsonl');
    writeFileSync(bad, '{"id": "x"}\n');
    expect((await cli(['keys', 'replay-revocations', bad])).code).toBe(2);
  }, 60_000);
});

describe('server mode: pg_dump / pg_restore, then replay-revocations', () => {
  const dbs: Awaited<ReturnType<typeof createFleetDatabase>>[] = [];
  afterAll(async () => {
    for (const db of dbs) await db.drop();
  });

  it('a key revoked after the pg_dump is live in the restored database until the replay', async () => {
    const [source, target] = [await createFleetDatabase('backup_src'), await createFleetDatabase('backup_dst')];
    dbs.push(source, target);
    usePostgres(source.url);
    const s = await seed();
    const dump = path.join(tmp, 'keyplane.pgdump');
    await run('pg_dump', ['--format=custom', '--no-owner', `--file=${dump}`, source.url]);
    const { exportFile, lateId } = await afterBackup(s);
    await run('pg_restore', ['--no-owner', `--dbname=${target.url}`, dump]);
    usePostgres(target.url);
    expect(await status(s.keys.after!.id)).toBe('active');
    await replayAndCheck(s, exportFile, lateId);
    expect(readFileSync(exportFile, 'utf8')).toContain('"event_type":"operator_token_revoked"');
  }, 120_000);
});
