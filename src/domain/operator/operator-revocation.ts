import {
  endOverlapsOf,
  keysByTokenHashes,
  liveChildCount,
  revokeApiKeyRows,
  revokeChainChildren,
  revokeServiceKeyRows,
  type AnyKeyRow,
  type KeyKind,
} from '../../db/queries/operator-keys.queries.js';
import type { ServiceKeyRow } from '../../db/schema.js';
import { withEvents, type EventStore, type EventTx } from '../audit/events.js';
import { operatorTokenHash, parseToken, visiblePrefix } from '../auth/credentials.js';
import type { OpContext } from '../context.js';
import { revokeLeakedOperatorTokens } from '../operator-tokens/operator-tokens.service.js';
import { validationError } from '../errors.js';
import { recordRevocations, type RevocationEvent } from '../keys/revocation.js';
import { cascadeRevocation } from '../keys/delegation-cascade.js';
import { findAnyKey, viewsOf, type OperatorKeyView } from './operator-keys.js';

/*
 * The operator's kill switch: revoke any key of any account, and the leak intake. A revocation
 * records its kind's usual event (service_key_revoked, agent_key_revoked, portal_key_revoked) with
 * the operator as actor, in the transaction that revokes it (portal/revocation.ts). A revoked
 * service key keeps the contract's 60-second read grace (auth.service.ts), as with every other
 * revocation of a service key.
 */

const EVENT_OF: Record<KeyKind, RevocationEvent> = {
  service: 'service_key_revoked',
  child: 'agent_key_revoked',
  portal: 'portal_key_revoked',
};

/** What happens to the child keys of a revoked service key's rotation chain. */
export type ChildrenChoice = 'keep' | 'revoke';

export interface RevokeOutcome {
  key: OperatorKeyView;
  /** Whether this request revoked the key (false: it was revoked already, and is answered as it is). */
  revoked: boolean;
  /** A service key: its chain's child keys this request revoked, and how many are left live. Null for an API key. */
  children: { revoked: number; live: number } | null;
}

/** Revokes `keys` (all of one account) that are still live, each with its event; returns the ids it revoked. */
async function revokeKeysTx(tx: EventTx, accountId: string, keys: AnyKeyRow[], ctx: OpContext, details: Record<string, unknown>): Promise<Set<string>> {
  const apiIds = keys.filter((k) => k.kind !== 'service').map((k) => k.row.id);
  const serviceIds = keys.filter((k) => k.kind === 'service').map((k) => k.row.id);
  const api = await revokeApiKeyRows(tx, accountId, apiIds, ctx.now);
  // A revoked chain head's predecessor still in its overlap stops with it.
  const predecessors = api.flatMap((r) => (r.rotatedFrom ? [r.rotatedFrom] : []));
  const ended = await endOverlapsOf(tx, accountId, predecessors, ctx.now);
  await recordRevocations(tx, ended, EVENT_OF.child, ctx, { ...details, reason: 'overlap_ended' });
  const service = await revokeServiceKeyRows(tx, accountId, serviceIds, ctx.now);
  await recordRevocations(tx, api.filter((r) => r.createdByServiceKeyId), EVENT_OF.child, ctx, details);
  await recordRevocations(tx, api.filter((r) => !r.createdByServiceKeyId), EVENT_OF.portal, ctx, details);
  const below = await cascadeRevocation(tx, api, ctx);
  await recordRevocations(tx, service, EVENT_OF.service, ctx, details);
  return new Set([...api, ...below, ...service].map((r) => r.id));
}

/**
 * Revokes a service key and, with `revoke`, every live child key of its rotation chain in the same
 * transaction, each with its own event. The children belong to the chain (ADR 0005), so they are the
 * keys any key of the chain minted. Without a choice, a chain with live children is refused: keeping
 * them alive must be said, not defaulted to (the incident the kill switch exists for).
 */
async function revokeServiceKey(store: EventStore, key: ServiceKeyRow, children: ChildrenChoice | undefined, ctx: OpContext): Promise<RevokeOutcome> {
  if (children === undefined) {
    const live = await liveChildCount(store.db, key.lineageId);
    if (live > 0) {
      throw validationError(
        `This service key's rotation chain has ${live} live child key(s): say what happens to them with children=keep (they stay valid) or children=revoke (revoked with it).`,
        [{ field: 'children', message: 'required for a service key with live child keys: keep or revoke' }],
      );
    }
  }
  const result = await withEvents(store, key.accountId, async (tx) => {
    const gone = children === 'revoke' ? await revokeChainChildren(tx, key.accountId, key.lineageId, ctx.now) : [];
    await recordRevocations(tx, gone, 'agent_key_revoked', ctx, { reason: 'service_key_revoked', service_key_id: key.id });
    const details = { children: children ?? 'keep', children_revoked: gone.length };
    const revoked = await revokeKeysTx(tx, key.accountId, [{ kind: 'service', row: key }], ctx, details);
    return { revoked: revoked.size > 0, childrenRevoked: gone.length, live: await liveChildCount(tx, key.lineageId) };
  });
  return { key: await currentView(store, key.id), revoked: result.revoked, children: { revoked: result.childrenRevoked, live: result.live } };
}

const currentView = async (store: EventStore, id: string) => {
  const key = await findAnyKey(store.db, id);
  return (await viewsOf(store.db, key.row.accountId, [key]))[0]!;
};

