import type { ApiKeyRow } from '../../db/schema.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import type { ApiPrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { checkKey, type CheckInput, type CheckResult } from '../verify/check.js';
import { currentSpend, cycleStartFor, SPEND_CYCLE_MS, toKeyObject, type KeyObject } from './key-object.js';

/*
 * What an agent can see of itself (issue 30): its key, its agent, its spend in the current cycle,
 * and (check.ts) whether verify would let it act. An agent planning within its cap needs both
 * without asking its developer, whose service key alone could read the key object until now.
 */

export interface AgentSpend {
  cycle_start: string;
  cycle_reset_at: string;
  spent_cents: number;
  /** null when the key has no cap. */
  cap_cents: number | null;
  remaining_cents: number | null;
}

export interface AgentSelf {
  key: KeyObject;
  agent_id: string;
  spend: AgentSpend;
  self_rotation: boolean;
}

/** The agent's spend at `now`, by the cycle rule of key-object.ts (the one verify's debit uses). */
function agentSpend(row: ApiKeyRow, now: Date): AgentSpend {
  const start = cycleStartFor(row.cycleAnchor, now);
  const spent = currentSpend(row, now);
  const cap = row.monthlyCapCents;
  return {
    cycle_start: start.toISOString(),
    cycle_reset_at: new Date(start.getTime() + SPEND_CYCLE_MS).toISOString(),
    spent_cents: spent,
    cap_cents: cap,
    remaining_cents: cap === null ? null : Math.max(0, cap - spent),
  };
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
  return { key: toKeyObject(row, ctx.now), agent_id: row.agentId, spend: agentSpend(row, ctx.now), self_rotation: row.selfRotation };
}

/** The agent's view of itself (GET /v1/agents/self, POST /v1/agents/self/check). */
export function createAgentSelfService(store: EventStore) {
  return {
    read: (principal: ApiPrincipal, ctx: OpContext): Promise<AgentSelf> => readSelf(store, principal, ctx),
    check: (principal: ApiPrincipal, input: CheckInput, now: Date): CheckResult => checkKey(principal.key, input, now),
  };
}

export type AgentSelfService = ReturnType<typeof createAgentSelfService>;
