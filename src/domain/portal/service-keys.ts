import {
  findServiceKey,
  insertServiceKey,
  revokeServiceKeyRow,
  serviceKeysOfAccount,
} from '../../db/queries/portal.queries.js';
import type { ServiceKeyRow } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import { generateToken, type Environment } from '../auth/credentials.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';
import { newId } from '../ids.js';
import { getAccount } from './accounts.js';
import { revokeRecorded } from '../keys/revocation.js';
import type { Issued } from './portal-views.js';

/*
 * Service keys (sk_svc_…) as the portal manages them. Each write records its compliance event in
 * the same transaction; the plaintext is generated before the transaction opens and returned once.
 */

export async function createServiceKey(
  store: EventStore,
  input: { accountId: string; environment: Environment; name: string },
  ctx: OpContext,
): Promise<Issued<ServiceKeyRow>> {
  await getAccount(store.db, input.accountId);
  const token = generateToken('service', input.environment);
  const id = newId();
  const row = await withEvents(store, input.accountId, async (tx) => {
    const inserted = await insertServiceKey(tx, {
      id,
      accountId: input.accountId,
      environment: input.environment,
      name: input.name,
      keyPrefix: token.keyPrefix,
      tokenHash: token.tokenHash,
      createdAt: ctx.now,
      lineageId: id,
    });
    await recordEvent(tx, {
      accountId: input.accountId,
      eventType: 'service_key_created',
      environment: input.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: token.keyPrefix, name: input.name },
      createdAt: ctx.now,
    });
    return inserted;
  });
  return { row, plaintext: token.plaintext };
}

export async function listServiceKeys(db: Db, accountId: string): Promise<ServiceKeyRow[]> {
  await getAccount(db, accountId);
  return serviceKeysOfAccount(db, accountId);
}

async function getServiceKey(db: Db, id: string): Promise<ServiceKeyRow> {
  const row = await findServiceKey(db, id);
  if (!row) throw notFound();
  return row;
}

/** Atomic: locks the old key, revokes it, inserts its successor and records the event, or nothing. */
export async function rotateServiceKey(store: EventStore, id: string, ctx: OpContext): Promise<Issued<ServiceKeyRow>> {
  const current = await getServiceKey(store.db, id);
  const token = generateToken('service', current.environment);
  const newKeyId = newId();
  const row = await withEvents(store, current.accountId, async (tx) => {
    const old = await revokeServiceKeyRow(tx, id, ctx.now);
    if (!old) throw notFound();
    const inserted = await insertServiceKey(tx, {
      id: newKeyId,
      accountId: old.accountId,
      environment: old.environment,
      name: old.name,
      keyPrefix: token.keyPrefix,
      tokenHash: token.tokenHash,
      createdAt: ctx.now,
      rotatedFrom: old.id,
      // The successor manages the child keys of the whole chain (auth.service.ts: ownerId).
      lineageId: old.lineageId,
    });
    await recordEvent(tx, {
      accountId: old.accountId,
      eventType: 'service_key_rotated',
      environment: old.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: old.id,
      relatedKeyId: newKeyId,
      data: { key_prefix: old.keyPrefix, new_key_prefix: token.keyPrefix },
      createdAt: ctx.now,
    });
    return inserted;
  });
  return { row, plaintext: token.plaintext };
}

export function revokeServiceKey(store: EventStore, id: string, ctx: OpContext): Promise<ServiceKeyRow> {
  return revokeRecorded(store, (tx) => revokeServiceKeyRow(tx, id, ctx.now), 'service_key_revoked', ctx);
}
