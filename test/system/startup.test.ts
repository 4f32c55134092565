import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCluster, freePort } from './support/cluster.js';
import { isBanner, serve } from './support/serve-process.js';

/*
 * Start-up (issue 31, item 7): an unreachable Postgres is retried a bounded number of times with a
 * growing wait, each attempt logged, then the process exits 4 (unavailable); a Postgres that comes up meanwhile is
 * used. In server mode the public listener binds every interface unless HOST says otherwise.
 */

const retries = (lines: { msg: string }[]) => lines.filter((l) => l.msg === 'database unreachable, retrying') as unknown as { attempt: number; attempts: number; retryInMs: number; reason: string }[];

describe('start-up', () => {
  it('gives up on an unreachable database after DATABASE_CONNECT_ATTEMPTS, logging each retry with its wait', async () => {
    const port = await freePort();
    const started = Date.now();
    const server = serve({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/keyplane`,
      PORT: String(await freePort()),
      DATABASE_CONNECT_ATTEMPTS: '3',
      DATABASE_CONNECT_BACKOFF_MS: '200',
    });
    // `keyplane serve` exits 4, unavailable, as every command does (src/cli/exit-codes.ts).
    expect(await server.exited).toBe(4);
    const tried = retries(server.lines);
    expect(tried.map((r) => [r.attempt, r.attempts, r.retryInMs, r.reason])).toEqual([
      [1, 3, 200, 'ECONNREFUSED'],
      [2, 3, 400, 'ECONNREFUSED'],
    ]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(server.lines.some(isBanner)).toBe(false);
    expect(server.lines.find((l) => l.msg === 'database unreachable, giving up')).toMatchObject({ attempts: 3, reason: 'ECONNREFUSED' });
    expect(server.lines.some((l) => l.msg === 'keyplane: the database is unreachable (ECONNREFUSED)')).toBe(true);
    expect(JSON.stringify(server.lines)).not.toMatch(/\n\s+at /);
  }, 60_000);

  it('waits for a Postgres that comes up during its retries, then starts; server mode binds every interface by default', async () => {
    const cluster = await createCluster();
    await cluster.stopImmediate();
    const port = await freePort();
    const server = serve({ DATABASE_URL: cluster.url, PORT: String(port), DATABASE_CONNECT_ATTEMPTS: '30', DATABASE_CONNECT_BACKOFF_MS: '250' });
    try {
      await server.waitFor((l) => l.msg === 'database unreachable, retrying');
      await cluster.start();
      const banner = await server.waitFor(isBanner, 90_000);
      expect(server.lines.find((l) => l.msg === 'database reachable')).toMatchObject({ attempt: expect.any(Number) });
      expect(banner).toMatchObject({ database: 'postgres', publicUrl: `http://localhost:${port}`, adminUrl: null });
      expect(banner.msg).toContain('internal API off: set KEYPLANE_ADMIN_TOKEN to start it');
      expect(banner.msg).not.toContain('admin-token');
      // 0.0.0.0: answered on loopback as on any other interface.
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(await server.stop()).toBe(0);
    } finally {
      await server.stop();
      await cluster.destroy();
    }
  }, 180_000);

  it('HOST overrides the default in either mode', async () => {
    const cluster = await createCluster();
    const port = await freePort();
    const server = serve({ DATABASE_URL: cluster.url, HOST: '127.0.0.1', PORT: String(port) });
    try {
      expect(await server.waitFor(isBanner)).toMatchObject({ publicUrl: `http://127.0.0.1:${port}` });
    } finally {
      await server.stop();
      await cluster.destroy();
    }
  }, 180_000);

  it('embedded: refuses a weak token in DATA_DIR/admin-token (exit 2), and makes a copied-in one private', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keyplane-weak-token-'));
    try {
      mkdirSync(path.join(dir, 'data'), { mode: 0o700 });
      writeFileSync(path.join(dir, 'data', 'admin-token'), 'changeme\n', { mode: 0o644 });
      const server = serve({ DATA_DIR: path.join(dir, 'data'), PORT: String(await freePort()), ADMIN_PORT: String(await freePort()) });
      expect(await server.exited).toBe(2);
      expect(server.lines.some((l) => /^keyplane: invalid configuration: the operator token in \S+admin-token must be at least 32 characters/.test(l.msg))).toBe(true);
      expect(server.lines.some(isBanner)).toBe(false);
      expect(JSON.stringify(server.lines)).not.toContain('changeme');
      expect(statSync(path.join(dir, 'data', 'admin-token')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
