import type { Db } from '../../db/types.js';
import { CoalescedRun } from '../../db/group-commit.js';
import { flushWal } from '../../db/durability.js';
import { accountsWithWaitingEvents, countWaitingEvents, lockChainHead, waitingEvents, writeLinks } from '../../db/queries/events.queries.js';
import { DomainError } from '../errors.js';
import { canonicalEvent, chainHash } from './chain-hash.js';

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
 * Invariants: an event's link is written exactly once (trigger, src/db/sql/compliance_events.sql);
 * seq stays gap-free per account (the head and the links change in one transaction under the row
 * lock); nothing is answered before its change, its event and (normally) its link are on disk. If
 * linking fails, the request is still answered once its event is durable, and the events wait for
 * the next round or the link sweep (linkPending), which links whatever a crash or failure left.
 */

/** Events linked per statement: large enough for any burst, small enough to keep a round short. */
const LINK_BATCH = 1_000;

/**
 * A round that has not ended after this long is given up by its waiters (they answer 503 and may
 * retry), so a connection stuck in an outage cannot hold an account's requests indefinitely. The
 * round itself may still finish; a later round running beside it is safe, as both take the
 * account row's lock in turn.
 */
const LINK_ROUND_TIMEOUT_MS = 5_000;

/** Seconds a client should wait before retrying when a linking round overran its bound. */
const LINK_RETRY_AFTER_S = 2;

export interface LinkerOptions {
  /** Overrides LINK_ROUND_TIMEOUT_MS (tests make a round overrun it). */
  roundTimeoutMs?: number;
  /** Where link failures go (the server's logger); the events stay waiting and are retried. */
  onFailure?: (accountId: string, err: unknown) => void;
}

export class EventLinker {
  /** Per account, at most one round running and one queued (CoalescedRun). */
  private readonly rounds = new Map<string, CoalescedRun>();
  private readonly roundTimeoutMs: number;
  private readonly onFailure: (accountId: string, err: unknown) => void;

  /** @param db the linker's own connections (Database.linkerDb). */
  constructor(
    private readonly db: Db,
    opts: LinkerOptions = {},
  ) {
    this.roundTimeoutMs = opts.roundTimeoutMs ?? LINK_ROUND_TIMEOUT_MS;
    this.onFailure = opts.onFailure ?? (() => {});
  }

  /**
   * Resolves when every event of the account committed before this call is linked (unless linking
   * failed, which is reported and retried later) and durable. Rejects only if the flush fails.
   */
  link(accountId: string): Promise<void> {
    let account = this.rounds.get(accountId);
    if (!account) {
      account = new CoalescedRun(() => this.round(accountId));
      this.rounds.set(accountId, account);
    }
    const done = account.request();
    const owner = account;
    const forget = () => {
      if (owner.idle && this.rounds.get(accountId) === owner) this.rounds.delete(accountId);
    };
    done.then(forget, forget);
    return done;
  }

  /** Waits until everything committed so far is durable (a transaction that recorded no event). */
  flush(): Promise<void> {
    return flushWal(this.db);
  }

  /** Links every waiting event of every account. Returns the accounts seen. */
  async linkPending(): Promise<number> {
    const accounts = await accountsWithWaitingEvents(this.db);
    for (const accountId of accounts) await this.link(accountId);
    return accounts.length;
  }

  /** How many events are waiting for their link (for `audit verify` and the health of the linker). */
  countWaiting(accountId?: string): Promise<number> {
    return countWaitingEvents(this.db, accountId);
  }

  /** One round: link everything waiting, then flush (which also makes the callers' commits durable). */
  private async round(accountId: string): Promise<void> {
    const work = (async () => {
      try {
        while ((await this.linkBatch(accountId)) === LINK_BATCH);
      } catch (err) {
        this.onFailure(accountId, err);
      }
      await flushWal(this.db);
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new DomainError('service_unavailable', undefined, [], { retryAfterSeconds: LINK_RETRY_AFTER_S })),
        this.roundTimeoutMs,
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

  /** One batch: links up to LINK_BATCH waiting events of the account. Returns how many it linked. */
  private linkBatch(accountId: string): Promise<number> {
    return this.db.transaction(async (tx) => {
      // The lock comes first and the events are read in a later statement, so (read committed) they
      // are read after any other linker's commit that this lock waited for.
      const head = await lockChainHead(tx, accountId);
      if (!head) return 0;
      const waiting = await waitingEvents(tx, accountId, LINK_BATCH);
      if (waiting.length === 0) return 0;
      let seq = head.seq;
      let prev = head.head;
      const links = waiting.map((event) => {
        seq++;
        const hash = chainHash(prev, seq, canonicalEvent(event));
        const link = { id: event.id, seq, prev_hash: prev, hash };
        prev = hash;
        return link;
      });
      // Under the account's lock no one else links its events; if the counts differ, roll it all back.
      if (!(await writeLinks(tx, accountId, links))) throw new Error(`account ${accountId}: ${links.length} events read but not all linked`);
      return links.length;
    });
  }
}
