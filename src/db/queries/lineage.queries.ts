import { sql } from 'drizzle-orm';
import { queryRows } from '../statements.js';
import type { Tx } from '../types.js';
import { apiKeyRowOf, type ApiKeyColumns } from './api-key-rows.js';
import type { KeyOwner } from './keys.queries.js';
import type { ApiKeyRow } from '../schema.js';

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
