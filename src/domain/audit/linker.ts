import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { linkerDb, type Db, type Tx } from '../../db/database.js';
import { CoalescedRun } from '../../db/coalesced-run.js';
import { flushWal } from '../../db/durability.js';
import { queryRows } from '../../db/statements.js';
import { complianceEvents, eventColumns } from '../../db/schema.js';
import { DomainError } from '../errors.js';
import { canonicalEvent, chainHash, eventAccounts } from './events.js';

/*
 * Links compliance events into their account's hash chain, in batches (group commit).
 *
 * An event is inserted without its link in the transaction of the change it records (recordEvent).
 * After that transaction commits, the request asks for its account's events to be linked and waits:
 * one linking round takes the account row's lock, reads every event still waiting (oldest first),
 * computes their links in order from the chain head (sha256(prev_hash | seq | canonical event), the
 * same function `audit verify` recomputes from the stored rows), writes them and the new head in one
 * statement, commits, and flushes the WAL. Every request whose event committed before a round began
 * is answered when that round ends; requests arriving meanwhile share the next round. So a busy
 * account takes its row lock once per batch instead of once per request, and no request holds it
 * across its own work.
 *
 * Invariants: an event's link is written exactly once (trigger, migration 0002); seq stays gap-free
 * per account (the head and the links change in one transaction under the row lock); nothing is
 * answered before its change, its event and (normally) its link are on disk. If linking fails, the
 * request is still answered once its event is durable, and the events wait for the next round or
 * the sweeper (linkPendingEvents), which links whatever a crash or failure left behind.
 */

/** Events linked per statement: large enough for any burst, small enough to keep a round short. */
export const LINK_BATCH = 1_000;

let reportFailure: (accountId: string, err: unknown) => void = () => {};
/** Where link failures go (the server's logger); the events stay waiting and are retried. */
export function onLinkFailure(fn: (accountId: string, err: unknown) => void): void {
  reportFailure = fn;
}

/** One batch: links up to LINK_BATCH waiting events of the account. Returns how many it linked. */
async function linkBatch(db: Db, accountId: string): Promise<number> {
  return db.transaction(async (tx) => {
    // The lock comes first and the events are read in a later statement, so (read committed) they
    // are read after any other linker's commit that this lock waited for. FOR NO KEY UPDATE: it
    // serialises linkers, and unlike FOR UPDATE it does not conflict with the FOR KEY SHARE that
    // every insert referencing the account (a key, through its foreign key) takes, so mints do not
    // queue behind a linking round (pg_stat_statements: that foreign-key check averaged 587 µs of
    // waiting per mint under FOR UPDATE; mint 611–636 → 754–1,183 req/s in alternating runs).
    const [head] = await queryRows<{ chain_seq: string | number; chain_head: string }>(
      tx,
      sql`select chain_seq, chain_head, set_config('synchronous_commit', 'off', true) as async_commit
            from accounts where id = ${accountId} for no key update`,
    );
    if (!head) return 0;
    const waiting = await tx
      .select(eventColumns)
      .from(complianceEvents)
      .where(and(eq(complianceEvents.accountId, accountId), isNull(complianceEvents.seq)))
      .orderBy(asc(complianceEvents.createdAt), asc(complianceEvents.id))
      .limit(LINK_BATCH);
    if (waiting.length === 0) return 0;
    let seq = Number(head.chain_seq);
    let prev = head.chain_head;
    const links = waiting.map((event) => {
      seq++;
      const hash = chainHash(prev, seq, canonicalEvent(event));
      const link = { id: event.id, seq, prev_hash: prev, hash };
      prev = hash;
      return link;
    });
    const last = links[links.length - 1]!;
    const updated = await queryRows<{ id: string }>(
      tx,
      sql`with links as (
            select * from jsonb_to_recordset(${JSON.stringify(links)}::jsonb) as l(id uuid, seq bigint, prev_hash text, hash text)
          ),
          linked as (
            update compliance_events e
               set seq = l.seq, prev_hash = l.prev_hash, hash = l.hash
              from links l
             where e.id = l.id and e.account_id = ${accountId} and e.seq is null
            returning e.id
          )
          update accounts
             set chain_seq = ${last.seq}, chain_prev = ${last.prev_hash}, chain_head = ${last.hash}
           where id = ${accountId} and (select count(*) from linked) = ${links.length}
          returning id`,
    );
    // Under the account's lock no one else links its events; if the counts differ, roll it all back.
    if (updated.length !== 1) throw new Error(`account ${accountId}: ${links.length} events read but not all linked`);
    return links.length;
  });
}

