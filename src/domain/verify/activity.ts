import { activitySeries, addActivityCounts, sweepActivity, topRefusedKeys, type ActivityCount } from '../../db/queries/activity.queries.js';
import type { Db } from '../../db/types.js';
import { isUuid } from '../ids.js';
import { notFound } from '../errors.js';

/*
 * Verification activity for the console's charts: counts per key, minute and outcome, added up in
 * memory on the verify path (a Map increment, no I/O) and written by flush() in one statement every
 * few seconds (VERIFY_ACTIVITY_FLUSH_MS). Telemetry, not the ledger: a crash loses at most the
 * counts of one flush interval (plus a flush in flight). Kept 30 days.
 */

export const ACTIVITY_OUTCOMES = ['valid', 'invalid', 'denied', 'scope', 'cap_exceeded'] as const;
export type ActivityOutcome = (typeof ACTIVITY_OUTCOMES)[number];
export const ACTIVITY_RETENTION_MS = 30 * 24 * 3600_000;

const OUTCOME_OF: Record<string, ActivityOutcome> = {
  valid: 'valid',
  invalid_api_key: 'invalid',
  agent_permission_denied: 'denied',
  agent_scope_error: 'scope',
  agent_cap_exceeded: 'cap_exceeded',
};

export interface ActivityChart {
  /** Bucket starts (ISO) and, per outcome, the count of each bucket. */
  buckets: string[];
  series: Record<ActivityOutcome, number[]>;
}

export function createVerifyActivity(db: Db) {
  let pending = new Map<string, ActivityCount>();
  return {
    /** Counts one verification (the verify path calls it with the answer's code). */
    record(accountId: string, keyId: string, code: string, now: Date): void {
      const outcome = OUTCOME_OF[code];
      if (!outcome) return;
      const minute = Math.floor(now.getTime() / 60_000) * 60_000;
      const k = `${keyId}|${minute}|${outcome}`;
      const c = pending.get(k);
      if (c) c.count++;
      else pending.set(k, { accountId, keyId, minute: new Date(minute), outcome, count: 1 });
    },
    /** Writes the counts gathered since the last flush in one statement; on failure they are kept for the next. */
    async flush(): Promise<number> {
      if (pending.size === 0) return 0;
      const batch = pending;
      pending = new Map();
      try {
        await addActivityCounts(db, [...batch.values()]);
        return batch.size;
      } catch (err) {
        for (const [k, c] of batch) {
          const now = pending.get(k);
          if (now) now.count += c.count;
          else pending.set(k, c);
        }
        throw err;
      }
    },
    sweep: (now: Date) => sweepActivity(db, new Date(now.getTime() - ACTIVITY_RETENTION_MS)),
    /** The account's (or one key's) counts over the last 24 hours by hour, or 30 days by day. */
    async chart(accountId: string, keyId: string | null, range: '24h' | '30d', now: Date): Promise<ActivityChart> {
      if (!isUuid(accountId) || (keyId !== null && !isUuid(keyId))) throw notFound();
      const unitMs = range === '24h' ? 3600_000 : 86_400_000;
      const n = range === '24h' ? 24 : 30;
      const first = Math.floor(now.getTime() / unitMs) * unitMs - (n - 1) * unitMs;
      const rows = await activitySeries(db, accountId, keyId, new Date(first), range === '24h' ? 'hour' : 'day');
      const series = Object.fromEntries(ACTIVITY_OUTCOMES.map((o) => [o, new Array<number>(n).fill(0)])) as Record<ActivityOutcome, number[]>;
      for (const r of rows) {
        const i = Math.round((r.bucket.getTime() - first) / unitMs);
        const s = series[r.outcome as ActivityOutcome];
        if (s && i >= 0 && i < n) s[i]! += r.count;
      }
      return { buckets: Array.from({ length: n }, (_, i) => new Date(first + i * unitMs).toISOString()), series };
    },
    topRefused: (accountId: string, now: Date) => topRefusedKeys(db, accountId, new Date(now.getTime() - 24 * 3600_000), 10),
  };
}

export type VerifyActivity = ReturnType<typeof createVerifyActivity>;
