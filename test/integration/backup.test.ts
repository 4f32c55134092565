import { gunzipSync } from 'node:zlib';
import { describe, expect } from 'vitest';
import { BACKUP_RETRY_AFTER_S, createBackupService } from '../../src/domain/backup/backup.service.js';
import { DomainError } from '../../src/domain/errors.js';
import { it } from '../support/fixtures.js';
import { ADMIN_TOKEN, call, errorCode, type CallResult } from '../support/harness.js';

/*
 * GET /internal/v1/backup: the embedded database's dump, taken online. On PGlite a gzipped tarball
 * that PGlite loads back (loadDataDir) with the tenant in it; on Postgres a 409 not_embedded that
 * points at pg_dump. One dump at a time: a second concurrent request is 409 backup_in_progress.
 */

const backup = (admin: Parameters<typeof call>[0]) => admin.inject({ method: 'GET', url: '/internal/v1/backup', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });

const envelope = (res: { statusCode: number; headers: CallResult['headers']; body: string }): CallResult => ({
  status: res.statusCode,
  headers: res.headers,
  body: JSON.parse(res.body),
  raw: res.body,
});

describe('GET /internal/v1/backup', () => {
  it('embedded: a gzipped dump that restores with the tenant in it; server mode: 409 not_embedded', async ({ app, tenant }) => {
    const res = await backup(app.admin);
    if (app.services.health.database === 'postgres') {
      expect([res.statusCode, errorCode(envelope(res))]).toEqual([409, 'not_embedded']);
      expect(JSON.parse(res.body).error.message).toMatch(/pg_dump/);
      return;
    }
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/gzip');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="keyplane-backup-\d{8}T\d{6}Z\.tar\.gz"$/);
    expect(res.headers['cache-control']).toBe('no-store');
    const dump = res.rawPayload;
    expect(dump.byteLength).toBeGreaterThan(1000);
    expect(gunzipSync(dump).subarray(257, 262).toString('latin1')).toBe('ustar');
    const { PGlite } = await import('@electric-sql/pglite');
    const restored = new PGlite({ loadDataDir: new Blob([new Uint8Array(dump)]) });
    try {
      const found = await restored.query<{ n: number }>('select count(*)::int as n from accounts where id = $1', [tenant.accountId]);
      expect(found.rows[0]!.n).toBe(1);
    } finally {
      await restored.close();
    }
  }, 60_000);

  it('one at a time: a concurrent request is 409 backup_in_progress with Retry-After; then backups work again', async ({ app }) => {
    const [a, b] = await Promise.all([backup(app.admin), backup(app.admin)]);
    if (app.services.health.database === 'postgres') {
      expect([a.statusCode, b.statusCode]).toEqual([409, 409]);
      expect([errorCode(envelope(a)), errorCode(envelope(b))]).toEqual(['not_embedded', 'not_embedded']);
      return;
    }
    const refused = [a, b].find((r) => r.statusCode === 409)!;
    expect([a.statusCode, b.statusCode].sort()).toEqual([200, 409]);
    expect(errorCode(envelope(refused))).toBe('backup_in_progress');
    expect(refused.headers['retry-after']).toBe(String(BACKUP_RETRY_AFTER_S));
    expect((await backup(app.admin)).statusCode).toBe(200);
  }, 60_000);

  it('the domain takes one dump at a time whatever the database, and frees the slot after a failure', async () => {
    const pending: ((v: Uint8Array | Error) => void)[] = [];
    const service = createBackupService(
      () => new Promise<Uint8Array>((resolve, reject) => pending.push((v) => (v instanceof Error ? reject(v) : resolve(v)))),
    );
    const first = service.take();
    await expect(service.take()).rejects.toMatchObject({ code: 'backup_in_progress', hints: { retryAfterSeconds: BACKUP_RETRY_AFTER_S } });
    pending.shift()!(new Error('disk full'));
    await expect(first).rejects.toThrow('disk full');
    const second = service.take();
    pending.shift()!(new Uint8Array([1, 2, 3]));
    expect(await second).toEqual(new Uint8Array([1, 2, 3]));
    expect(service.available).toBe(true);
    const none = createBackupService(undefined);
    expect(none.available).toBe(false);
    await expect(none.take()).rejects.toMatchObject({ code: 'not_embedded' });
    await expect(none.take()).rejects.toBeInstanceOf(DomainError);
  });

  it('needs an operator token of scope admin', async ({ app }) => {
    expect((await call(app.admin, 'GET', '/internal/v1/backup')).status).toBe(401);
  });
});
