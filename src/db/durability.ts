import { sql } from 'drizzle-orm';
import type { Db } from './client.js';

/*
 * Commit now, flush after the lock is gone.
 *
 * Every event is chained through its account row (domain/events.ts), and a row lock is released only
 * when its transaction has committed, which with synchronous_commit = on includes the WAL fsync. So
 * the chain serialises each account's event writers on the disk's fsync latency (measured ~8 ms
 * here: at most ~120 chained events/s per account, however many connections wait).
 *
 * Instead a transaction that writes an event commits asynchronously (SET LOCAL synchronous_commit =
 * off, through set_config inside one of its statements: the list read's CTE below, the idempotent
 * mint/rotate's claim check), which releases the account row as soon as the
 * commit record is in the WAL buffers, and then the caller waits for durability with flushWal()
 * before answering: a tiny synchronous commit whose flush covers every earlier commit record, ours
 * included (WAL is flushed in order). Nothing is disclosed before its record is on disk; a crash
 * before the flush loses the event and the response together. The flushes of concurrent requests
 * share fsyncs (group commit), outside any lock.
 * One visible difference: for those few milliseconds another session can already read the event.
 */

/** A CTE (reference it so it runs) making the statement's own implicit transaction commit asynchronously. */
export const asyncCommitCte = sql`async_commit as (select set_config('synchronous_commit', 'off', true) as setting)`;

/**
 * Waits until everything committed so far is durable: txid_current() gives this statement an xid,
 * so its commit is a real (synchronous) commit that flushes the WAL up to its own record.
 */
export async function flushWal(db: Db): Promise<void> {
  await db.execute(sql`select txid_current()`);
}
