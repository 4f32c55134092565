import { sweepConsoleSessions } from '../../db/queries/console.queries.js';
import { accountEvent, accountEvents, agentKeysOf, childKeysOfChain, searchAccounts } from '../../db/queries/console.queries.js';
import { keysRotatedByOperator } from '../../db/queries/lineage.queries.js';
import { findServiceKey } from '../../db/queries/portal.queries.js';
import type { ComplianceEventRow, Permission } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { notFound, validationError } from '../errors.js';
import { isUuid } from '../ids.js';
import { toKeyObject, type KeyObject } from '../keys/key-object.js';
import { EXPIRING_WITHIN_MS, type KeyStatus } from '../keys/key-state.js';
import { rotatedByOf, type RotatedBy } from '../keys/lineage.js';
import type { OperatorAuth } from '../operator-tokens/operator-auth.js';
import { getAccount } from '../portal/accounts.js';
import { accountView, type AccountView } from '../portal/portal-views.js';
import { createConsoleSessions } from './console-sessions.js';

/*
 * The reads the operator console shows that the internal API has no route for yet: the account
 * list, an account's compliance events with filters, a service key's keys, an agent's chain. Like
 * the portal's other reads they record no event. Writes go through the portal and operator services.
 */

export interface EventPage {
  events: ComplianceEventRow[];
  /** The cursor of the next (older) page, or null. */
  nextBefore: string | null;
}

export interface ChildKeyFilter {
  label: string | null;
  lineId: string | null;
  permissions: Permission | null;
  status: KeyStatus | null;
}

const PAGE = 50;
/** The longest console idle timeout CONSOLE_SESSION_IDLE_MINUTES accepts. */
export const MAX_IDLE_MS = 24 * 3600_000;

const encodeCursor = (e: { createdAt: Date; id: string }) => Buffer.from(`${e.createdAt.toISOString()}|${e.id}`, 'utf8').toString('base64url');

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id, extra] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (extra !== undefined || !id || !isUuid(id) || Number.isNaN(createdAt.getTime())) throw validationError('cursor is not one this console returned.');
  return { createdAt, id };
}

export function createConsoleService(db: Db) {
  return {
    /** Sessions of the console, checked against this operator auth (built by the admin app). */
    sessions: (auth: OperatorAuth, idleMs: number) => createConsoleSessions(db, auth, idleMs),
    /** Deletes sessions idle longer than the longest idle timeout allowed (a day); resume() enforces the configured one. */
    sweepSessions: (now: Date) => sweepConsoleSessions(db, new Date(now.getTime() - MAX_IDLE_MS)),
    async listAccounts(search: string | null): Promise<AccountView[]> {
      const q = search?.trim() || null;
      return (await searchAccounts(db, q, q && isUuid(q) ? q : null, PAGE)).map(accountView);
    },
    async accountEvents(accountId: string, f: { eventType: string | null; keyId: string | null; before: string | null }): Promise<EventPage> {
      await getAccount(db, accountId);
      if (f.keyId && !isUuid(f.keyId)) throw validationError('key must be a key id.');
      const rows = await accountEvents(db, {
        accountId,
        eventType: f.eventType || null,
        keyId: f.keyId || null,
        before: f.before ? decodeCursor(f.before) : null,
        limit: PAGE + 1,
      });
      const events = rows.slice(0, PAGE);
      return { events, nextBefore: rows.length > PAGE ? encodeCursor(events[events.length - 1]!) : null };
    },
    async event(accountId: string, id: string): Promise<ComplianceEventRow> {
      const row = isUuid(accountId) && isUuid(id) ? await accountEvent(db, accountId, id) : undefined;
      if (!row) throw notFound();
      return row;
    },
    /** The keys the service key's rotation chain minted (every key of the chain manages them). */
    async childKeys(serviceKeyId: string, f: ChildKeyFilter, now: Date): Promise<KeyObject[]> {
      const sk = isUuid(serviceKeyId) ? await findServiceKey(db, serviceKeyId) : undefined;
      if (!sk) throw notFound();
      if (f.lineId && !isUuid(f.lineId)) throw validationError('line must be a line id.');
      const expiringBy = new Date(now.getTime() + EXPIRING_WITHIN_MS);
      const rows = await childKeysOfChain(db, { accountId: sk.accountId, lineageId: sk.lineageId, ...f, now, expiringBy, limit: 200 });
      return rows.map((r) => toKeyObject(r, now));
    },
    /** The rotation chain of an API key's agent, oldest first, each key with how it came to be. */
    async agentChain(accountId: string, keyId: string, now: Date): Promise<Array<{ key: KeyObject; rotated_by: RotatedBy }>> {
      const rows = await agentKeysOf(db, accountId, keyId);
      const byOperator = await keysRotatedByOperator(db, accountId, rows.filter((r) => r.rotatedFrom && !r.selfRotationBaseId).map((r) => r.id));
      return rows.map((r) => ({ key: toKeyObject(r, now), rotated_by: rotatedByOf(r, byOperator) }));
    },
  };
}

export type ConsoleService = ReturnType<typeof createConsoleService>;
