import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { ADMIN_TOKEN, call, type TestApp } from '../support/harness.js';
import { mintChild } from '../support/child-keys.js';
import { it } from '../support/fixtures.js';

/*
 * Verification activity (the console's charts): verify answers counted in memory per key, minute
 * and outcome, added to the table by one flush, so that flushes (and instances) add up; kept 30 days.
 */

const verify = (t: TestApp, body: Record<string, unknown>) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });

describe('verification activity', () => {
  it('counts answers per key, minute and outcome; each flush adds to the rows', async ({ app: t, tenant }) => {
    const key = await mintChild(t, tenant, { monthlyCapCents: 100 });
    for (let i = 0; i < 3; i++) expect((await verify(t, { key: key.plaintext, verb: 'call' })).body.valid).toBe(true);
    await verify(t, { key: key.plaintext, verb: 'call', cost_cents: 500, request_id: randomUUID() });
    expect(await t.services.maintenance.flushActivity()).toBe(2);
    expect(await t.services.maintenance.flushActivity()).toBe(0);
    await verify(t, { key: key.plaintext, verb: 'call' });
    await t.services.maintenance.flushActivity();
    const rows = await queryRows<{ outcome: string; count: number }>(t.database.db, sql`select outcome, sum(count)::int as count from verify_activity where key_id = ${key.id} group by outcome order by outcome`);
    expect(rows).toEqual([
      { outcome: 'cap_exceeded', count: 1 },
      { outcome: 'valid', count: 4 },
    ]);
    const chart = await t.services.activity.chart(tenant.accountId, key.id, '24h', t.clock.now());
    expect(chart.buckets).toHaveLength(24);
    expect(chart.series.valid.reduce((a, b) => a + b, 0)).toBe(4);
    expect(chart.series.cap_exceeded.at(-1)).toBe(1);
    const top = await t.services.activity.topRefused(tenant.accountId, t.clock.now());
    expect(top).toEqual([{ keyId: key.id, refusals: 1 }]);
  });

  it('keeps 30 days: the sweep deletes older minutes only', async ({ app: t, tenant }) => {
    const key = await mintChild(t, tenant);
    await verify(t, { key: key.plaintext, verb: 'call' });
    await t.services.maintenance.flushActivity();
    expect(await t.services.maintenance.sweepActivity(new Date(t.clock.now().getTime() + 29 * 86_400_000))).toBe(0);
    expect(await t.services.maintenance.sweepActivity(new Date(t.clock.now().getTime() + 31 * 86_400_000))).toBeGreaterThanOrEqual(1);
    const left = await queryRows<{ n: number }>(t.database.db, sql`select count(*)::int as n from verify_activity where key_id = ${key.id}`);
    expect(left[0]!.n).toBe(0);
  });
});
