import type { Permission } from '../../db/schema.js';

/*
 * What a key may do: its permission tier names the verbs, its line_id the line. These functions are
 * the rules' one home: verify without cost applies them here, and the debit statement receives them
 * as data (tiersAllowing, lineOptional) to apply under the key's row lock.
 */

export const VERBS = ['read', 'call', 'sms', 'admin'] as const;
export type Verb = (typeof VERBS)[number];

/** Which verbs each permission tier allows. */
export const TIER_VERBS: Record<Permission, readonly Verb[]> = {
  read_only: ['read'],
  call_only: ['read', 'call'],
  sms_only: ['read', 'sms'],
  full: ['read', 'call', 'sms', 'admin'],
  legacy_full: ['read', 'call', 'sms', 'admin'],
};

export const allows = (tier: Permission, verb: Verb): boolean => TIER_VERBS[tier].includes(verb);

const TIERS = Object.keys(TIER_VERBS) as Permission[];

/** The tiers that allow a verb: TIER_VERBS turned around, as the debit statement takes it. */
export const tiersAllowing = (verb: Verb): Permission[] => TIERS.filter((tier) => allows(tier, verb));

/**
 * Whether a line-scoped key may perform the verb naming no line: only to read (a line-scoped key may
 * read what is its own, such as its audit feed, without naming a line; placing a call or sending an
 * SMS always happens on a line, and `admin` acts account-wide, which is outside any one line).
 */
export const lineOptional = (verb: Verb): boolean => verb === 'read';

/**
 * Line scope. A key with a line_id acts only on that line: a request naming another line is refused,
 * and so is one naming no line unless lineOptional(verb). A key without line_id may act on any line.
 */
export function inScope(keyLine: string | null, verb: Verb, requestLine: string | null): boolean {
  if (keyLine === null) return true;
  if (requestLine === null) return lineOptional(verb);
  return requestLine.toLowerCase() === keyLine.toLowerCase();
}

/**
 * The cap rule: a cost fits while the current cycle's spend plus the cost stays within the cap; a
 * key without a cap (null) takes any cost. keyplane_verify_debit_batch applies the same comparison
 * under the key's row lock (src/db/sql/verify_debit_batch.sql); the check route applies it here.
 */
export const fitsCap = (spentInCycle: number, cap: number | null, cost: number): boolean => cap === null || spentInCycle + cost <= cap;
