import { insertApiKey, revokePortalKeyRow } from '../../db/queries/portal.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import { generateToken, type Environment } from '../auth/credentials.js';
import type { OpContext } from '../context.js';
import { newId } from '../ids.js';
import { getAccount } from './accounts.js';
import { revokeRecorded } from '../keys/revocation.js';
import type { Issued } from './portal-views.js';

/** A portal API key: permissions legacy_full, no creating service key, no cap. */
export async function createPortalApiKey(
  store: EventStore,
  input: { accountId: string; environment: Environment; name: string },
  ctx: OpContext,
): Promise<Issued<ApiKeyRow>> {
  await getAccount(store.db, input.accountId);
  const token = generateToken('api', input.environment);
  const id = newId();
  const row = await withEvents(store, input.accountId, async (tx) => {
    const inserted = await insertApiKey(tx, {
      id,
      accountId: input.accountId,
      environment: input.environment,
      name: input.name,
      permissions: 'legacy_full',
      keyPrefix: token.keyPrefix,
      tokenHash: token.tokenHash,
      createdAt: ctx.now,
      cycleAnchor: ctx.now,
      agentId: id,
    });
    await recordEvent(tx, {
      accountId: input.accountId,
      eventType: 'portal_key_created',
      environment: input.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: token.keyPrefix, name: input.name, permissions: 'legacy_full' },
      createdAt: ctx.now,
    });
    return inserted;
  });
  return { row, plaintext: token.plaintext };
}

/** Revokes a portal API key; a child key (minted by a service key) is not_found here. */
export function revokePortalApiKey(store: EventStore, id: string, ctx: OpContext): Promise<ApiKeyRow> {
  return revokeRecorded(store, (tx) => revokePortalKeyRow(tx, id, ctx.now), 'portal_key_revoked', ctx);
}
