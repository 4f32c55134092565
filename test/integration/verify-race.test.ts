import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { afterAll, describe, expect, inject } from 'vitest';
import { buildAdminApp } from '../../src/app.js';
import { createServices } from '../../src/services.js';
import { openDatabase, type Database } from '../../src/db/database.js';
import { mintChild, revokeChild, rotateChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, createTenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';
import type { FastifyInstance } from 'fastify';

/*
 * No cache can serve a revoked key: a verification that starts after the revocation has committed
 * answers invalid, on every instance. On Postgres a second instance with its own pool stands in for
 * another process; on PGlite (one process by design) both instances share the embedded database.
 */

let t: TestApp;
let other: FastifyInstance;
let otherDb: Database | undefined;
it.beforeAll(async ({ app }) => {
  t = app;
  const url = inject('databaseUrl');
  otherDb = url ? await openDatabase({ databaseUrl: url, poolMax: 4 }) : undefined;
  other = await buildAdminApp({ services: createServices(otherDb ?? t.database), logger: pino({ level: 'silent' }), clock: t.clock, adminToken: ADMIN_TOKEN });
  await other.ready();
});
afterAll(async () => {
  await other.close();
  await otherDb?.close();
});

interface Sample {
  startedAt: number;
  endedAt: number;
  valid: boolean;
  code: string;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Launches after the commit, at least: so that the race always has both sides to check. */
const MIN_AFTER_COMMIT = 5;
/** A bound on the launches, should the action never be seen to commit. */
const MAX_LAUNCHES = 5_000;

/**
 * Launches n verifications, one every ~1 ms, alternating instances, and runs `act` after the kth
 * launch. On a busy machine the action's commit can be observed only after the nth launch, so it
 * goes on launching until MIN_AFTER_COMMIT have started after the commit.
 */
async function raceAgainst(key: string, n: number, k: number, act: () => Promise<void>) {
  const samples: Promise<Sample>[] = [];
  let committedAt = Number.NaN;
  let actStartedAt = Number.NaN;
  let acting: Promise<void> | undefined;
  let launchedAfterCommit = 0;
  for (let i = 0; i < n || launchedAfterCommit < MIN_AFTER_COMMIT; i++) {
    if (i >= MAX_LAUNCHES) throw new Error(`the action was not seen to commit within ${MAX_LAUNCHES} launches`);
    const app = i % 2 === 0 ? t.admin : other;
    const startedAt = performance.now();
    // NaN (not committed yet) compares false.
    if (startedAt > committedAt) launchedAfterCommit++;
    samples.push(
      call(app, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call' } }).then((res) => {
        expect(res.status).toBe(200);
        return { startedAt, endedAt: performance.now(), valid: res.body.valid, code: res.body.code };
      }),
    );
    if (i === k) {
      actStartedAt = performance.now();
      // Taken when the commit is observed: no earlier than the commit itself, so "started after
      // committedAt" certainly means "started after the commit".
      acting = act().then(() => void (committedAt = performance.now()));
    }
    await pause(1);
  }
  await acting;
  return { samples: await Promise.all(samples), committedAt, actStartedAt };
}

describe('revocation race', () => {
  it('revoking while 50 verifications are in flight: none that starts after the commit answers valid', async () => {
    const tenant = await createTenant(t);
    for (let round = 0; round < 3; round++) {
      const key = await mintChild(t, tenant);
      const { samples, committedAt, actStartedAt } = await raceAgainst(key.plaintext, 50, 10, async () => {
        await revokeChild(t, tenant, key.id);
      });
      expect(Number.isFinite(committedAt)).toBe(true);
      const after = samples.filter((s) => s.startedAt > committedAt);
      // The race was real: verifications ran on both sides of the commit (a valid answer read the
      // row before the revocation committed; raceAgainst launches until some start after it).
      expect(after.length).toBeGreaterThan(0);
      expect(samples.some((s) => s.valid)).toBe(true);
      // Whatever finished before the revocation began saw the key live.
      expect(samples.filter((s) => s.endedAt < actStartedAt).every((s) => s.valid)).toBe(true);
      expect(after.filter((s) => s.valid)).toEqual([]);
      expect(after.every((s) => s.code === 'invalid_api_key')).toBe(true);
    }
  });

  it('rotating while verifications are in flight: the old key stops at the commit, the new one works at once', async () => {
    const tenant = await createTenant(t);
    const key = await mintChild(t, tenant);
    let successor = '';
    const { samples, committedAt } = await raceAgainst(key.plaintext, 50, 10, async () => {
      successor = (await rotateChild(t, tenant, key.id)).plaintext;
    });
    const after = samples.filter((s) => s.startedAt > committedAt);
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((s) => s.valid)).toEqual([]);
    for (const app of [t.admin, other]) {
      const res = await call(app, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key: successor, verb: 'call' } });
      expect(res.body.valid).toBe(true);
    }
  });
});
