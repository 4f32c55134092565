import type { ApiKeyRow } from '../../db/schema.js';
import { currentSpend, cycleStartFor, SPEND_CYCLE_MS } from './key-object.js';

/** An agent's spend in its current cycle, as the agent's own view and its lineage show it. */
export interface AgentSpend {
  cycle_start: string;
  cycle_reset_at: string;
  spent_cents: number;
  /** Null when the agent has no cap. */
  cap_cents: number | null;
  remaining_cents: number | null;
}

/**
 * Spend is one per agent: it follows the rotation chain, so the newest key of the chain carries
 * the cycle's spend and the cap that applies.
 */
export function agentSpendOf(newest: ApiKeyRow, now: Date): AgentSpend {
  const start = cycleStartFor(newest.cycleAnchor, now);
  const spent = currentSpend(newest, now);
  const cap = newest.monthlyCapCents;
  return {
    cycle_start: start.toISOString(),
    cycle_reset_at: new Date(start.getTime() + SPEND_CYCLE_MS).toISOString(),
    spent_cents: spent,
    cap_cents: cap,
    remaining_cents: cap === null ? null : Math.max(0, cap - spent),
  };
}
