import { changeOverlapping, lockActiveKey, replaceKey, type ActiveKeyTarget } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, type EventTx, type EventType } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { keySuspended, notFound, validationError } from '../errors.js';
import { isUuid } from '../ids.js';
import type { KeyMaterial } from './key-material.js';
import { keyState } from './key-state.js';
import { cascadeRotation } from './delegation-cascade.js';

/**
 * What a rotation does with the rotation secret: `new` (a self-rotation, or a developer's
 * `?rotation_secret=reset`) gives the successor the material's fresh secret; `kept` carries the old
 * key's secret hash over, so an agent keeps rotating itself after its developer rotated its key.
 */
export type RotationSecretMode = 'new' | 'kept';

export interface RotationOptions {
  eventType?: Extract<EventType, 'agent_key_rotated' | 'agent_key_self_rotated' | 'agent_key_self_rotation_replaced'>;
  secret?: RotationSecretMode;
  /** A self-rotation: the key whose pair made the successor (schema: self_rotation_base_id). */
  selfRotationBaseId?: string;
  /** How long the old key keeps working beside its successor (0: it stops at once). */
  overlapSeconds?: number;
}

/** The longest overlap of a service key's rotation: 7 days, as Stripe keeps a rolled key. */
export const MAX_OVERLAP_SECONDS = 604_800;
/** The longest overlap of a self-rotation: short, since the old pair may be why the agent rotates. */
export const MAX_SELF_OVERLAP_SECONDS = 3_600;

/** When a rotated key stops: now, or at the end of its overlap, never past its own expiry. */
function overlapEnd(locked: ApiKeyRow, now: Date, overlapSeconds: number): Date {
  if (overlapSeconds <= 0) return now;
  const end = now.getTime() + overlapSeconds * 1000;
  return new Date(locked.expiresAt ? Math.min(end, locked.expiresAt.getTime()) : end);
}

/** The successor of a locked key: the same settings and agent, new credentials. */
function successorOf(locked: ApiKeyRow, material: KeyMaterial, now: Date, secret: RotationSecretMode, selfRotationBaseId: string | null = null) {
  return {
    id: material.id,
    accountId: locked.accountId,
    environment: locked.environment,
    name: locked.name,
    agentLabel: locked.agentLabel,
    lineId: locked.lineId,
    permissions: locked.permissions,
    monthlyCapCents: locked.monthlyCapCents,
    // Spend follows the agent: a rotation must not reset the monthly cap.
    monthlySpendCents: locked.monthlySpendCents,
    spendCycleStart: locked.spendCycleStart,
    cycleAnchor: locked.cycleAnchor,
    keyPrefix: material.token.keyPrefix,
    tokenHash: material.token.tokenHash,
    createdAt: now,
    rotatedFrom: locked.id,
    agentId: locked.agentId,
    createdByServiceKeyId: locked.createdByServiceKeyId,
    selfRotation: locked.selfRotation,
    rotationSecretHash: !locked.selfRotation ? null : secret === 'kept' ? locked.rotationSecretHash : material.rotationSecretHash,
    selfRotationBaseId,
    // The successor inherits the expiry, never extends it.
    expiresAt: locked.expiresAt,
    // The agent's place in a delegation tree is the agent's, not the key's.
    canDelegate: locked.canDelegate,
    delegationPath: locked.delegationPath,
    parentAgentId: locked.parentAgentId,
    parentKeyId: locked.parentKeyId,
    hasDelegated: locked.hasDelegated,
  };
}

/**
 * The atomic rotation (spec §4), for rotate and self-rotation alike: lock the old row, revoke it
 * (now, or at the end of an overlap), insert the successor with the same settings and rotated_from = old id, record the event. All or
 * nothing; of concurrent rotations of one key, the first to lock wins and the others find no active
 * row (not_found). The unique index on rotated_from makes a second successor impossible even if
 * this code were wrong.
 */
export async function rotateKeyTx(
  tx: EventTx,
  /** A service key's child, or (self-rotation, no createdByServiceKeyId) the key itself. */
  target: ActiveKeyTarget,
  material: KeyMaterial,
  ctx: OpContext,
  opts: RotationOptions = {},
): Promise<{ old: ApiKeyRow; successor: ApiKeyRow }> {
  if (!isUuid(target.keyId)) throw notFound();
  const locked = await lockActiveKey(tx, target);
  if (!locked) throw notFound();
  assertRotatable(locked, ctx.now);
  return replaceLockedKeyTx(tx, locked, material, ctx, opts);
}

/** The rotation of a key the transaction has locked: revoke, insert the successor, record the event. */
export async function replaceLockedKeyTx(
  tx: EventTx,
  locked: ApiKeyRow,
  material: KeyMaterial,
  ctx: OpContext,
  { eventType = 'agent_key_rotated', secret = 'new', selfRotationBaseId, overlapSeconds = 0 }: RotationOptions = {},
): Promise<{ old: ApiKeyRow; successor: ApiKeyRow }> {
  // A secret made for a key that stopped self-rotating meanwhile must not be answered.
  if (material.rotationSecret && !locked.selfRotation) throw resetWithoutSelfRotation();
  // At most two live keys per chain: an older overlap still running ends now.
  const ended = await changeOverlapping(tx, locked.rotatedFrom, ctx.now, { revokedAt: ctx.now });
  const endsAt = overlapEnd(locked, ctx.now, overlapSeconds);
  const replaced = await replaceKey(tx, locked.id, endsAt, successorOf(locked, material, ctx.now, secret, selfRotationBaseId));
  await cascadeRotation(tx, locked, replaced.successor);
  const overlapData = endsAt > ctx.now ? { overlap_seconds: overlapSeconds, overlap_ends_at: endsAt.toISOString() } : {};
  const endedData = ended ? { ended_overlap_key_id: ended.id } : {};
  // A developer's rotation of a self-rotating key says what became of the agent's secret.
  const secretData = eventType === 'agent_key_rotated' && locked.selfRotation ? { rotation_secret: secret === 'kept' ? 'kept' : 'reset' } : {};
  await recordEvent(tx, {
    accountId: locked.accountId,
    eventType,
    environment: locked.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: locked.id,
    relatedKeyId: material.id,
    data: { key_prefix: locked.keyPrefix, new_key_id: material.id, new_key_prefix: material.token.keyPrefix, ...secretData, ...overlapData, ...endedData },
    createdAt: ctx.now,
  });
  return replaced;
}

/**
 * Only a live key rotates (key-state.ts): a suspended one is key_suspended (resume it first); an
 * expired one, or one in its rotation's overlap, is gone to its service key (not_found).
 */
export function assertRotatable(row: ApiKeyRow, now: Date): void {
  const state = keyState(row, now);
  if (state === 'suspended') throw keySuspended();
  if (state !== 'live') throw notFound();
}

/** `?rotation_secret=reset` on a key without self-rotation: nothing to reset. */
export const resetWithoutSelfRotation = () =>
  validationError('rotation_secret=reset applies to a key with self-rotation; POST /v1/keys/{id}/rotation-secret turns it on.', [
    { field: 'rotation_secret', message: 'the key has no self-rotation' },
  ]);
