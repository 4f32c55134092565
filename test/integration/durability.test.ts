import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database, Db } from '../../src/db/database.js';
import { CoalescedRun } from '../../src/db/group-commit.js';
import { flushWal } from '../../src/db/durability.js';
import { queryRows } from '../../src/db/statements.js';
import { sql } from 'drizzle-orm';
import { testDatabase } from '../support/harness.js';

/*
 * CoalescedRun around flushWal, as the event linker shares its rounds: concurrent callers share
 * flushes, and no caller is answered by a flush that began before it called (its commit might not
 * be covered). Observed on a real database through a Db whose execute records when each flush
 * statement starts and ends.
 */

const runs = new WeakMap<Db, CoalescedRun>();
function flushWalShared(db: Db): Promise<void> {
  let run = runs.get(db);
  if (!run) runs.set(db, (run = new CoalescedRun(() => flushWal(db))));
  return run.request();
}

let database: Database;
beforeAll(async () => {
  database = await testDatabase();
});
afterAll(() => database.close());

function observed(db: Db) {
  const flushes: { started: number; ended: number }[] = [];
  const proxy = new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== 'execute') return Reflect.get(target, prop, receiver);
      return async (...args: unknown[]) => {
        const f = { started: performance.now(), ended: Infinity };
        flushes.push(f);
        try {
          return await (target.execute as (...a: unknown[]) => Promise<unknown>)(...args);
        } finally {
          f.ended = performance.now();
        }
      };
    },
  });
  return { db: proxy as Db, flushes };
}

describe('CoalescedRun over flushWal', () => {
  it('50 concurrent callers share at most two flushes', async () => {
    const { db, flushes } = observed(database.db);
    await Promise.all(Array.from({ length: 50 }, () => flushWalShared(db)));
    expect(flushes.length).toBeGreaterThanOrEqual(1);
    expect(flushes.length).toBeLessThanOrEqual(2);
  });

  it('a caller arriving during a flush waits for one that starts after its call', async () => {
    const { db, flushes } = observed(database.db);
    for (let round = 0; round < 20; round++) {
      const first = flushWalShared(db);
      const calledAt = performance.now();
      const late = flushWalShared(db).then(() => performance.now());
      const [, answeredAt] = await Promise.all([first, late]);
      // Some flush that began after the late call had ended before it was answered.
      expect(flushes.some((f) => f.started >= calledAt && f.ended <= answeredAt)).toBe(true);
    }
  });

  it('a failed flush fails its callers, and the next flush runs afresh', async () => {
    const { db } = observed(database.db);
    let fail = true;
    const flaky = new Proxy(db, {
      get(target, prop, receiver) {
        if (prop === 'execute' && fail) return async () => Promise.reject(new Error('connection lost'));
        return Reflect.get(target, prop, receiver);
      },
    });
    await expect(Promise.all([flushWalShared(flaky), flushWalShared(flaky)])).rejects.toThrow('connection lost');
    fail = false;
    await expect(flushWalShared(flaky)).resolves.toBeUndefined();
  });
});

describe('flushWal', () => {
  it('makes every commit before it durable, asynchronous ones included', async () => {
    const db = database.db;
    // An asynchronous commit that wrote WAL, as recordEvent's and the linker's transactions do (its
    // commit record written, not flushed), then the WAL position after that record.
    let behind = 0;
    for (let i = 0; i < 50; i++) {
      await db.execute(sql`with async_commit as (select set_config('synchronous_commit', 'off', true))
        select pg_logical_emit_message(true, 'keyplane.test', 'async') from async_commit`);
      const [inserted] = await queryRows<{ lsn: string }>(db, sql`select pg_current_wal_insert_lsn()::text as lsn`);
      await flushWal(db);
      const [flushed] = await queryRows<{ durable: boolean }>(db, sql`select pg_current_wal_flush_lsn() >= ${inserted!.lsn}::pg_lsn as durable`);
      if (!flushed!.durable) behind++;
    }
    // `select txid_current()`, the flush this replaced, left the WAL behind the commit every time.
    expect(behind).toBe(0);
  });
});
