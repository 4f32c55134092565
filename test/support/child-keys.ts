import { actorOf, authenticate, type ServicePrincipal } from '../../src/domain/auth/auth.service.js';
import { mintChildKeyTx, revokeChildKey, type MintInput } from '../../src/domain/keys/child-keys.js';
import { prepareKeyMaterial } from '../../src/domain/keys/key-material.js';
import { rotateKeyTx } from '../../src/domain/keys/rotation.js';
import type { OpContext } from '../../src/domain/context.js';
import { withEvents } from '../../src/domain/audit/events.js';
import type { ApiKeyRow } from '../../src/db/schema.js';
import { recordSecrets, type Tenant, type TestApp } from './harness.js';

/*
 * Child keys for tests, made through the domain (the same code the /v1/keys routes call): the
 * principal comes from authenticate() with the tenant's service key.
 */

/** What these helpers need of a tenant: its service key. */
type WithServiceKey = Pick<Tenant, 'serviceKey'>;

async function principalOf(t: TestApp, tenant: WithServiceKey): Promise<ServicePrincipal> {
  const p = await authenticate(t.database.db, tenant.serviceKey, 'service', { readOnly: false, now: t.clock.now() });
  if (p.tier !== 'service') throw new Error('not a service key');
  return p;
}

const ctxOf = (t: TestApp, p: ServicePrincipal): OpContext => ({
  actor: actorOf(p),
  meta: { requestId: null, ip: '127.0.0.1', userAgent: 'vitest' },
  now: t.clock.now(),
});

export interface ChildKey {
  id: string;
  plaintext: string;
  /** Set when minted with selfRotation. */
  rotationSecret: string | null;
  row: ApiKeyRow;
}

export async function mintChild(t: TestApp, tenant: WithServiceKey, input: Partial<MintInput> = {}): Promise<ChildKey> {
  const p = await principalOf(t, tenant);
  const full: MintInput = {
    name: 'agent',
    agentLabel: null,
    lineId: null,
    permissions: 'full',
    monthlyCapCents: null,
    selfRotation: false,
    ...input,
  };
  const material = await prepareKeyMaterial(p.environment, full.selfRotation);
  recordSecrets(`${material.token.plaintext}\n${material.rotationSecret ?? ''}`);
  const row = await withEvents(t.store, p.accountId, (tx) => mintChildKeyTx(tx, p, full, material, ctxOf(t, p)));
  return { id: row.id, plaintext: material.token.plaintext, rotationSecret: material.rotationSecret, row };
}

export async function rotateChild(t: TestApp, tenant: WithServiceKey, id: string): Promise<ChildKey> {
  const p = await principalOf(t, tenant);
  const material = await prepareKeyMaterial(p.environment, false);
  recordSecrets(material.token.plaintext);
  const { successor } = await withEvents(t.store, p.accountId, (tx) =>
    rotateKeyTx(tx, { accountId: p.accountId, keyId: id, createdByServiceKeyId: p.ownerId }, material, ctxOf(t, p)),
  );
  return { id: successor.id, plaintext: material.token.plaintext, rotationSecret: null, row: successor };
}

export async function revokeChild(t: TestApp, tenant: WithServiceKey, id: string): Promise<ApiKeyRow> {
  const p = await principalOf(t, tenant);
  return revokeChildKey(t.store, p, id, ctxOf(t, p));
}
