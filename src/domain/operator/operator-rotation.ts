import type { EventStore } from '../audit/events.js';
import { withEvents } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { validationError } from '../errors.js';
import { prepareKeyMaterial } from '../keys/key-material.js';
import { assertRotatable, MAX_OVERLAP_SECONDS, rotateKeyTx } from '../keys/rotation.js';
import { findAnyKey, viewsOf, type OperatorKeyView } from './operator-keys.js';

/*
 * The operator rotates a child key on behalf of its service key (the console's key page): the same
 * atomic rotation as POST /v1/keys/{id}/rotate (rotateKeyTx), overlap included, with the operator as
 * the rotation event's actor, which is how the lineage tells it apart (rotated_by "portal"). The
 * agent's rotation secret, if it self-rotates, is kept, as a developer's rotation keeps it by default.
 */

export interface OperatorRotation {
  /** The successor. */
  key: OperatorKeyView;
  /** The successor's plaintext: shown once, never stored. */
  plaintext: string;
  /** The rotated key, overlapping until its revoked_at when the overlap is above 0. */
  old: OperatorKeyView;
}

export async function rotateChildKey(store: EventStore, id: string, overlapSeconds: number, ctx: OpContext): Promise<OperatorRotation> {
  if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > MAX_OVERLAP_SECONDS) {
    throw validationError(`overlap_seconds must be a whole number from 0 to ${MAX_OVERLAP_SECONDS}.`, [{ field: 'overlap_seconds', message: `0 to ${MAX_OVERLAP_SECONDS}` }]);
  }
  const key = await findAnyKey(store.db, id);
  if (key.kind !== 'child' || !key.row.createdByServiceKeyId) {
    throw validationError('Only child keys rotate here; rotate a service key from its account page.', [{ field: 'id', message: `a ${key.kind} key` }]);
  }
  assertRotatable(key.row, ctx.now);
  // Before the transaction: hashing and token generation never run inside one.
  const material = await prepareKeyMaterial(key.row.environment, false);
  const target = { accountId: key.row.accountId, keyId: id, createdByServiceKeyId: key.row.createdByServiceKeyId };
  const { old, successor } = await withEvents(store, key.row.accountId, (tx) => rotateKeyTx(tx, target, material, ctx, { secret: 'kept', overlapSeconds }));
  const [oldView, newView] = await viewsOf(store.db, key.row.accountId, [
    { kind: 'child', row: old },
    { kind: 'child', row: successor },
  ]);
  return { key: newView!, plaintext: material.token.plaintext, old: oldView! };
}
