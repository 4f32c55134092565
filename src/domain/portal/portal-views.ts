import type { AccountRow, ApiKeyRow } from '../../db/schema.js';
import { toKeyObject, toServiceKeyObject, type KeyObject, type ServiceKeyObject } from '../keys/key-object.js';

/** What the portal API and the CLI show of the portal's records. */
export interface AccountView {
  id: string;
  name: string;
  created_at: string;
}

/** An account with its settings (PATCH /internal/v1/accounts/{id}). */
export interface AccountSettingsView extends AccountView {
  reuse_reaction: AccountRow['reuseReaction'];
}

export type PortalKeyObject = KeyObject & { account_id: string };

export const accountView = (a: AccountRow): AccountView => ({ id: a.id, name: a.name, created_at: a.createdAt.toISOString() });
export const accountSettingsView = (a: AccountRow): AccountSettingsView => ({ ...accountView(a), reuse_reaction: a.reuseReaction });
export const portalKeyView = (k: ApiKeyRow): PortalKeyObject => ({ ...toKeyObject(k), account_id: k.accountId });
export const serviceKeyView = (k: Parameters<typeof toServiceKeyObject>[0]): ServiceKeyObject => toServiceKeyObject(k);

/** A key issued once: its object and its plaintext, shown on this answer only. */
export type IssuedView<T> = T & { plaintext_key: string };

/** A key row just issued, and its plaintext (returned once, never stored). */
export interface Issued<T> {
  row: T;
  plaintext: string;
}
