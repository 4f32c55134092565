import type { OpContext } from '../context.js';
import { DomainError } from '../errors.js';
import type { OperatorTokensService } from '../operator-tokens/operator-tokens.service.js';
import type { OperatorKeysService } from './operator.service.js';

/*
 * After a restore, every credential revoked since the backup was taken is live again: the restored
 * database predates its revocation. The compliance log outlives the database (`keyplane audit
 * export` archives it), and each such revocation is an event in it. Replaying them revokes those
 * credentials again, each as an operator action with its own event whose request id names the
 * event it replays. Credentials revoked before the backup are already revoked in the restored
 * database, and credentials created after it are not in it, so the whole export may be replayed,
 * as often as wanted: a replay revokes only what is live.
 */

/** One line of `keyplane audit export` (its wire fields; the rest is not needed here). */
export interface ExportedEvent {
  id: string;
  event_type: string;
  subject_key_id: string | null;
  data: Record<string, unknown> | null;
  created_at: string;
}

/** A credential an event retired. */
export interface Retired {
  kind: 'key' | 'operator_token';
  id: string;
  /** The event that retired it. */
  eventId: string;
  eventType: string;
}

/** Events whose subject key stops working: revocations and rotations (a rotation revokes the old key). */
const RETIRES_SUBJECT = new Set([
  'service_key_revoked',
  'portal_key_revoked',
  'agent_key_revoked',
  'service_key_rotated',
  'agent_key_rotated',
  'agent_key_self_rotated',
  'agent_key_self_rotation_replaced',
]);

/** The credential `e` retired, if it retired one. */
export function retiredBy(e: ExportedEvent): Retired | null {
  const from = { eventId: e.id, eventType: e.event_type };
  if (RETIRES_SUBJECT.has(e.event_type) && e.subject_key_id) return { kind: 'key', id: e.subject_key_id, ...from };
  // Reuse detection revokes the chain's live key when the account reacts with revoke_chain.
  if (e.event_type === 'agent_key_reuse_detected' && e.data?.revoked === true && e.subject_key_id) return { kind: 'key', id: e.subject_key_id, ...from };
  const tokenId = e.data?.operator_token_id;
  if (e.event_type === 'operator_token_revoked' && typeof tokenId === 'string') return { kind: 'operator_token', id: tokenId, ...from };
  return null;
}

export type ReplayOutcome = 'revoked' | 'already_revoked' | 'not_found';

export interface ReplayResult extends Retired {
  outcome: ReplayOutcome;
}

export interface ReplayServices {
  operatorKeys: OperatorKeysService;
  operatorTokens: OperatorTokensService;
}

/**
 * Revokes again every credential the events retired that is live in this database, oldest event
 * first; each credential once. A service key's child keys are left as they are: those revoked with
 * it have events of their own in the export.
 */
export async function replayRevocations(services: ReplayServices, events: ExportedEvent[], ctx: OpContext): Promise<ReplayResult[]> {
  const retired = new Map<string, Retired>();
  const ordered = [...events].sort((a, b) => a.created_at.localeCompare(b.created_at));
  for (const e of ordered) {
    const r = retiredBy(e);
    if (r && !retired.has(`${r.kind}:${r.id}`)) retired.set(`${r.kind}:${r.id}`, r);
  }
  const tokens = new Map((await services.operatorTokens.list()).map((t) => [t.id, t]));
  const results: ReplayResult[] = [];
  for (const r of retired.values()) {
    const at: OpContext = { ...ctx, meta: { ...ctx.meta, requestId: `replay:${r.eventId}` } };
    results.push({ ...r, outcome: r.kind === 'key' ? await replayKey(services, r.id, at) : await replayToken(services, tokens.get(r.id), at) });
  }
  return results;
}

async function replayKey(services: ReplayServices, id: string, ctx: OpContext): Promise<ReplayOutcome> {
  try {
    return (await services.operatorKeys.revoke(id, 'keep', ctx)).revoked ? 'revoked' : 'already_revoked';
  } catch (err) {
    // Created after the backup: not in this database, so it cannot be used either.
    if (err instanceof DomainError && err.code === 'not_found') return 'not_found';
    throw err;
  }
}

async function replayToken(services: ReplayServices, token: { id: string; revoked_at: string | null } | undefined, ctx: OpContext): Promise<ReplayOutcome> {
  if (!token) return 'not_found';
  if (token.revoked_at) return 'already_revoked';
  await services.operatorTokens.revoke(token.id, ctx);
  return 'revoked';
}
