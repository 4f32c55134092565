import { agentChain, keysRotatedByOperator } from '../../db/queries/lineage.queries.js';
import { keyById, type PreparedKeyReads } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import type { ServicePrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';
import { isUuid } from '../ids.js';
import { agentSpendOf, type AgentSpend } from './agent-spend.js';
import { ownerOf } from './child-keys.js';
import { toKeyObject, type KeyObject } from './key-object.js';

/**
 * How a key of the chain came to be: `self` when the agent's own rotation made it (it names the
 * key whose pair made it), `portal` when an operator rotated its predecessor (its rotation event's
 * actor: `byOperator` holds those keys, keysRotatedByOperator), `service_key` when the owning
 * service key did, null for the chain's first key.
 */
export type RotatedBy = 'service_key' | 'self' | 'portal' | null;

export const rotatedByOf = (row: ApiKeyRow, byOperator: ReadonlySet<string>): RotatedBy => {
  if (!row.rotatedFrom) return null;
  if (row.selfRotationBaseId) return 'self';
  return byOperator.has(row.id) ? 'portal' : 'service_key';
};

export interface Lineage {
  agent_id: string;
  keys: Array<{ key: KeyObject; rotated_by: RotatedBy }>;
  spend: AgentSpend;
}

/**
 * GET /v1/keys/{id}/lineage: the rotation chain of the key's agent, oldest to newest, and the
 * agent's spend; recorded as a service_key_list_read with `route: "lineage"` in the same
 * transaction (nothing is read without a record). Another service key's key is not found.
 */
export async function readLineage(store: EventStore, reads: PreparedKeyReads, p: ServicePrincipal, id: string, ctx: OpContext): Promise<Lineage> {
  if (!isUuid(id)) throw notFound();
  const key = await keyById(reads, ownerOf(p), id);
  if (!key) throw notFound();
  const chain = await withEvents(store, p.accountId, async (tx) => {
    const rows = await agentChain(tx, ownerOf(p), key.agentId);
    await recordEvent(tx, {
      accountId: p.accountId,
      eventType: 'service_key_list_read',
      environment: p.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { route: 'lineage', agent_id: key.agentId, count: rows.length },
      createdAt: ctx.now,
    });
    return { rows, byOperator: await keysRotatedByOperator(tx, p.accountId, rows.filter((r) => r.rotatedFrom && !r.selfRotationBaseId).map((r) => r.id)) };
  });
  const newest = chain.rows[chain.rows.length - 1] ?? key;
  return {
    agent_id: key.agentId,
    keys: chain.rows.map((row) => ({ key: toKeyObject(row, ctx.now), rotated_by: rotatedByOf(row, chain.byOperator) })),
    spend: agentSpendOf(newest, ctx.now),
  };
}
