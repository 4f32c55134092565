import {
  accountKeys,
  keyOfAnyKind,
  liveKeysOfChains,
  type AnyKeyRow,
  type KeyKind,
} from '../../db/queries/operator-keys.queries.js';
import type { Permission } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { notFound, validationError } from '../errors.js';
import { isUuid } from '../ids.js';
import { getAccount } from '../portal/accounts.js';

/*
 * Every key of an account as the operator sees it, whatever its kind: a service key, a child key
 * (minted by a service key's rotation chain) or a portal key. Never a secret or a hash.
 */

export type { KeyKind };

export interface OperatorKeyView {
  id: string;
  kind: KeyKind;
  account_id: string;
  environment: 'test' | 'live';
  key_prefix: string;
  name: string;
  status: 'active' | 'revoked';
  /** API keys only (null for a service key). */
  permissions: Permission | null;
  agent_label: string | null;
  line_id: string | null;
  monthly_cap_cents: number | null;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  rotated_from: string | null;
  /** A child key: the first key of the service-key rotation chain that minted it (ADR 0005). */
  created_by_service_key_id: string | null;
  /** A service key: the first key of its rotation chain. */
  lineage_id: string | null;
  /** A child key: the live service key of its chain, which manages it; null when only the operator can. */
  managed_by_service_key_id: string | null;
  /** API keys: keyplane's expiry and suspension; null for a service key. */
  expires_at: string | null;
  suspended_at: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function operatorKeyView(k: AnyKeyRow, managedBy: string | null = null): OperatorKeyView {
  const r = k.row;
  const api = k.kind === 'service' ? null : k.row;
  return {
    id: r.id,
    kind: k.kind,
    account_id: r.accountId,
    environment: r.environment,
    key_prefix: r.keyPrefix,
    name: r.name,
    status: r.revokedAt ? 'revoked' : 'active',
    permissions: api?.permissions ?? null,
    agent_label: api?.agentLabel ?? null,
    line_id: api?.lineId ?? null,
    monthly_cap_cents: api?.monthlyCapCents ?? null,
    created_at: r.createdAt.toISOString(),
    revoked_at: iso(r.revokedAt),
    last_used_at: iso(r.lastUsedAt),
    rotated_from: r.rotatedFrom,
    created_by_service_key_id: api?.createdByServiceKeyId ?? null,
    lineage_id: k.kind === 'service' ? k.row.lineageId : null,
    managed_by_service_key_id: k.kind === 'child' ? managedBy : null,
    expires_at: iso(api?.expiresAt ?? null),
    suspended_at: iso(api?.suspendedAt ?? null),
  };
}

/** The views of keys of one account, each child key with the live key of its chain. */
export async function viewsOf(db: Db, accountId: string, keys: AnyKeyRow[]): Promise<OperatorKeyView[]> {
  const chains = [...new Set(keys.flatMap((k) => (k.kind === 'child' && k.row.createdByServiceKeyId ? [k.row.createdByServiceKeyId] : [])))];
  const live = new Map((await liveKeysOfChains(db, accountId, chains)).map((s) => [s.lineageId, s.id]));
  return keys.map((k) => operatorKeyView(k, k.kind === 'child' ? (live.get(k.row.createdByServiceKeyId!) ?? null) : null));
}

/** A key of any kind and account, or not_found. */
export async function findAnyKey(db: Db, id: string): Promise<AnyKeyRow> {
  const key = isUuid(id) ? await keyOfAnyKind(db, id) : undefined;
  if (!key) throw notFound();
  return key;
}

export async function getOperatorKey(db: Db, id: string): Promise<OperatorKeyView> {
  const key = await findAnyKey(db, id);
  const [view] = await viewsOf(db, key.row.accountId, [key]);
  return view!;
}

export interface KeyListQuery {
  status: 'active' | 'revoked' | 'all';
  prefix?: string;
  kind?: KeyKind;
  limit: number;
  cursor?: string;
}

export interface KeyListPage {
  keys: OperatorKeyView[];
  has_more: boolean;
  next_cursor: string | null;
}

/** The cursor names the last key of a page (its creation time and id); it is opaque to callers. */
const encodeCursor = (k: { created_at: string; id: string }) => Buffer.from(`${k.created_at}|${k.id}`, 'utf8').toString('base64url');

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id, extra] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (extra !== undefined || !id || !isUuid(id) || Number.isNaN(createdAt.getTime())) {
    throw validationError('cursor is not one this API returned.', [{ field: 'cursor', message: 'pass the next_cursor of the previous page' }]);
  }
  return { createdAt, id };
}

/** A page of an account's keys, newest first (ties by id), with the cursor of the next page. */
export async function listAccountKeys(db: Db, accountId: string, q: KeyListQuery): Promise<KeyListPage> {
  if (!isUuid(accountId)) throw notFound();
  const before = q.cursor === undefined ? null : decodeCursor(q.cursor);
  await getAccount(db, accountId);
  const rows = await accountKeys(db, {
    accountId,
    status: q.status === 'all' ? null : q.status,
    prefix: q.prefix ?? null,
    kind: q.kind ?? null,
    before,
    limit: q.limit + 1,
  });
  const keys = await viewsOf(db, accountId, rows.slice(0, q.limit));
  const hasMore = rows.length > q.limit;
  return { keys, has_more: hasMore, next_cursor: hasMore ? encodeCursor(keys[keys.length - 1]!) : null };
}
