import {
  chainBetween,
  lockLiveKeyOfAgent,
  reuseReactionOf,
  revokeLockedKey,
  successorOf,
  type ChainLink,
} from '../../db/queries/self-rotation.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, type EventTx } from '../audit/events.js';
import type { OpContext } from '../context.js';
import type { KeyMaterial } from './key-material.js';
import { replaceLockedKeyTx } from './rotation.js';

/*
 * A self-rotation presented with a revoked key whose secret matches: refresh-token-family detection
 * (OAuth 2.1 §4.3.1 for refresh tokens) applied to API keys.
 *
 * - Retry. The successor of a self-rotation is pending until its first use: its last_used_at is
 *   still null. Every authenticated request and every verify already stamps last_used_at (the
 *   first use of a key always writes it, last-used.ts; the debit batch in SQL), so "used" costs no
 *   write and no query of its own. While the chain's live key is the pending successor of this
 *   very pair, the pair coming back means its answer was lost: the pending key is revoked and a
 *   fresh pair answered (agent_key_self_rotation_replaced), so a lost response never strands an
 *   agent.
 * - Reuse. Once that successor was used (or the chain moved on), the old pair coming back means it
 *   was copied: by the account's reaction, the chain's live key is revoked in this transaction
 *   ('revoke_chain', the default) or left alone ('report'); agent_key_reuse_detected is recorded
 *   either way, and the answer is 403 agent_revoked exactly as before.
 * - A key its developer revoked or rotated (not retired by its own pair): 403 agent_revoked, as
 *   before, and nothing else.
 *
 * Everything happens under the lock of the chain's live key, so concurrent retries, uses and
 * reuses of one agent serialise: of two concurrent retries of one lost rotation, the second waits
 * for the first's lock, then finds no live key its statement can see and answers agent_revoked;
 * the unique index api_keys_agent_live_uq holds the chain to one live key whatever happens.
 */

export type StaleOutcome = { kind: 'retried'; successor: ApiKeyRow } | { kind: 'reuse' } | { kind: 'revoked' };

/** Rotations between a stale key and the head, a retry's replacement not counting as one. */
function rotationsBack(links: ChainLink[]): number {
  let n = 0;
  for (let i = 0; i + 1 < links.length; i++) {
    const [child, parent] = [links[i]!, links[i + 1]!];
    if (!(child.self_rotation_base_id !== null && child.self_rotation_base_id === parent.self_rotation_base_id)) n++;
  }
  return n;
}

async function reuseDetectedTx(tx: EventTx, stale: ApiKeyRow, head: ApiKeyRow, ctx: OpContext): Promise<void> {
  const reaction = await reuseReactionOf(tx, stale.accountId);
  const back = rotationsBack(await chainBetween(tx, head.id, stale.id));
  if (reaction === 'revoke_chain') await revokeLockedKey(tx, head.id, ctx.now);
  await recordEvent(tx, {
    accountId: stale.accountId,
    eventType: 'agent_key_reuse_detected',
    environment: stale.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: head.id,
    data: {
      key_prefix: head.keyPrefix,
      stale_key_id: stale.id,
      stale_key_prefix: stale.keyPrefix,
      rotations_back: back,
      reaction,
      revoked: reaction === 'revoke_chain',
    },
    createdAt: ctx.now,
  });
}

/** The stale pair's effect, inside one transaction (withEvents). */
export async function staleKeyTx(tx: EventTx, stale: ApiKeyRow, material: KeyMaterial, ctx: OpContext): Promise<StaleOutcome> {
  const head = await lockLiveKeyOfAgent(tx, stale.accountId, stale.agentId);
  if (!head) return { kind: 'revoked' };
  if (head.selfRotationBaseId === stale.id && head.lastUsedAt === null) {
    const { successor } = await replaceLockedKeyTx(tx, head, material, ctx, {
      eventType: 'agent_key_self_rotation_replaced',
      selfRotationBaseId: stale.id,
    });
    return { kind: 'retried', successor };
  }
  // Reuse needs the stale key to have been retired by its own pair (a self-rotation).
  if ((await successorOf(tx, stale.id))?.selfRotationBaseId !== stale.id) return { kind: 'revoked' };
  await reuseDetectedTx(tx, stale, head, ctx);
  return { kind: 'reuse' };
}
