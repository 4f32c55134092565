import { changeOverlapping, insertKey, lockChangeableKey, revokeKey, updateKey, type KeyOwner } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow, Permission } from '../../db/schema.js';
import { recordEvent, withEvents, type EventStore, type EventTx } from '../audit/events.js';
import type { ServicePrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { notFound, validationError } from '../errors.js';
import { isUuid } from '../ids.js';
import type { KeyMaterial } from './key-material.js';
import { recordRevocation } from './revocation.js';
import { checkExpiry, expiryOf } from './expiry.js';
import { cascadeExpiry, cascadeRevocation } from './delegation-cascade.js';

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
  /** `expires_at` (checked here: future, ≤ 400 days) or `ttl_seconds`; the schema refuses both. */
  expiresAt?: Date | null;
  ttlSeconds?: number;
  canDelegate?: boolean;
}

export interface KeyPatch {
  name?: string;
  agentLabel?: string | null;
  lineId?: string | null;
  permissions?: Exclude<Permission, 'legacy_full'>;
  monthlyCapCents?: number | null;
  /** Only `false` (clears the secret): a secret is issued by POST /v1/keys/{id}/rotation-secret. */
  selfRotation?: boolean;
  /** A future instant (≤ 400 days ahead), or null for no expiry. */
  expiresAt?: Date | null;
  canDelegate?: boolean;
}

/** What a delegated key's service key may not change: what delegation fixed within its parent's bounds. */
const FIXED_BY_DELEGATION = ['lineId', 'permissions', 'monthlyCapCents', 'expiresAt'] as const;

function checkDelegatedPatch(row: ApiKeyRow, patch: KeyPatch): void {
  if (row.delegationPath.length === 0) return;
  const fixed = FIXED_BY_DELEGATION.filter((f) => patch[f] !== undefined).map(toSnake);
  if (fixed.length === 0) return;
  throw validationError(`A delegated key's ${fixed.join(', ')} were set within its parent's bounds when it was delegated: revoke it and delegate again.`, fixed.map((field) => ({ field, message: 'fixed at delegation' })));
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
    expiresAt: expiryOf(input, ctx.now),
    canDelegate: input.canDelegate ?? false,
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
  // PATCH never answers a secret, so it cannot issue one.
  if (patch.selfRotation === true) {
    throw validationError('self_rotation can only be turned on by POST /v1/keys/{id}/rotation-secret, which answers the new rotation secret.', [
      { field: 'self_rotation', message: 'only false; POST /v1/keys/{id}/rotation-secret turns it on' },
    ]);
  }
  if (patch.expiresAt) checkExpiry(patch.expiresAt, ctx.now);
  if (!isUuid(id)) throw notFound();
  const changed = Object.entries(patch)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => toSnake(k));
  const values = patch.selfRotation === false ? { ...patch, rotationSecretHash: null } : patch;
  return withEvents(store, p.accountId, async (tx) => {
    const current = await lockChangeableKey(tx, ownerOf(p), id, ctx.now);
    if (!current) throw notFound();
    checkDelegatedPatch(current, patch);
    const row = await updateKey(tx, ownerOf(p), id, ctx.now, values);
    if (!row) throw notFound();
    if (patch.expiresAt !== undefined) await cascadeExpiry(tx, row, ctx);
    // A predecessor in its overlap is the same agent: it follows the newest key's settings.
    const { selfRotation: _own, rotationSecretHash: _secret, ...settings } = values as Partial<ApiKeyRow>;
    const shared = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
    if (Object.keys(shared).length > 0) await changeOverlapping(tx, row.rotatedFrom, ctx.now, shared);
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
    // A rotated key still in its overlap: DELETE ends the overlap now (its event says so: the key
    // was rotated, and has its successor).
    const overlapping = await changeOverlapping(tx, id, ctx.now, { revokedAt: ctx.now }, ownerOf(p));
    if (overlapping) {
      await recordRevocation(tx, overlapping, 'agent_key_revoked', ctx, { reason: 'overlap_ended' });
      return overlapping;
    }
    const row = await revokeKey(tx, ownerOf(p), id, ctx.now);
    if (!row) throw notFound();
    await recordRevocation(tx, row, 'agent_key_revoked', ctx);
    await cascadeRevocation(tx, [row], ctx);
    // Revoking a chain's newest key ends its predecessor's overlap too: both stop now.
    const ended = await changeOverlapping(tx, row.rotatedFrom, ctx.now, { revokedAt: ctx.now });
    if (ended) await recordRevocation(tx, ended, 'agent_key_revoked', ctx, { reason: 'overlap_ended', successor_id: row.id });
    return row;
  });
}

/**
 * POST /v1/keys/{id}/rotation-secret, inside its idempotent transaction: the active key gets a new
 * rotation secret (replacing any) and self-rotation turns on; its token is unchanged.
 */
export async function issueRotationSecretTx(tx: EventTx, p: ServicePrincipal, id: string, secretHash: string, ctx: OpContext): Promise<ApiKeyRow> {
  const row = await updateKey(tx, ownerOf(p), id, ctx.now, { selfRotation: true, rotationSecretHash: secretHash });
  if (!row) throw notFound();
  await recordEvent(tx, {
    accountId: p.accountId,
    eventType: 'agent_rotation_secret_issued',
    environment: p.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: id,
    data: { key_prefix: row.keyPrefix },
    createdAt: ctx.now,
  });
  return row;
}
