import { accountIdsAfter, chainHead, chainHeadsAfter, eventsBySeq, type ChainHeadRow } from '../../db/queries/chain.queries.js';
import type { Db } from '../../db/types.js';
import { GENESIS_HASH, type ComplianceEventRow } from '../../db/schema.js';
import { isUuid } from '../ids.js';
import { notFound } from '../errors.js';
import { canonicalEvent, chainHash } from './chain-hash.js';
import type { EventStore } from './events.js';

/*
 * Recomputes the compliance hash chains (see linker.ts). For each account, in seq order:
 * seq runs 1..n without a gap, each prev_hash equals the previous link (the first one the genesis
 * hash), each hash equals sha256(prev_hash | seq | canonical event), and the last link equals the
 * account's chain head. The first link that fails is reported.
 *
 * Accounts and events are read in keyset batches (by id, by seq), so memory stays flat on any
 * number of events. The account head is read first and events are checked up to that seq, so a
 * verification running next to live writers never reports their new events as a broken head.
 */

/** Rows per query: large enough to amortise round trips, small enough to keep memory flat. */
const EVENT_BATCH = 2_000;
const ACCOUNT_BATCH = 500;

export interface ChainBreak {
  accountId: string;
  /** The seq at which the chain breaks (the expected seq where one is missing). */
  seq: number;
  /** The event found at that position, or null when there is none. */
  eventId: string | null;
  problem: 'seq_gap' | 'prev_hash_mismatch' | 'hash_mismatch' | 'head_mismatch';
  message: string;
}

export interface AccountVerification {
  accountId: string;
  events: number;
  firstBreak: ChainBreak | null;
}

export interface Verification {
  accounts: number;
  events: number;
  /** The first broken link over all accounts verified (accounts in id order). */
  firstBreak: ChainBreak | null;
}

async function verifyFromHead(db: Db, head: ChainHeadRow): Promise<AccountVerification> {
  const broken = (seq: number, eventId: string | null, problem: ChainBreak['problem'], message: string): AccountVerification => ({
    accountId: head.id,
    events: seq - 1,
    firstBreak: { accountId: head.id, seq, eventId, problem, message },
  });
  let expectedSeq = 1;
  let prev = GENESIS_HASH;
  let lastId: string | null = null;
  for (;;) {
    const rows = await eventsBySeq(db, head.id, { afterSeq: expectedSeq - 1, uptoSeq: head.chainSeq }, EVENT_BATCH);
    for (const row of rows) {
      if (row.seq !== expectedSeq) {
        return broken(expectedSeq, row.id, 'seq_gap', `event seq ${expectedSeq} is missing (the next event has seq ${row.seq})`);
      }
      if (row.prevHash !== prev) {
        return broken(row.seq, row.id, 'prev_hash_mismatch', `prev_hash does not equal the hash of event seq ${row.seq - 1} (events removed, reordered or replaced)`);
      }
      if (chainHash(prev, row.seq, canonicalEvent(row)) !== row.hash) {
        return broken(row.seq, row.id, 'hash_mismatch', `hash does not match the event's content (the event was changed)`);
      }
      prev = row.hash;
      lastId = row.id;
      expectedSeq++;
    }
    if (rows.length < EVENT_BATCH) break;
  }
  const last = expectedSeq - 1;
  if (last !== head.chainSeq) {
    return broken(expectedSeq, null, 'head_mismatch', `the account's chain head is at seq ${head.chainSeq} but the events end at seq ${last} (events missing at the end)`);
  }
  if (prev !== head.chainHead) {
    return broken(last, lastId, 'head_mismatch', `the last event's hash does not equal the account's chain head`);
  }
  return { accountId: head.id, events: last, firstBreak: null };
}

export async function verifyAccountChain(db: Db, accountId: string): Promise<AccountVerification> {
  if (!isUuid(accountId)) throw notFound();
  const head = await chainHead(db, accountId);
  if (!head) throw notFound();
  return verifyFromHead(db, head);
}

/** Every account's chain (or one account's), stopping at the first broken link. */
export async function verifyChains(db: Db, opts: { accountId?: string } = {}): Promise<Verification> {
  if (opts.accountId) {
    const one = await verifyAccountChain(db, opts.accountId);
    return { accounts: 1, events: one.events, firstBreak: one.firstBreak };
  }
  let accountsSeen = 0;
  let events = 0;
  let after: string | null = null;
  for (;;) {
    const heads = await chainHeadsAfter(db, after, ACCOUNT_BATCH);
    for (const head of heads) {
      const v = await verifyFromHead(db, head);
      accountsSeen++;
      events += v.events;
      if (v.firstBreak) return { accounts: accountsSeen, events, firstBreak: v.firstBreak };
    }
    if (heads.length < ACCOUNT_BATCH) break;
    after = heads[heads.length - 1]!.id;
  }
  return { accounts: accountsSeen, events, firstBreak: null };
}

/**
 * The events of one account in seq order, in batches, for export (JSON lines). Yields the stored
 * rows unchanged, so that an archive can be verified with the same rules as the live table.
 */
async function* exportAccountEvents(db: Db, accountId: string, afterSeq = 0): AsyncGenerator<ComplianceEventRow> {
  let last = afterSeq;
  for (;;) {
    const rows = await eventsBySeq(db, accountId, { afterSeq: last }, EVENT_BATCH);
    yield* rows;
    if (rows.length < EVENT_BATCH) return;
    last = rows[rows.length - 1]!.seq!;
  }
}

/** Every account id, in id order, in batches. */
async function* accountIds(db: Db): AsyncGenerator<string> {
  let after: string | null = null;
  for (;;) {
    const ids = await accountIdsAfter(db, after, ACCOUNT_BATCH);
    yield* ids;
    if (ids.length < ACCOUNT_BATCH) return;
    after = ids[ids.length - 1]!;
  }
}

/** `keyplane audit verify` and `audit export`: the chain recomputed, and the events archived. */
export function createChainService(store: EventStore) {
  return {
    /** Links whatever is waiting first (committed facts), then verifies; returns how many waited. */
    async verify(opts: { accountId?: string } = {}): Promise<Verification & { linkedFirst: number }> {
      const waiting = await store.linker.countWaiting(opts.accountId && isUuid(opts.accountId) ? opts.accountId : undefined);
      if (waiting > 0) await store.linker.linkPending();
      return { ...(await verifyChains(store.db, opts)), linkedFirst: waiting };
    },
    exportAccount: (accountId: string, afterSeq = 0) => exportAccountEvents(store.db, accountId, afterSeq),
    accountIds: () => accountIds(store.db),
  };
}

export type ChainService = ReturnType<typeof createChainService>;
