import type { Tx } from '../../db/types.js';
import { recordEvent, recordEvents, withEvents, type EventStore, type EventTx, type EventType } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';

/*
 * A key's revocation and its compliance event, for every path that revokes one: a service key's
 * DELETE /v1/keys/{id} (child-keys.ts), the portal's revocations (portal/) and the operator's
 * (operator/).
 */

/** What a revocation's event names of the key it revoked. */
interface RevokedKey {
  id: string;
  accountId: string;
  environment: 'test' | 'live';
  keyPrefix: string;
}

/** The event types that record a key's revocation, one per kind of key. */
export type RevocationEvent = Extract<EventType, 'service_key_revoked' | 'portal_key_revoked' | 'agent_key_revoked'>;

/** The event of one revoked key: the key as subject and its prefix (never a secret), plus `details`. */
const revocationEvent = (key: RevokedKey, eventType: RevocationEvent, ctx: OpContext, details: Record<string, unknown>) => ({
  accountId: key.accountId,
  eventType,
  environment: key.environment,
  actor: ctx.actor,
  meta: ctx.meta,
  subjectKeyId: key.id,
  data: { key_prefix: key.keyPrefix, ...details },
  createdAt: ctx.now,
});

/**
 * Records `eventType` for a key revoked in this transaction, with `details` (why, and what went
 * with it).
 */
export async function recordRevocation(tx: EventTx, key: RevokedKey, eventType: RevocationEvent, ctx: OpContext, details: Record<string, unknown> = {}): Promise<void> {
  await recordEvent(tx, revocationEvent(key, eventType, ctx, details));
}

/** As recordRevocation, for many keys revoked in one statement: their events in one INSERT. */
export async function recordRevocations(tx: EventTx, keys: RevokedKey[], eventType: RevocationEvent, ctx: OpContext, details: Record<string, unknown> = {}): Promise<void> {
  await recordEvents(
    tx,
    keys.map((key) => revocationEvent(key, eventType, ctx, details)),
  );
}

/**
 * Revokes one key and records `eventType` for it in the same transaction: `revoke` returns the
 * revoked row, or nothing when there is no active key of that id to revoke (not_found).
 */
export function revokeRecorded<R extends RevokedKey>(
  store: EventStore,
  revoke: (tx: Tx) => Promise<R | undefined>,
  eventType: Extract<RevocationEvent, 'service_key_revoked' | 'portal_key_revoked'>,
  ctx: OpContext,
): Promise<R> {
  return withEvents(store, (row) => row.accountId, async (tx) => {
    const row = await revoke(tx);
    if (!row) throw notFound();
    await recordRevocation(tx, row, eventType, ctx);
    return row;
  });
}
