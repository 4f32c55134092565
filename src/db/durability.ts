import { sql } from 'drizzle-orm';
import type { Db } from './types.js';

/*
 * Commit now, flush after the lock is gone, and share the flush.
 *
 * A commit with synchronous_commit = on waits for the WAL fsync (measured ~8 ms on this machine's
 * disk), and a row lock is released only when its transaction has committed. So a transaction that
 * holds a hot row (an account's chain head while linking events) would hold it across the fsync,
 * serialising its writers on the disk's latency.
 *
 * Instead those transactions commit asynchronously (SET LOCAL synchronous_commit = off, through
 * set_config inside one of their statements: recordEvent's insert, the list and audit statements'
 * CTE, the idempotency claim check, the linker's lock), which releases their locks as soon
 * as the commit record is in the WAL buffers; then someone waits for durability with flushWal()
 * before anything is answered: a tiny synchronous commit whose flush covers every earlier commit
 * record (WAL is flushed in order). For events that is the end of the linking round the request
 * waits for (domain/audit/linker.ts), shared by every request of the round. Nothing is disclosed
 * before its record is on disk; a crash before the flush loses the change, the event and the
 * response together. Concurrent flushes share fsyncs (group commit). One visible difference: for
 * those few milliseconds another session can already read the change.
 *
 * The debits do not do this (src/db/sql/verify_debit_batch.sql): an instance runs one debit
 * statement at a time, so its next batch waits for the answer anyway, and a synchronous commit
 * spares a flush statement per batch.
 */

/** A CTE (reference it so it runs) making the statement's own implicit transaction commit asynchronously. */
export const asyncCommitCte = sql`async_commit as (select set_config('synchronous_commit', 'off', true) as setting)`;

/**
 * Waits until everything committed so far is durable: a tiny transaction that writes one WAL record
 * of its own (a transactional logical message, which also gives it an xid), so that its commit is a
 * real synchronous commit, whose flush covers every earlier commit record.
 *
 * Both are needed. Postgres commits asynchronously, whatever synchronous_commit says, a transaction
 * that wrote no WAL before its commit record (xact.c: RecordTransactionCommit), and an xid alone
 * writes none: this used to be `select txid_current()`, which never waited for the disk
 * (measured: after 200 of them, each following an asynchronous commit, the WAL's flush position was
 * behind that commit 200 times; with this statement, 0). test/integration/durability.test.ts.
 */
export async function flushWal(db: Db): Promise<void> {
  await db.execute(sql`select pg_logical_emit_message(true, 'keyplane.flush', '')`);
}
