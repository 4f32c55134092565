import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  deleteConsoleSession,
  insertConsoleSession,
  touchConsoleSession,
} from '../../db/queries/console.queries.js';
import type { Db } from '../../db/types.js';
import { DomainError } from '../errors.js';
import { scopeAllows, type OperatorAuth } from '../operator-tokens/operator-auth.js';
import type { OperatorPrincipal } from '../operator-tokens/operator-tokens.service.js';

/*
 * Operator console sessions. Signing in takes an operator token of scope admin (the bootstrap
 * token or a named one) and opens a session: a random 256-bit id for the cookie, of which only the
 * SHA-256 is stored, and a random synchronizer token that every state-changing form must echo.
 * The token itself is never stored nor put in the cookie. A session dies after `idleMs` without a
 * request, at sign-out, or when its named token is revoked.
 */

const sha256 = (s: string) => hash('sha256', s, 'hex');
const random = () => randomBytes(32).toString('base64url');

export interface ConsoleSession {
  /** Who acts: the operator principal of the token that signed in (always scope admin). */
  operator: OperatorPrincipal;
  csrfToken: string;
}

export interface OpenedSession extends ConsoleSession {
  /** The cookie's value: shown to the browser once, stored only as its hash. */
  sessionId: string;
}

export function createConsoleSessions(db: Db, auth: OperatorAuth, idleMs: number) {
  return {
    /** Opens a session for an admin-scope operator token; invalid_api_key or insufficient_scope otherwise. */
    async signIn(token: string, now: Date): Promise<OpenedSession> {
      const operator = await auth.authenticate(token);
      if (!scopeAllows(operator.scope, 'admin')) {
        throw new DomainError('insufficient_scope', `This operator token's scope (${operator.scope}) does not allow the console; it needs admin.`);
      }
      const sessionId = random();
      const csrfToken = random();
      await insertConsoleSession(db, {
        idHash: sha256(sessionId),
        operatorTokenId: operator.id,
        operatorName: operator.name,
        csrfToken,
        createdAt: now,
        lastSeenAt: now,
      });
      return { sessionId, csrfToken, operator };
    },
    /** The live session of a cookie value (and it is touched), or null. */
    async resume(sessionId: string, now: Date): Promise<ConsoleSession | null> {
      const row = await touchConsoleSession(db, sha256(sessionId), now, new Date(now.getTime() - idleMs));
      if (!row) return null;
      return { csrfToken: row.csrfToken, operator: { id: row.operatorTokenId, name: row.operatorName, scope: 'admin' } };
    },
    signOut: (sessionId: string) => deleteConsoleSession(db, sha256(sessionId)),
  };
}

/** Whether a submitted synchronizer token is the session's, compared in constant time. */
export function csrfMatches(session: ConsoleSession, submitted: unknown): boolean {
  if (typeof submitted !== 'string' || submitted.length === 0) return false;
  return timingSafeEqual(hash('sha256', submitted, 'buffer'), hash('sha256', session.csrfToken, 'buffer'));
}

export type ConsoleSessions = ReturnType<typeof createConsoleSessions>;
