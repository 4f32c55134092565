import { clampSubtreeExpiry, repointChildren, resumeSubtree, revokeSubtrees, suspendSubtree } from '../../db/queries/delegation.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvents, type EventTx } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { recordRevocations } from './revocation.js';

/*
 * What happens below a key when it changes, in the transaction that changes it: revoking an agent
 * (no successor left) revokes its whole subtree, suspending it suspends the subtree's working keys
 * and resuming it resumes exactly those, a new expiry caps the subtree's, and a rotation hands the
 * children to the successor. Only a key that has delegated (has_delegated) has anything below it, so
 * every other change costs no statement here. Verify does not rely on these writes alone: it also
 * checks every ancestor's state (verify.service.ts, the debit statement).
 */

const delegators = (rows: ApiKeyRow[]) => rows.filter((r) => r.hasDelegated);

/** After `revoked` were revoked: their agents that have no live key left lose their subtrees, each key with its event. */
export async function cascadeRevocation(tx: EventTx, revoked: ApiKeyRow[], ctx: OpContext): Promise<ApiKeyRow[]> {
  const roots = delegators(revoked);
  if (roots.length === 0) return [];
  const gone = await revokeSubtrees(
    tx,
    roots.map((r) => r.agentId),
    ctx.now,
  );
  const details = roots.length === 1 ? { reason: 'parent_revoked', revoked_ancestor_key_id: roots[0]!.id } : { reason: 'parent_revoked' };
  await recordRevocations(tx, gone, 'agent_key_revoked', ctx, details);
  return gone;
}

/** After `row` was suspended or resumed: its subtree follows, each key with its event. */
export async function cascadeSuspension(tx: EventTx, row: ApiKeyRow, suspend: boolean, ctx: OpContext): Promise<ApiKeyRow[]> {
  if (!row.hasDelegated) return [];
  const changed = suspend ? await suspendSubtree(tx, row.agentId, ctx.now) : await resumeSubtree(tx, row.agentId);
  await recordEvents(
    tx,
    changed.map((k) => ({
      accountId: k.accountId,
      eventType: suspend ? ('agent_key_suspended' as const) : ('agent_key_resumed' as const),
      environment: k.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: k.id,
      relatedKeyId: row.id,
      data: { key_prefix: k.keyPrefix, reason: suspend ? 'parent_suspended' : 'parent_resumed', ancestor_key_id: row.id },
      createdAt: ctx.now,
    })),
  );
  return changed;
}

/** After `row`'s expiry changed: no key below it outlives it (each capped key records agent_key_updated). */
export async function cascadeExpiry(tx: EventTx, row: ApiKeyRow, ctx: OpContext): Promise<void> {
  if (!row.hasDelegated || !row.expiresAt) return;
  const capped = await clampSubtreeExpiry(tx, row.agentId, row.expiresAt, ctx.now);
  await recordEvents(
    tx,
    capped.map((k) => ({
      accountId: k.accountId,
      eventType: 'agent_key_updated' as const,
      environment: k.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: k.id,
      relatedKeyId: row.id,
      data: { key_prefix: k.keyPrefix, changed_fields: ['expires_at'], reason: 'parent_expiry' },
      createdAt: ctx.now,
    })),
  );
}

/** After a rotation: the children name the successor as their parent key. */
export async function cascadeRotation(tx: EventTx, old: ApiKeyRow, successor: ApiKeyRow): Promise<void> {
  if (old.hasDelegated) await repointChildren(tx, old.agentId, old.id, successor.id);
}
