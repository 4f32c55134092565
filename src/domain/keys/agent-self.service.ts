import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import type { ApiPrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { checkKey, type CheckInput, type CheckResult } from '../verify/check.js';
import { liveAgentKeys, reservedBy } from '../../db/queries/delegation.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { availableOf, depthOf } from './delegation.js';
import { agentSpendOf, type AgentSpend } from './agent-spend.js';
import { toKeyObject, type KeyObject } from './key-object.js';

/*
 * What an agent can see of itself: its key, its agent, its spend in the current cycle,
 * and (check.ts) whether verify would let it act. An agent planning within its cap needs both
 * without asking its developer, whose service key alone could read the key object until now.
 */

export interface AgentSelf {
  key: KeyObject;
  agent_id: string;
  spend: AgentSpend;
  self_rotation: boolean;
  delegation: SelfDelegation;
}

/** The agent's place in a delegation tree and what it may still give away. */
export interface SelfDelegation {
  can_delegate: boolean;
  depth: number;
  parent_key_id: string | null;
  /** What its live delegated keys hold back: their budgets less their spend. */
  reserved_cents: number;
  /** Its cap less its cycle's spend and the reserved amount; null without a cap. */
  available_cents: number | null;
}

async function delegationView(db: Db, row: ApiKeyRow, now: Date): Promise<SelfDelegation> {
  const { reserved, available } = await availableOf(db, row, now);
  return { can_delegate: row.canDelegate, depth: depthOf(row), parent_key_id: row.parentKeyId, reserved_cents: reserved, available_cents: available };
}

/**
 * GET /v1/agents/self: the caller's key as authentication read it, and its agent_self_read event,
 * committed (and linked) before the answer: nothing is read without its record.
 */
async function readSelf(store: EventStore, principal: ApiPrincipal, ctx: OpContext): Promise<AgentSelf> {
  const row = principal.key;
  await withEvents(store, principal.accountId, (tx) =>
    recordEvent(tx, {
      accountId: principal.accountId,
      eventType: 'agent_self_read',
      environment: principal.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: row.id,
      data: { agent_id: row.agentId },
      createdAt: ctx.now,
    }),
  );
  return {
    key: toKeyObject(row, ctx.now),
    agent_id: row.agentId,
    spend: agentSpendOf(row, ctx.now),
    self_rotation: row.selfRotation,
    delegation: await delegationView(store.db, row, ctx.now),
  };
}

/** The agent's view of itself (GET /v1/agents/self, POST /v1/agents/self/check). */
export function createAgentSelfService(store: EventStore) {
  return {
    read: (principal: ApiPrincipal, ctx: OpContext): Promise<AgentSelf> => readSelf(store, principal, ctx),
    /** Verify's answer for the caller's own key, with its delegation's bounds read (nothing written). */
    async check(principal: ApiPrincipal, input: CheckInput, now: Date): Promise<CheckResult> {
      const row = principal.key;
      const ancestors = row.delegationPath.length > 0 ? await liveAgentKeys(store.db, row.delegationPath) : [];
      const reserved = input.costCents !== undefined && row.hasDelegated ? await reservedBy(store.db, row.agentId, now) : 0;
      return checkKey(row, input, now, { reserved, ancestors });
    },
  };
}

export type AgentSelfService = ReturnType<typeof createAgentSelfService>;
