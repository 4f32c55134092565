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

/*
 * What a person is shown (the operator console's badges and its status filter): the state above,
 * with a live key whose expiry falls within EXPIRING_WITHIN_MS called `expiring`. An overlapping
 * key always ends within 7 days (the longest overlap), so it keeps its own, more telling, name.
 */
export const KEY_STATUSES = ['live', 'expiring', 'overlapping', 'suspended', 'expired', 'revoked'] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

/** How soon an expiry makes a live key `expiring`: 7 days. */
export const EXPIRING_WITHIN_MS = 7 * 24 * 3600_000;

export function keyStatus(row: StateColumns, now: Date): KeyStatus {
  const state = keyState(row, now);
  if (state === 'live' && row.expiresAt && row.expiresAt.getTime() - now.getTime() <= EXPIRING_WITHIN_MS) return 'expiring';
  return state;
}
