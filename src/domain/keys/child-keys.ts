import { insertKey, revokeKey, updateKey, type KeyOwner } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow, Permission } from '../../db/schema.js';
import { recordEvent, withEvents, type EventStore, type EventTx } from '../audit/events.js';
import type { ServicePrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';
import { isUuid } from '../ids.js';
import type { KeyMaterial } from './key-material.js';
import { recordRevocation } from './revocation.js';

/*
 * The operations on child API keys minted by a service key (spec §3–§4). A service key sees only
 * the keys its rotation chain minted; every other id is not_found. Functions ending in Tx run
 * inside a transaction the caller owns, so that the idempotency layer can commit the effect, its
 * event and the stored response together.
 */

export interface MintInput {
  name: string;
  agentLabel: string | null;
  lineId: string | null;
  permissions: Exclude<Permission, 'legacy_full'>;
  monthlyCapCents: number | null;
  selfRotation: boolean;
}

export interface KeyPatch {
  name?: string;
  agentLabel?: string | null;
  lineId?: string | null;
  permissions?: Exclude<Permission, 'legacy_full'>;
  monthlyCapCents?: number | null;
}

/** The scope a service key acts in: its account and the keys its rotation chain minted. */
export const ownerOf = (p: ServicePrincipal): KeyOwner => ({ accountId: p.accountId, serviceKeyId: p.ownerId });

export async function mintChildKeyTx(tx: EventTx, p: ServicePrincipal, input: MintInput, material: KeyMaterial, ctx: OpContext): Promise<ApiKeyRow> {
  const row = await insertKey(tx, {
    id: material.id,
    accountId: p.accountId,
    environment: p.environment,
    name: input.name,
    agentLabel: input.agentLabel,
    lineId: input.lineId,
    permissions: input.permissions,
    monthlyCapCents: input.monthlyCapCents,
    selfRotation: input.selfRotation,
    keyPrefix: material.token.keyPrefix,
    tokenHash: material.token.tokenHash,
    createdAt: ctx.now,
    cycleAnchor: ctx.now,
    agentId: material.id,
    createdByServiceKeyId: p.ownerId,
    rotationSecretHash: material.rotationSecretHash,
  });
  await recordEvent(tx, {
    accountId: p.accountId,
    eventType: 'agent_key_created',
    environment: p.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: material.id,
    data: { key_prefix: material.token.keyPrefix, name: input.name, permissions: input.permissions, self_rotation: input.selfRotation },
    createdAt: ctx.now,
  });
  return row;
}

const toSnake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export async function updateChildKey(store: EventStore, p: ServicePrincipal, id: string, patch: KeyPatch, ctx: OpContext): Promise<ApiKeyRow> {
  if (!isUuid(id)) throw notFound();
  const changed = Object.entries(patch)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => toSnake(k));
  return withEvents(store, p.accountId, async (tx) => {
    const row = await updateKey(tx, ownerOf(p), id, patch);
    if (!row) throw notFound();
    await recordEvent(tx, {
      accountId: p.accountId,
      eventType: 'agent_key_updated',
      environment: p.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: row.keyPrefix, changed_fields: changed },
      createdAt: ctx.now,
    });
    return row;
  });
}

export async function revokeChildKey(store: EventStore, p: ServicePrincipal, id: string, ctx: OpContext): Promise<ApiKeyRow> {
  if (!isUuid(id)) throw notFound();
  return withEvents(store, p.accountId, async (tx) => {
    const row = await revokeKey(tx, ownerOf(p), id, ctx.now);
    if (!row) throw notFound();
    await recordRevocation(tx, row, 'agent_key_revoked', ctx);
    return row;
  });
}
