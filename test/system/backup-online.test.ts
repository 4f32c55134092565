import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleetDatabase } from '../support/fleet.js';
import { ADMIN_TOKEN, recordLiteralSecret, recordSecrets } from '../support/harness.js';
import { requires } from '../support/requirements.js';
import { cli } from './support/cli.js';
import { freePort } from './support/cluster.js';
import { isBanner, serve, type ServeProcess } from './support/serve-process.js';

/*
 * The online half of issue 31 item 9: `keyplane backup --url` asks a running embedded server for
 * its dump (GET /internal/v1/backup) while it keeps serving; the file restores, with the server
 * stopped, into a new data directory that holds the keys minted before the backup, in the state
 * they had then.
 */

const withPostgres = await requires(['postgres']);
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-backup-online-'));
const dataDir = path.join(tmp, 'data');
let server: ServeProcess;
let publicUrl: string;
let adminUrl: string;
let token: string;

beforeAll(async () => {
  const [port, adminPort] = [await freePort(), await freePort()];
  server = serve({ DATA_DIR: dataDir, PORT: String(port), ADMIN_PORT: String(adminPort) });
  await server.waitFor(isBanner);
  publicUrl = `http://127.0.0.1:${port}`;
  adminUrl = `http://127.0.0.1:${adminPort}`;
  token = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  recordLiteralSecret(token);
  delete process.env.DATABASE_URL;
  delete process.env.DATA_DIR;
  delete process.env.KEYPLANE_URL;
  delete process.env.KEYPLANE_TOKEN;
  process.env.LOG_LEVEL = 'silent';
}, 120_000);

afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const remote = (args: string[]) => cli(['--url', adminUrl, '--token', token, ...args]);
const local = (dir: string, args: string[]) => cli(['--data-dir', dir, ...args]);

async function ok(run: Promise<Awaited<ReturnType<typeof cli>>>) {
  const r = await run;
  // A local command names its embedded directory on stderr; nothing else belongs there.
  expect({ code: r.code, stderr: r.stderr.replace(/^keyplane: embedded database in .*\n/gm, '') }).toEqual({ code: 0, stderr: '' });
  return r.json();
}

/** An agent key minted on the public API, as a client does. */
async function mint(serviceKey: string, name: string): Promise<{ id: string; token: string }> {
  const res = await fetch(`${publicUrl}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${serviceKey}`, 'content-type': 'application/json', 'idempotency-key': `online-${name}-${Date.now()}` },
    body: JSON.stringify({ name }),
  });
  expect(res.status).toBe(201);
  const { key } = (await res.json()) as { key: { id: string; plaintext_key: string } };
  recordSecrets(key.plaintext_key);
  return { id: key.id, token: key.plaintext_key };
}

describe('keyplane backup --url: the running embedded server backs itself up', () => {
  it('backs up while serving; the file restores into a new directory with the keys as they were', async () => {
    const boot = await ok(remote(['bootstrap', '--json']));
    recordSecrets(boot.service_key);
    recordSecrets(boot.api_key);
    const [kept, later] = [await mint(boot.service_key, 'kept'), await mint(boot.service_key, 'revoked-later')];

    const file = path.join(tmp, 'online.backup');
    // The public API keeps answering while the dump is taken.
    const [backup, listed] = await Promise.all([
      ok(remote(['backup', file, '--json'])),
      fetch(`${publicUrl}/v1/keys`, { headers: { authorization: `Bearer ${boot.service_key}` } }),
    ]);
    expect(listed.status).toBe(200);
    expect(backup).toMatchObject({ backup: file, url: adminUrl });
    expect(backup.bytes).toBeGreaterThan(1000);
    expect(statSync(file).size).toBe(backup.bytes);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(gunzipSync(readFileSync(file)).subarray(257, 262)).toString('latin1')).toBe('ustar');
    expect(server.lines.some((l) => l.msg === 'backup taken' && l.operator === 'bootstrap')).toBe(true);

    await ok(remote(['keys', 'revoke', later.id, '--json']));
    expect(await server.stop()).toBe(0);

    const fresh = path.join(tmp, 'restored');
    const restored = await ok(local(fresh, ['restore', file, '--json']));
    expect(restored).toMatchObject({ restored: true, previous: null });
    const show = async (id: string) => (await ok(local(fresh, ['keys', 'show', id, '--json']))).key.status as string;
    expect(await show(kept.id)).toBe('active');
    // Revoked after the backup: live again in the restored database, until the revocations are replayed.
    expect(await show(later.id)).toBe('active');
    expect((await local(fresh, ['verify', kept.token, '--verb', 'read', '--json'])).code).toBe(0);
    expect((await ok(local(fresh, ['audit', 'verify', '--json']))).ok).toBe(true);
  }, 180_000);

  it('a stopped server: backup --url cannot reach it (exit 4), and restore is refused with --url (exit 2)', async () => {
    const dead = await remote(['backup', path.join(tmp, 'dead.backup'), '--json']);
    expect([dead.code, dead.json().error.code]).toEqual([4, 'server_unreachable']);
    const restore = await remote(['restore', path.join(tmp, 'online.backup'), '--json']);
    expect([restore.code, restore.json().error.code]).toEqual([2, 'not_available_remotely']);
  });
});

withPostgres.describe('keyplane backup --url against a server on Postgres', () => {
  it('answers not_embedded (exit 2), pointing at pg_dump, and writes no file', async () => {
    const database = await createFleetDatabase('backup_online');
    const adminPort = await freePort();
    const pgServer = serve({ DATABASE_URL: database.url, PORT: String(await freePort()), ADMIN_PORT: String(adminPort), KEYPLANE_ADMIN_TOKEN: ADMIN_TOKEN });
    try {
      await pgServer.waitFor(isBanner);
      const file = path.join(tmp, 'postgres.backup');
      const r = await cli(['--url', `http://127.0.0.1:${adminPort}`, '--token', ADMIN_TOKEN, 'backup', file, '--json']);
      expect([r.code, r.json().error.code]).toEqual([2, 'not_embedded']);
      expect(r.json().error.message).toMatch(/pg_dump/);
      expect(existsSync(file)).toBe(false);
    } finally {
      await pgServer.stop();
      await database.drop();
    }
  }, 120_000);
});
