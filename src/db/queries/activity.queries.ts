import { and, eq, gte, lt, sql } from 'drizzle-orm';
import { verifyActivity } from '../schema.js';
import type { Db } from '../types.js';

/*
 * Verification counts (telemetry for the console's charts): one statement adds a whole flush of
 * in-memory counts, rows past 30 days are swept, and the console reads them back by bucket.
 */

export interface ActivityCount {
  accountId: string;
  keyId: string;
  minute: Date;
  outcome: string;
  count: number;
}

/** Adds counts to their (account, key, minute, outcome) rows, creating those missing: one statement. */
export async function addActivityCounts(db: Db, counts: ActivityCount[]): Promise<void> {
  if (counts.length === 0) return;
  const json = JSON.stringify(counts.map((c) => ({ a: c.accountId, k: c.keyId, m: c.minute.toISOString(), o: c.outcome, n: c.count })));
  await db.execute(sql`
    insert into verify_activity (account_id, key_id, minute, outcome, count)
    select r.a, r.k, r.m, r.o, r.n from json_to_recordset(${json}::json) as r(a uuid, k uuid, m timestamptz, o text, n int)
    on conflict (account_id, key_id, minute, outcome) do update set count = verify_activity.count + excluded.count`);
}

/** Deletes counts of minutes before `before`; returns how many rows. */
export async function sweepActivity(db: Db, before: Date): Promise<number> {
  const rows = await db.delete(verifyActivity).where(lt(verifyActivity.minute, before)).returning({ k: verifyActivity.keyId });
  return rows.length;
}

export interface ActivityBucket {
  bucket: Date;
  outcome: string;
  count: number;
}

/** Counts since `since` summed per bucket ('hour' or 'day') and outcome, for the account or one key. */
export async function activitySeries(db: Db, accountId: string, keyId: string | null, since: Date, unit: 'hour' | 'day'): Promise<ActivityBucket[]> {
  const t = verifyActivity;
  const bucket = sql<Date>`date_trunc('${sql.raw(unit)}', ${t.minute}, 'UTC')`;
  const where = [eq(t.accountId, accountId), gte(t.minute, since)];
  if (keyId) where.push(eq(t.keyId, keyId));
  const rows = await db
    .select({ bucket, outcome: t.outcome, count: sql<number>`sum(${t.count})::int` })
    .from(t)
    .where(and(...where))
    .groupBy(bucket, t.outcome);
  return rows.map((r) => ({ bucket: new Date(r.bucket), outcome: r.outcome, count: Number(r.count) }));
}

/** The keys of the account with the most refused verifications since `since`. */
export async function topRefusedKeys(db: Db, accountId: string, since: Date, limit: number): Promise<Array<{ keyId: string; refusals: number }>> {
  const t = verifyActivity;
  const total = sql<number>`sum(${t.count})::int`;
  const rows = await db
    .select({ keyId: t.keyId, refusals: total })
    .from(t)
    .where(and(eq(t.accountId, accountId), gte(t.minute, since), sql`${t.outcome} <> 'valid'`))
    .groupBy(t.keyId)
    .orderBy(sql`2 desc`)
    .limit(limit);
  return rows.map((r) => ({ keyId: r.keyId, refusals: Number(r.refusals) }));
}
