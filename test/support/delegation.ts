import type { MintInput } from '../../src/domain/keys/child-keys.js';
import { mintChild, type ChildKey } from './child-keys.js';
import { ADMIN_TOKEN, call, type CallResult, type Tenant, type TestApp } from './harness.js';

/*
 * Delegation trees for tests: a root minted by the service key through the domain (may delegate),
 * and delegated keys made through POST /v1/agents/self/keys with the parent's own API key.
 */

let seq = 0;
/** A fresh Idempotency-Key (they are scoped per API key; fresh ones keep tests independent). */
export const idemKey = () => `deleg-${Date.now()}-${++seq}-${Math.random().toString(36).slice(2)}`;

/** A delegation body: full tier, 100 cents, an hour; `over` replaces any of it. */
export const delegationBody = (over: Record<string, unknown> = {}) => ({ name: 'sub-agent', permissions: 'full', budget_cents: 100, ttl_seconds: 3600, ...over });

/** POST /v1/agents/self/keys with the parent's key; `idem` null sends no Idempotency-Key. */
export function delegate(t: TestApp, parentKey: string, body: unknown, idem: string | null = idemKey()): Promise<CallResult> {
  return call(t.app, 'POST', '/v1/agents/self/keys', { token: parentKey, body, headers: idem === null ? {} : { 'idempotency-key': idem } });
}

export interface Delegated {
  id: string;
  plaintext: string;
  /** The 201 answer's body: the key object and its delegation. */
  body: { key: Record<string, any>; delegation: Record<string, any> };
}

/** A delegation that must succeed (throws with the answer otherwise). */
export async function delegated(t: TestApp, parentKey: string, over: Record<string, unknown> = {}): Promise<Delegated> {
  const res = await delegate(t, parentKey, delegationBody(over));
  if (res.status !== 201) throw new Error(`delegation refused: ${res.status} ${res.raw}`);
  return { id: res.body.key.id, plaintext: res.body.key.plaintext_key, body: res.body };
}

/** A root key that may delegate, minted by the tenant's service key. */
export const rootKey = (t: TestApp, tenant: Tenant, input: Partial<MintInput> = {}): Promise<ChildKey> => mintChild(t, tenant, { canDelegate: true, ...input });

/** A chain root → depth 1 → … → depth n, each able to delegate and living a little less than its parent; index i is depth i. */
export async function chain(t: TestApp, tenant: Tenant, depth: number): Promise<{ id: string; plaintext: string }[]> {
  const root = await rootKey(t, tenant);
  const keys: { id: string; plaintext: string }[] = [{ id: root.id, plaintext: root.plaintext }];
  for (let d = 1; d <= depth; d++) keys.push(await delegated(t, keys[d - 1]!.plaintext, { can_delegate: true, name: `depth-${d}`, ttl_seconds: 3600 - 60 * d }));
  return keys;
}

/** POST /internal/v1/verify on the admin listener, as the data plane calls it. */
export const verifyKey = (t: TestApp, key: string, verb = 'read') => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb } });

/** Whether verify accepts the key for a read. */
export const isValid = async (t: TestApp, key: string): Promise<boolean> => (await verifyKey(t, key)).body.valid === true;

/** GET /v1/keys/{id} with the service key: any key of the tree, revoked or not. */
export const keyById = async (t: TestApp, tenant: Tenant, id: string) => (await call(t.app, 'GET', `/v1/keys/${id}`, { token: tenant.serviceKey })).body.key;
