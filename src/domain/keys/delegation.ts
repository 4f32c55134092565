import { lockLiveAgents, markDelegated, reservedBy } from '../../db/queries/delegation.queries.js';
import { insertKey } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow, Permission } from '../../db/schema.js';
import type { Db, Tx } from '../../db/types.js';
import { recordEvent, type EventTx } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { DomainError, invalidApiKey, validationError } from '../errors.js';
import { TIER_VERBS } from '../verify/rules.js';
import type { KeyMaterial } from './key-material.js';
import { agentSpendOf } from './agent-spend.js';
import { currentSpend } from './key-object.js';
import { accepts, keyState } from './key-state.js';

/*
 * Delegation: an agent whose key may delegate (can_delegate) mints a strictly narrower key for a
 * sub-agent, with a budget carved out of its own cap and a lifetime within its own. The rules live
 * here; the debit statement (db/sql/verify_debit_batch.sql) charges a delegated key's debits to the
 * key and every ancestor, and delegation-cascade.ts takes a subtree down with its root.
 */

/** How deep a tree may grow: a key minted by a service key is depth 0, its grandchildren's children depth 3. */
export const MAX_DELEGATION_DEPTH = 3;
/** A delegated key lives 60 s to 30 days: within one spend cycle, so its budget never resets. */
export const MIN_DELEGATION_TTL_SECONDS = 60;
export const MAX_DELEGATION_TTL_SECONDS = 2_592_000;
export const MAX_BUDGET_CENTS = 100_000_000;

export interface DelegationInput {
  name: string;
  agentLabel: string | null;
  permissions: Exclude<Permission, 'legacy_full'>;
  /** Omitted: the parent's line (a line-scoped parent's child is scoped to the same line). */
  lineId?: string | null;
  budgetCents: number;
  ttlSeconds: number;
  canDelegate: boolean;
}

/** A tier is no broader than another when every verb it allows, the other allows too. */
export const narrows = (parent: Permission, child: Permission): boolean => TIER_VERBS[child].every((verb) => TIER_VERBS[parent].includes(verb));

export const depthOf = (row: Pick<ApiKeyRow, 'delegationPath'>): number => row.delegationPath.length;

/*
 * The refusals' details carry what the status's declared envelope requires of them (error.schemas.ts):
 * tier and verb for agent_permission_denied (the parent's tier, and the verb it lacks), line_id for
 * agent_scope_error; an answer that misses one cannot be serialized and becomes a 500.
 */
const refused = (code: 'agent_permission_denied' | 'agent_scope_error' | 'delegation_depth_exceeded', message: string, extra: Record<string, unknown> = {}) =>
  new DomainError(code, message, [{ ...extra, message }]);

/** The first verb the child's tier allows that the parent's does not ("delegate" when the tier is not the reason). */
const missingVerb = (parent: Permission, child: Permission): string => TIER_VERBS[child].find((verb) => !TIER_VERBS[parent].includes(verb)) ?? 'delegate';

/** The line the child gets: the parent's when it has one (another is agent_scope_error), else the one asked for. */
function childLine(parent: ApiKeyRow, asked: string | null | undefined): string | null {
  if (parent.lineId === null) return asked ?? null;
  if (asked === undefined || asked === null || asked.toLowerCase() === parent.lineId.toLowerCase()) return parent.lineId;
  throw refused('agent_scope_error', 'A line-scoped key delegates only on its own line.', { field: 'line_id', line_id: parent.lineId });
}

/**
 * Every rule a delegation meets before its budget: may the parent delegate, is the tree deep enough
 * for one more level, is the tier no broader, the line the parent's, the lifetime within the
 * parent's. Returns the child's line and expiry.
 */
export function checkDelegation(parent: ApiKeyRow, input: DelegationInput, now: Date): { lineId: string | null; expiresAt: Date } {
  if (!parent.canDelegate) {
    throw refused('agent_permission_denied', 'This key may not delegate: its service key must set can_delegate.', { field: 'can_delegate', tier: parent.permissions, verb: 'delegate' });
  }
  if (depthOf(parent) + 1 > MAX_DELEGATION_DEPTH) {
    throw refused('delegation_depth_exceeded', `A delegated key at depth ${depthOf(parent)} may not delegate: the deepest key is depth ${MAX_DELEGATION_DEPTH}.`);
  }
  if (!narrows(parent.permissions, input.permissions)) {
    throw refused('agent_permission_denied', `A ${parent.permissions} key may not delegate ${input.permissions}: a delegated key is never broader than its parent.`, {
      field: 'permissions',
      tier: parent.permissions,
      verb: missingVerb(parent.permissions, input.permissions),
    });
  }
  const lineId = childLine(parent, input.lineId);
  const expiresAt = new Date(now.getTime() + input.ttlSeconds * 1000);
  if (parent.expiresAt && expiresAt > parent.expiresAt) {
    const left = Math.floor((parent.expiresAt.getTime() - now.getTime()) / 1000);
    throw validationError(`ttl_seconds must end by the parent key's expiry (${parent.expiresAt.toISOString()}, ${left} s from now).`, [
      { field: 'ttl_seconds', message: `at most ${left}: a delegated key never outlives its parent`, max: left },
    ]);
  }
  return { lineId, expiresAt };
}