/**
 * DELETE /internal/v1/keys/{id}: revokes a key of any kind. An already revoked key is answered as
 * it is (200, `revoked: false`); for a service key, `children=revoke` still revokes its chain's live
 * children, which is how the children of a key revoked earlier are reached.
 */
export async function revokeAnyKey(store: EventStore, id: string, children: ChildrenChoice | undefined, ctx: OpContext): Promise<RevokeOutcome> {
  const key = await findAnyKey(store.db, id);
  if (key.kind === 'service') return revokeServiceKey(store, key.row, children, ctx);
  const revoked = await withEvents(store, key.row.accountId, (tx) => revokeKeysTx(tx, key.row.accountId, [key], ctx, {}));
  return { key: await currentView(store, id), revoked: revoked.size > 0, children: null };
}

export interface LeakResult {
  /** The token's kind prefix and first random characters (its key_prefix); null when it does not start like a keyplane token. */
  prefix: string | null;
  found: boolean;
  /** Whether this request revoked it (false: not found, or revoked already). */
  revoked: boolean;
  /** The key's id, or the operator token's. */
  key_id: string | null;
  kind: KeyKind | 'operator_token' | null;
  /** null for an operator token, which belongs to no account. */
  account_id: string | null;
}

/** At most this many tokens per leak report (GitHub's Credential Revocation API takes 1,000). */
export const MAX_LEAKED_TOKENS = 1000;

/**
 * POST /internal/v1/keys/revoke-leaked: each token that names a live key, of any kind and account,
 * or a live operator token, is revoked at once with reason "leaked". Malformed and
 * checksum-failing tokens are never looked up; the rest are found with one indexed read per table
 * (token hashes are SHA-256, so no per-token slow hash); each account's keys are revoked in one
 * transaction of its own (no transaction spans two accounts), operator tokens in one of the
 * operator account. A service key's children are kept: revoke them with DELETE …?children=revoke.
 */
export async function revokeLeaked(store: EventStore, tokens: string[], ctx: OpContext): Promise<LeakResult[]> {
  // Surrounding whitespace is how a token is pasted or grepped, not part of it.
  const trimmed = tokens.map((t) => t.trim());
  const keyHashes = trimmed.map((t) => parseToken(t)?.tokenHash ?? null);
  const operatorHashes = trimmed.map((t) => operatorTokenHash(t));
  const keys = await revokeLeakedKeys(store, distinct(keyHashes), ctx);
  const operators = await revokeLeakedOperatorTokens(store, distinct(operatorHashes), ctx);
  return trimmed.map((token, i) => {
    const operator = operatorHashes[i] ? operators.get(operatorHashes[i]) : undefined;
    if (operator) return { prefix: operator.keyPrefix, found: true, revoked: operator.revoked, key_id: operator.id, kind: 'operator_token', account_id: null };
    const key = keyHashes[i] ? keys.found.get(keyHashes[i]) : undefined;
    return {
      prefix: key ? key.row.keyPrefix : visiblePrefix(token),
      found: key !== undefined,
      revoked: key !== undefined && keys.revokedNow.has(key.row.id),
      key_id: key?.row.id ?? null,
      kind: key?.kind ?? null,
      account_id: key?.row.accountId ?? null,
    };
  });
}

const distinct = (hashes: (string | null)[]): string[] => [...new Set(hashes.filter((h) => h !== null))];

/** The keys of these hashes, and which of them this report revoked (each account in its own transaction). */
async function revokeLeakedKeys(store: EventStore, hashes: string[], ctx: OpContext) {
  const found = new Map((hashes.length === 0 ? [] : await keysByTokenHashes(store.db, hashes)).map((k) => [k.row.tokenHash, k]));
  const byAccount = new Map<string, AnyKeyRow[]>();
  // Live keys, and rotated ones still in their overlap (a leaked old key must stop too).
  const working = (k: AnyKeyRow) => !k.row.revokedAt || k.row.revokedAt > ctx.now;
  for (const k of found.values()) if (working(k)) byAccount.set(k.row.accountId, [...(byAccount.get(k.row.accountId) ?? []), k]);
  const revokedNow = new Set<string>();
  for (const [accountId, keys] of byAccount) {
    const ids = await withEvents(store, accountId, (tx) => revokeKeysTx(tx, accountId, keys, ctx, { reason: 'leaked' }));
    for (const id of ids) revokedNow.add(id);
  }
  return { found, revokedNow };
}

/**
 * The leak intake for a key the operator has in front of them rather than its plaintext: revokes
 * the key by id, with the same reason "leaked" and the same reach (an overlapping key stops too; a
 * service key's children are kept). Revoked already: answered as it is (`revoked: false`).
 */
export async function revokeKeyAsLeaked(store: EventStore, id: string, ctx: OpContext): Promise<RevokeOutcome> {
  const key = await findAnyKey(store.db, id);
  const working = !key.row.revokedAt || key.row.revokedAt > ctx.now;
  const revoked = working ? await withEvents(store, key.row.accountId, (tx) => revokeKeysTx(tx, key.row.accountId, [key], ctx, { reason: 'leaked' })) : new Set<string>();
  return { key: await currentView(store, id), revoked: revoked.size > 0, children: null };
}
