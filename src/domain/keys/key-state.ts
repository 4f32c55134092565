import type { ApiKeyRow } from '../../db/schema.js';

/*
 * The one rule of an API key's state at an instant, for every path that accepts or refuses a key:
 * authentication, verify (and keyplane_verify_debit_batch, which applies the same rule in SQL at
 * debit time: keep them together), the keys service and self-rotation.
 *
 *  - revoked:     revoked_at at or before now (a rotation without overlap, DELETE, the operator).
 *  - overlapping: revoked_at after now: a rotated-away key still working until its overlap ends.
 *  - suspended:   suspended_at set (paused by its service key or an operator; resume clears it).
 *  - expired:     expires_at at or before now.
 *  - live:        none of these.
 *
 * Revoked wins over everything (a revoked key never comes back), then suspension, then expiry; an
 * overlapping key is also refused when suspended or past its expiry.
 */
export type KeyState = 'live' | 'overlapping' | 'suspended' | 'expired' | 'revoked';

type StateColumns = Pick<ApiKeyRow, 'revokedAt' | 'suspendedAt' | 'expiresAt'>;

export function keyState(row: StateColumns, now: Date): KeyState {
  const t = now.getTime();
  if (row.revokedAt && row.revokedAt.getTime() <= t) return 'revoked';
  if (row.suspendedAt) return 'suspended';
  if (row.expiresAt && row.expiresAt.getTime() <= t) return 'expired';
  return row.revokedAt ? 'overlapping' : 'live';
}

/** Whether a key in this state authenticates and verifies (live, or in its rotation's overlap). */
export const accepts = (state: KeyState): boolean => state === 'live' || state === 'overlapping';

/**
 * Why verify refused a key that exists, as its internal reason beside the forwarded envelope; a
 * revoked key has none (its answer is the one it always was).
 */
export type RefusalReason = 'suspended' | 'expired';

export function refusalReason(state: KeyState): RefusalReason | undefined {
  return state === 'suspended' || state === 'expired' ? state : undefined;
}

/** The states GET /v1/keys can filter on (db/queries/key-list.queries.ts says which keys each holds). */
export { LIST_STATUSES } from '../../db/queries/key-list.queries.js';
