import { delegatedKeys, descendantById } from '../../db/queries/delegation.queries.js';
import { endOverlapsOf, revokeApiKeyRows } from '../../db/queries/operator-keys.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import type { ApiPrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';
import { isUuid } from '../ids.js';
import { executeIdempotent, type IdempotencyRequest, type IdempotentOutcome } from '../idempotency/idempotency.service.js';
import { cascadeRevocation } from './delegation-cascade.js';
import { delegateKeyTx, delegationOf, type Delegation, type DelegationInput } from './delegation.js';
import { prepareKeyMaterial } from './key-material.js';
import type { KeysServiceOptions } from './keys.service.js';
import { currentSpend, toKeyObject, type KeyObject } from './key-object.js';
import { recordRevocation, recordRevocations } from './revocation.js';

/*
 * /v1/agents/self/keys: an agent delegates a key (idempotent per API key and Idempotency-Key),
 * lists the keys it delegated (its children, or its whole subtree) and revokes one of them with its
 * subtree. The caller is authenticated by its own API key; its tree is found by its agent, so the
 * agent keeps its children across its own rotations.
 */

/** A delegated key as its ancestor sees it: the key, and its delegation with what it has spent. */
export interface DelegatedKey extends KeyObject {
  delegation: Delegation & { spent_cents: number };
}

const delegatedView = (row: ApiKeyRow, now: Date): DelegatedKey => ({
  ...toKeyObject(row, now),
  delegation: { ...delegationOf(row), spent_cents: currentSpend(row, now) },
});

export interface DelegatedListQuery {
  subtree: boolean;
  limit: number;
  offset: number;
}

export function createDelegationService(store: EventStore, opts: KeysServiceOptions = {}) {
  /** The read's record, committed and linked before the answer, as every read of keys is. */
  const recordRead = (p: ApiPrincipal, ctx: OpContext, data: Record<string, unknown>) =>
    withEvents(store, p.accountId, (tx) =>
      recordEvent(tx, {
        accountId: p.accountId,
        eventType: 'agent_self_read',
        environment: p.environment,
        actor: ctx.actor,
        meta: ctx.meta,
        subjectKeyId: p.id,
        data: { agent_id: p.key.agentId, ...data },
        createdAt: ctx.now,
      }),
    );

  return {
    /** POST /v1/agents/self/keys: 201 with the plaintext once; a replay answers without it. */
    delegate(p: ApiPrincipal, input: DelegationInput, idem: IdempotencyRequest, ctx: OpContext): Promise<IdempotentOutcome> {
      return executeIdempotent(
        store,
        { accountId: p.accountId, serviceKeyId: p.id, key: idem.key, fingerprint: idem.fingerprint },
        ctx.now,
        {
          prepare: () => prepareKeyMaterial(p.environment, false),
          run: async (tx, m) => {
            const row = await delegateKeyTx(tx, p.key, input, m, ctx);
            return { status: 201, body: { key: { ...toKeyObject(row, ctx.now), plaintext_key: m.token.plaintext }, delegation: delegationOf(row) } };
          },
        },
        opts,
      );
    },

    /** GET /v1/agents/self/keys: the caller's unrevoked delegated keys, newest first, with the read recorded. */
    async list(p: ApiPrincipal, q: DelegatedListQuery, ctx: OpContext): Promise<{ keys: DelegatedKey[]; total: number }> {
      const { rows, total } = await delegatedKeys(store.db, { agentId: p.key.agentId, ...q });
      await recordRead(p, ctx, { read: 'delegated_keys', depth: q.subtree ? 'all' : 'children', count: rows.length, total });
      return { keys: rows.map((row) => delegatedView(row, ctx.now)), total };
    },

    /** DELETE /v1/agents/self/keys/{id}: a key of the caller's subtree, revoked now with its own subtree. */
    async revoke(p: ApiPrincipal, id: string, ctx: OpContext): Promise<DelegatedKey> {
      if (!isUuid(id)) throw notFound();
      const row = await withEvents(store, p.accountId, async (tx) => {
        const target = await descendantById(tx, p.key.agentId, id);
        if (!target) throw notFound();
        const [revoked] = await revokeApiKeyRows(tx, p.accountId, [id], ctx.now);
        if (!revoked) throw notFound();
        await recordRevocation(tx, revoked, 'agent_key_revoked', ctx, { reason: 'revoked_by_ancestor' });
        // A chain's newest key revoked: its predecessor's overlap ends too.
        const ended = await endOverlapsOf(tx, p.accountId, revoked.rotatedFrom ? [revoked.rotatedFrom] : [], ctx.now);
        await recordRevocations(tx, ended, 'agent_key_revoked', ctx, { reason: 'overlap_ended', successor_id: revoked.id });
        await cascadeRevocation(tx, [revoked], ctx);
        return revoked;
      });
      return delegatedView(row, ctx.now);
    },
  };
}

export type DelegationService = ReturnType<typeof createDelegationService>;
