import type { EventStore } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { validationError } from '../errors.js';
import { setSuspensionInAccount, type SuspensionChange } from '../keys/suspension.js';
import { findAnyKey, getOperatorKey, listAccountKeys, viewsOf, type KeyListQuery, type OperatorKeyView } from './operator-keys.js';
import { revokeAnyKey, revokeKeyAsLeaked, revokeLeaked, type ChildrenChoice } from './operator-revocation.js';
import { rotateChildKey } from './operator-rotation.js';

/**
 * Every key within the operator's reach (internal API and CLI): list an account's keys of every
 * kind, read one, revoke one (a service key with a choice for its children), suspend or resume an
 * API key, rotate a child key, and the leak intake.
 * Reads record no event, as the portal's other reads; every revocation records its own.
 */
export function createOperatorKeysService(store: EventStore) {
  return {
    list: (accountId: string, q: KeyListQuery) => listAccountKeys(store.db, accountId, q),
    get: (id: string) => getOperatorKey(store.db, id),
    revoke: (id: string, children: ChildrenChoice | undefined, ctx: OpContext) => revokeAnyKey(store, id, children, ctx),
    revokeLeaked: (tokens: string[], ctx: OpContext) => revokeLeaked(store, tokens, ctx),
    /** Revoke one key by id with reason "leaked" (the console's key page). */
    revokeAsLeaked: (id: string, ctx: OpContext) => revokeKeyAsLeaked(store, id, ctx),
    /** Rotate a child key on behalf of its service key, with an overlap (0..604800 s). */
    rotate: (id: string, overlapSeconds: number, ctx: OpContext) => rotateChildKey(store, id, overlapSeconds, ctx),
    /** Suspend or resume an API key (child or portal) of any account; a service key is not suspendable (422). */
    async setSuspension(id: string, change: SuspensionChange, ctx: OpContext): Promise<{ key: OperatorKeyView; changed: boolean }> {
      const key = await findAnyKey(store.db, id);
      if (key.kind === 'service') {
        throw validationError('Only API keys (child and portal keys) can be suspended; revoke a service key instead.', [{ field: 'id', message: 'a service key' }]);
      }
      const { row, changed } = await setSuspensionInAccount(store, key.row.accountId, id, change, ctx);
      const [view] = await viewsOf(store.db, row.accountId, [{ kind: key.kind, row }]);
      return { key: view!, changed };
    },
  };
}

export type OperatorKeysService = ReturnType<typeof createOperatorKeysService>;
