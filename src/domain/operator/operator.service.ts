import type { EventStore } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { getOperatorKey, listAccountKeys, type KeyListQuery } from './operator-keys.js';
import { revokeAnyKey, revokeLeaked, type ChildrenChoice } from './operator-revocation.js';

/**
 * Every key within the operator's reach (internal API and CLI): list an account's keys of every
 * kind, read one, revoke one (a service key with a choice for its children), and the leak intake.
 * Reads record no event, as the portal's other reads; every revocation records its own.
 */
export function createOperatorKeysService(store: EventStore) {
  return {
    list: (accountId: string, q: KeyListQuery) => listAccountKeys(store.db, accountId, q),
    get: (id: string) => getOperatorKey(store.db, id),
    revoke: (id: string, children: ChildrenChoice | undefined, ctx: OpContext) => revokeAnyKey(store, id, children, ctx),
    revokeLeaked: (tokens: string[], ctx: OpContext) => revokeLeaked(store, tokens, ctx),
  };
}

export type OperatorKeysService = ReturnType<typeof createOperatorKeysService>;