/** What a parent may still give away: its cap less its cycle's spend and its live children's unspent budgets (null: no cap). */
export async function availableOf(db: Db | Tx, parent: ApiKeyRow, now: Date): Promise<{ reserved: number; available: number | null }> {
  const reserved = parent.hasDelegated ? await reservedBy(db, parent.agentId, now) : 0;
  const available = parent.monthlyCapCents === null ? null : Math.max(0, parent.monthlyCapCents - currentSpend(parent, now) - reserved);
  return { reserved, available };
}

/**
 * The parent's cap, what it has spent this cycle or holds back for its delegated keys (as a refused
 * debit names it), and the cycle's end: what every agent_cap_exceeded answer names.
 */
function capOf(parent: ApiKeyRow, reserved: number, now: Date): { spent_cents: number; cap_cents: number; cycle_reset_at: string } {
  const spend = agentSpendOf(parent, now);
  return { spent_cents: spend.spent_cents + reserved, cap_cents: parent.monthlyCapCents ?? 0, cycle_reset_at: spend.cycle_reset_at };
}

export interface Delegation {
  parent_key_id: string;
  depth: number;
  budget_cents: number;
  expires_at: string;
}

export const delegationOf = (row: ApiKeyRow): Delegation => ({
  parent_key_id: row.parentKeyId!,
  depth: depthOf(row),
  budget_cents: row.monthlyCapCents!,
  expires_at: row.expiresAt!.toISOString(),
});

/**
 * In the idempotent transaction: lock the caller's tree from the root down to its agent's live key
 * (the one order every writer of a tree takes), check the rules and the budget, insert the child and
 * record agent_key_delegated (actor the parent key, subject the child, related the parent).
 */
export async function delegateKeyTx(tx: EventTx, caller: ApiKeyRow, input: DelegationInput, material: KeyMaterial, ctx: OpContext): Promise<ApiKeyRow> {
  const agents = [...caller.delegationPath, caller.agentId];
  const locked = await lockLiveAgents(tx, agents);
  const parent = locked.at(-1);
  // An ancestor or the caller's agent stopped since authentication: the key no longer works.
  if (locked.length !== agents.length || !parent || !locked.every((row) => accepts(keyState(row, ctx.now)))) throw invalidApiKey();
  const { lineId, expiresAt } = checkDelegation(parent, input, ctx.now);
  const { reserved, available } = await availableOf(tx, parent, ctx.now);
  if (available !== null && input.budgetCents > available) {
    throw new DomainError('agent_cap_exceeded', `A budget of ${input.budgetCents} cents exceeds the ${available} cents this key has available.`, [
      { field: 'budget_cents', message: `at most ${available}`, available_cents: available, budget_cents: input.budgetCents, ...capOf(parent, reserved, ctx.now) },
    ]);
  }
  const row = await insertKey(tx, {
    id: material.id,
    accountId: parent.accountId,
    environment: parent.environment,
    name: input.name,
    agentLabel: input.agentLabel,
    lineId,
    permissions: input.permissions,
    monthlyCapCents: input.budgetCents,
    keyPrefix: material.token.keyPrefix,
    tokenHash: material.token.tokenHash,
    createdAt: ctx.now,
    cycleAnchor: ctx.now,
    agentId: material.id,
    // The tree belongs to its root's service key: it lists, revokes and kills every key in it.
    createdByServiceKeyId: parent.createdByServiceKeyId,
    rotationSecretHash: null,
    expiresAt,
    canDelegate: input.canDelegate,
    delegationPath: agents,
    parentAgentId: parent.agentId,
    parentKeyId: parent.id,
  });
  if (!parent.hasDelegated) await markDelegated(tx, parent.id);
  await recordEvent(tx, {
    accountId: parent.accountId,
    eventType: 'agent_key_delegated',
    environment: parent.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: row.id,
    relatedKeyId: parent.id,
    data: {
      key_prefix: row.keyPrefix,
      parent_key_id: parent.id,
      depth: depthOf(row),
      permissions: row.permissions,
      budget_cents: input.budgetCents,
      expires_at: expiresAt.toISOString(),
      can_delegate: input.canDelegate,
    },
    createdAt: ctx.now,
  });
  return row;
}
