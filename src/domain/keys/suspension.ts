import { changeOverlapping, lockChangeableKey, setSuspendedAt, type KeyOwner } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import type { ServicePrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';
import { isUuid } from '../ids.js';
import { ownerOf } from './child-keys.js';
import { cascadeSuspension } from './delegation-cascade.js';

/*
 * Suspension: POST /v1/keys/{id}/suspend and /resume, and the operator's
 * /internal/v1/keys/{id}/suspend and /resume. A suspended key is refused on the very next request on
 * every instance (key-state.ts; nothing is cached), keeps its lineage, spend and settings, and works
 * again on the next request after resume. PATCH and DELETE still act on it; rotating it is
 * key_suspended. Suspending a suspended key (or resuming a live one) changes nothing and records
 * nothing.
 */

export interface SuspensionChange {
  suspend: boolean;
  /** Why (suspend only): kept in the event, never in the key. */
  reason?: string;
}

/** In one account's transaction: lock the key (live or suspended), change it, record the event. */
async function changeSuspension(
  store: EventStore,
  scope: KeyOwner | { accountId: string },
  id: string,
  change: SuspensionChange,
  ctx: OpContext,
): Promise<{ row: ApiKeyRow; changed: boolean }> {
  if (!isUuid(id)) throw notFound();
  return withEvents(store, scope.accountId, async (tx) => {
    const row = await lockChangeableKey(tx, scope, id, ctx.now);
    if (!row) throw notFound();
    if ((row.suspendedAt !== null) === change.suspend) return { row, changed: false };
    const updated = await setSuspendedAt(tx, id, change.suspend ? ctx.now : null);
    // A predecessor in its overlap is the same agent: it is suspended and resumed with it.
    await changeOverlapping(tx, row.rotatedFrom, ctx.now, { suspendedAt: updated.suspendedAt });
    // The keys it delegated, and theirs, stop and start with it.
    await cascadeSuspension(tx, updated, change.suspend, ctx);
    await recordEvent(tx, {
      accountId: row.accountId,
      eventType: change.suspend ? 'agent_key_suspended' : 'agent_key_resumed',
      environment: row.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: row.keyPrefix, ...(change.suspend && change.reason ? { reason: change.reason } : {}) },
      createdAt: ctx.now,
    });
    return { row: updated, changed: true };
  });
}

/** A service key suspends or resumes one of the keys its chain minted. */
export async function setSuspension(store: EventStore, p: ServicePrincipal, id: string, change: SuspensionChange, ctx: OpContext): Promise<ApiKeyRow> {
  return (await changeSuspension(store, ownerOf(p), id, change, ctx)).row;
}

/** The operator suspends or resumes any API key (child or portal key) of `accountId`. */
export function setSuspensionInAccount(store: EventStore, accountId: string, id: string, change: SuspensionChange, ctx: OpContext) {
  return changeSuspension(store, { accountId }, id, change, ctx);
}
