import { authenticate, type ServicePrincipal } from '../../src/domain/auth.service.js';
import { mintChildKeyTx, prepareKeyMaterial, type MintInput } from '../../src/domain/child-keys.service.js';
import { recordSecrets, type TestApp } from './harness.js';

export interface Agent {
  id: string;
  apiKey: string;
  rotationSecret: string | null;
}

/**
 * Mints a child key through the domain (the same code the mint route runs), so these tests do not
 * depend on the mint route: principal from `authenticate`, secrets prepared before the transaction.
 */
export async function mintAgent(t: TestApp, serviceKey: string, input: Partial<MintInput> = {}): Promise<Agent> {
  const db = t.database.db;
  const now = t.clock.now();
  const principal = (await authenticate(db, serviceKey, 'service', { readOnly: false, now })) as ServicePrincipal;
  const full: MintInput = {
    name: 'agent',
    agentLabel: null,
    lineId: null,
    permissions: 'full',
    monthlyCapCents: null,
    selfRotation: false,
    ...input,
  };
  const material = await prepareKeyMaterial(principal.environment, full.selfRotation);
  const ctx = {
    actor: { kind: 'service_key' as const, keyId: principal.id, keyPrefix: principal.keyPrefix },
    meta: { requestId: null, ip: '127.0.0.1', userAgent: 'vitest' },
    now,
  };
  const row = await db.transaction((tx) => mintChildKeyTx(tx, principal, full, material, ctx));
  recordSecrets(`${material.token.plaintext}\n${material.rotationSecret ?? ''}`);
  return { id: row.id, apiKey: material.token.plaintext, rotationSecret: material.rotationSecret };
}
