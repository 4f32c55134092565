import { hash, timingSafeEqual } from 'node:crypto';
import { operatorTokenHash } from '../auth/credentials.js';
import { DomainError } from '../errors.js';
import { BOOTSTRAP_OPERATOR, type OperatorPrincipal, type OperatorScope, type OperatorTokensService } from './operator-tokens.service.js';

const digest = (s: string) => hash('sha256', s, 'buffer');
const invalid = () => new DomainError('invalid_api_key', 'The operator token is invalid.');

/** Whether a token of scope `held` may call a route that requires `required`: admin may call all. */
export const scopeAllows = (held: OperatorScope, required: OperatorScope): boolean => held === 'admin' || held === required;

/**
 * Who holds an operator token. The bootstrap token (KEYPLANE_ADMIN_TOKEN) is compared in memory,
 * both sides hashed to a fixed length first so that timingSafeEqual compares in constant time
 * whatever the caller sends: no database work, and answered synchronously. A named token (kpo_…)
 * is checked for shape and checksum, then read by its hash (one indexed probe, shared by
 * concurrent requests); anything else is invalid without I/O.
 */
export function createOperatorAuth(tokens: Pick<OperatorTokensService, 'byHash'>, bootstrapToken: string) {
  const expected = digest(bootstrapToken);
  return {
    /** The principal, or a promise of it for a named token; throws (or rejects) invalid_api_key. */
    authenticate(token: string): OperatorPrincipal | Promise<OperatorPrincipal> {
      if (timingSafeEqual(digest(token), expected)) return BOOTSTRAP_OPERATOR;
      const tokenHash = operatorTokenHash(token);
      if (tokenHash === null) throw invalid();
      return tokens.byHash(tokenHash).then((p) => {
        if (!p) throw invalid();
        return p;
      });
    },
  };
}

export type OperatorAuth = ReturnType<typeof createOperatorAuth>;
