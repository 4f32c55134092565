import { describe, expect } from 'vitest';
import { idempotencyKeys } from '../../src/db/schema.js';
import { requestFingerprint } from '../../src/domain/idempotency/fingerprint.js';
import { newId } from '../../src/domain/ids.js';
import { call, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * A response stored before an extension field existed (a replay within the 12 hours after an
 * upgrade) is answered with that field filled in as every key of its time had it, never a 500 for a
 * field the answer's schema requires; a mint that does not send the new field keeps its fingerprint.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

/** The 14 fields of a key as a response stored before keyplane's extensions. */
const oldKey = (id: string, createdAt: string) => ({
  id,
  key_prefix: 'sk_test_abcd',
  environment: 'test',
  name: 'from before',
  agent_label: null,
  line_id: null,
  permissions: 'full',
  monthly_cap_cents: null,
  monthly_spend_cents: 0,
  created_at: createdAt,
  revoked_at: null,
  last_used_at: null,
  rotated_from: null,
  created_by_service_key_id: tenant.serviceKeyId,
});

describe('replays of responses stored before an extension field', () => {
  it('answer the stored key with the extension fields filled in, for a request fingerprinted as before', async () => {
    const idem = `upgrade-${newId()}`;
    const id = newId();
    const now = t.clock.now();
    await t.database.db.insert(idempotencyKeys).values({
      id: newId(),
      accountId: tenant.accountId,
      serviceKeyId: tenant.serviceKeyId,
      idempotencyKey: idem,
      // The fingerprint of a mint body before can_delegate: its defaults were permissions and self_rotation.
      fingerprint: requestFingerprint('POST', '/v1/keys', { name: 'from before', permissions: 'full', self_rotation: false }),
      createdAt: now,
      lockedAt: null,
      completedAt: now,
      responseStatus: 201,
      responseBody: { key: oldKey(id, now.toISOString()) },
    });
    const res = await call(t.app, 'POST', '/v1/keys', { token: tenant.serviceKey, headers: { 'idempotency-key': idem }, body: { name: 'from before' } });
    expect(res.status).toBe(201);
    expect(res.headers['idempotent-replayed']).toBe('true');
    expect(res.body.key).toEqual({ ...oldKey(id, now.toISOString()), expires_at: null, suspended_at: null, can_delegate: false, parent_key_id: null });
    expect(res.body.key.plaintext_key).toBeUndefined();
  });
});
