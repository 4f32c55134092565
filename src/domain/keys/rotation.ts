import { lockActiveKey, replaceKey, type ActiveKeyTarget } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, type EventTx, type EventType } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';
import { isUuid } from '../ids.js';
import type { KeyMaterial } from './key-material.js';

/** The successor of a locked key: the same settings and agent, new credentials. */
function successorOf(locked: ApiKeyRow, material: KeyMaterial, now: Date) {
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
    rotationSecretHash: locked.selfRotation ? material.rotationSecretHash : null,
  };
}

/**
 * The atomic rotation (spec §4), for rotate and self-rotation alike: lock the old row, revoke it,
 * insert the successor with the same settings and rotated_from = old id, record the event. All or
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
  eventType: Extract<EventType, 'agent_key_rotated' | 'agent_key_self_rotated'> = 'agent_key_rotated',
): Promise<{ old: ApiKeyRow; successor: ApiKeyRow }> {
  if (!isUuid(target.keyId)) throw notFound();
  const locked = await lockActiveKey(tx, target);
  if (!locked) throw notFound();
  const replaced = await replaceKey(tx, locked.id, ctx.now, successorOf(locked, material, ctx.now));
  await recordEvent(tx, {
    accountId: locked.accountId,
    eventType,
    environment: locked.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: locked.id,
    relatedKeyId: material.id,
    data: { key_prefix: locked.keyPrefix, new_key_id: material.id, new_key_prefix: material.token.keyPrefix },
    createdAt: ctx.now,
  });
  return replaced;
}