/**
 * A round that has not ended after this long is given up by its waiters (they answer 503 and may
 * retry), so a connection stuck in an outage cannot hold an account's requests indefinitely. The
 * round itself may still finish; a later round running beside it is safe, as both take the
 * account row's lock in turn.
 */
export const LINK_ROUND_TIMEOUT_MS = 5_000;
let roundTimeoutMs = LINK_ROUND_TIMEOUT_MS;
/** Tests shorten the bound to make a round overrun it; returns a function restoring the default. */
export function setLinkRoundTimeout(ms: number): () => void {
  roundTimeoutMs = ms;
  return () => {
    roundTimeoutMs = LINK_ROUND_TIMEOUT_MS;
  };
}

/** One round: link everything waiting, then flush (which also makes the callers' commits durable). */
async function linkRound(db: Db, accountId: string): Promise<void> {
  const work = (async () => {
    try {
      while ((await linkBatch(db, accountId)) === LINK_BATCH);
    } catch (err) {
      reportFailure(accountId, err);
    }
    await flushWal(db);
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DomainError('service_unavailable', undefined, [], { 'retry-after': '2' })),
      roundTimeoutMs,
    );
    timer.unref();
  });
  work.catch(() => {});
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Per account, at most one round running and one queued (CoalescedRun). */
const rounds = new WeakMap<Db, Map<string, CoalescedRun>>();

/**
 * Resolves when every event of the account committed before this call is linked (unless linking
 * failed, which is reported and retried later) and durable. Rejects only if the flush fails.
 */
export function linkEvents(db: Db, accountId: string): Promise<void> {
  let perAccount = rounds.get(db);
  if (!perAccount) rounds.set(db, (perAccount = new Map()));
  let account = perAccount.get(accountId);
  if (!account) {
    const connection = linkerDb(db);
    const created = new CoalescedRun(() => linkRound(connection, accountId));
    perAccount.set(accountId, (account = created));
  }
  const done = account.request();
  const owner = account;
  const forget = () => {
    if (owner.idle && perAccount.get(accountId) === owner) perAccount.delete(accountId);
  };
  done.then(forget, forget);
  return done;
}

/**
 * A transaction that may record events: runs `fn` in a transaction, and after it commits links the
 * events it recorded and waits until they are durable, so the caller may answer. Every write path
 * that records an event goes through here (recordEvent refuses any other transaction).
 */
export async function withEvents<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const accounts = new Set<string>();
  const result = await db.transaction(async (tx) => {
    eventAccounts.set(tx, accounts);
    return fn(tx);
  });
  if (accounts.size === 0) {
    // No event, but the transaction may still have committed asynchronously (idempotency claims).
    await flushWal(db);
  }
  for (const accountId of accounts) await linkEvents(db, accountId);
  return result;
}

/** Links every waiting event of every account (left by a crash or a failed round). Returns the accounts seen. */
export async function linkPendingEvents(db: Db): Promise<number> {
  const rows = await queryRows<{ account_id: string }>(
    db,
    sql`select distinct account_id from compliance_events where seq is null`,
  );
  for (const row of rows) await linkEvents(db, row.account_id);
  return rows.length;
}

/** How many events are waiting for their link (for `audit verify` and the health of the linker). */
export async function countUnlinkedEvents(db: Db, accountId?: string): Promise<number> {
  const rows = await queryRows<{ n: string | number }>(
    db,
    accountId
      ? sql`select count(*) as n from compliance_events where seq is null and account_id = ${accountId}`
      : sql`select count(*) as n from compliance_events where seq is null`,
  );
  return Number(rows[0]?.n ?? 0);
}
