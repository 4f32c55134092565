import type { Tx } from '../../db/types.js';
import { recordEvent, withEvents, type EventStore, type EventType } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';

/** What a revocation's event names of the key it revoked. */
interface RevokedKey {
  id: string;
  accountId: string;
  environment: 'test' | 'live';
  keyPrefix: string;
}

/**
 * Revokes one key and records `eventType` for it in the same transaction: `revoke` returns the
 * revoked row, or nothing when there is no active key of that id to revoke (not_found).
 */
export function revokeRecorded<R extends RevokedKey>(
  store: EventStore,
  revoke: (tx: Tx) => Promise<R | undefined>,
  eventType: Extract<EventType, 'service_key_revoked' | 'portal_key_revoked'>,
  ctx: OpContext,
): Promise<R> {
  return withEvents(store, (row) => row.accountId, async (tx) => {
    const row = await revoke(tx);
    if (!row) throw notFound();
    await recordEvent(tx, {
      accountId: row.accountId,
      eventType,
      environment: row.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: row.id,
      data: { key_prefix: row.keyPrefix },
      createdAt: ctx.now,
    });
    return row;
  });
}
