import { and, eq, inArray, sql } from 'drizzle-orm';
import { queryRows } from '../statements.js';
import type { Db, Tx } from '../types.js';
import { apiKeyRowOf, type ApiKeyColumns } from './api-key-rows.js';
import type { KeyOwner } from './keys.queries.js';
import { complianceEvents, type ApiKeyRow } from '../schema.js';

/**
 * An agent's rotation chain, oldest to newest, as the owning service key sees it. The chain is
 * walked from its first key (whose id is the agent id) along `rotated_from`: the primary key and the
 * unique index api_keys_rotated_from_uq answer each step, so the cost grows with the chain's length
 * and never with the number of keys in the account.
 */
export async function agentChain(tx: Tx, owner: KeyOwner, agentId: string): Promise<ApiKeyRow[]> {
  const rows = await queryRows<ApiKeyColumns>(tx, sql`
    with recursive chain as (
      select k.*, 0 as depth from api_keys k
       where k.id = ${agentId} and k.account_id = ${owner.accountId} and k.created_by_service_key_id = ${owner.serviceKeyId}
      union all
      select k.*, chain.depth + 1 from api_keys k join chain on k.rotated_from = chain.id
       where k.account_id = ${owner.accountId}
    )
    select * from chain order by depth`);
  return rows.map(apiKeyRowOf);
}

/**
 * Which of these keys an operator's rotation made: the rotation event (agent_key_rotated) whose
 * related key is the successor has the operator (actor kind `portal`) as its actor. One indexed read
 * (compliance_events_related_idx), however long the chain.
 */
export async function keysRotatedByOperator(db: Db | Tx, accountId: string, keyIds: string[]): Promise<Set<string>> {
  if (keyIds.length === 0) return new Set();
  const rows = await db
    .select({ id: complianceEvents.relatedKeyId })
    .from(complianceEvents)
    .where(
      and(
        eq(complianceEvents.accountId, accountId),
        inArray(complianceEvents.relatedKeyId, keyIds),
        eq(complianceEvents.eventType, 'agent_key_rotated'),
        eq(complianceEvents.actorKind, 'portal'),
      ),
    );
  return new Set(rows.flatMap((r) => (r.id ? [r.id] : [])));
}
