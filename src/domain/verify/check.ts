import type { ApiKeyRow } from '../../db/schema.js';
import type { ErrorDetail } from '../errors.js';
import type { Verb } from './rules.js';
import { judgeCost, judgeKey, type CostBounds, type VerifyCode } from './verify.service.js';

/*
 * POST /v1/agents/self/check: whether the caller's own key may perform a verb, on a line, at a cost,
 * by exactly the rules of verify (judgeKey and judgeCost are verify's own), so that a planner can
 * stay inside its limits before it acts. Nothing is written: no debit, no ledger row, no
 * last_used_at (the route is `passive`, so authentication does not stamp it either).
 */

export interface CheckInput {
  verb: Verb;
  lineId: string | null;
  costCents?: number;
}

export interface CheckResult {
  allowed: boolean;
  /** verify's code: 'valid' when allowed, else the refusal's error code. */
  code: VerifyCode;
  /** The refusal's details as verify's error envelope carries them; empty when allowed. */
  details: ErrorDetail[];
}

/** The answer verify would give this key now, without its effects; `bounds`: its delegation's (none by default). */
export function checkKey(row: ApiKeyRow, input: CheckInput, now: Date, bounds: CostBounds = { reserved: 0, ancestors: [] }): CheckResult {
  const refused = judgeKey(row, input, now, bounds.ancestors) ?? (input.costCents === undefined ? null : judgeCost(row, input.costCents, now, bounds));
  if (!refused) return { allowed: true, code: 'valid', details: [] };
  return { allowed: false, code: refused.code, details: refused.error?.error.details ?? [] };
}
