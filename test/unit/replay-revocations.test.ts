import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from '../../src/domain/audit/events.js';
import { retiredBy, type ExportedEvent } from '../../src/domain/operator/replay-revocations.js';

/* Which exported events retire a credential, for `keyplane keys replay-revocations`. */

const KEY = '5f0c9a3e-8d1b-4c2a-9e7f-1a2b3c4d5e6f';
const event = (event_type: string, extra: Partial<ExportedEvent> = {}): ExportedEvent => ({
  id: '0b7e2a44-1c3d-4e5f-8a9b-0c1d2e3f4a5b',
  event_type,
  subject_key_id: KEY,
  data: {},
  created_at: '2026-12-07T12:00:00.000Z',
  ...extra,
});

describe('retiredBy', () => {
  it('names the subject key of every revocation and rotation, the operator token of its revocation, and nothing else', () => {
    const retiring = EVENT_TYPES.filter((t) => retiredBy(event(t, { data: { revoked: true, operator_token_id: KEY } })) !== null);
    expect(retiring.sort()).toEqual(
      [
        'service_key_revoked',
        'portal_key_revoked',
        'agent_key_revoked',
        'service_key_rotated',
        'agent_key_rotated',
        'agent_key_self_rotated',
        'agent_key_self_rotation_replaced',
        'agent_key_reuse_detected',
        'operator_token_revoked',
      ].sort(),
    );
    expect(retiredBy(event('agent_key_rotated'))).toMatchObject({ kind: 'key', id: KEY });
    expect(retiredBy(event('operator_token_revoked', { subject_key_id: null, data: { operator_token_id: KEY } }))).toMatchObject({ kind: 'operator_token', id: KEY });
  });

  it('takes a reuse detection only when it revoked the chain', () => {
    expect(retiredBy(event('agent_key_reuse_detected', { data: { reaction: 'revoke_chain', revoked: true } }))).toMatchObject({ kind: 'key', id: KEY });
    expect(retiredBy(event('agent_key_reuse_detected', { data: { reaction: 'record', revoked: false } }))).toBeNull();
  });

  it('ignores a revocation without a subject, and an unknown event type', () => {
    expect(retiredBy(event('agent_key_revoked', { subject_key_id: null }))).toBeNull();
    expect(retiredBy(event('key_vanished'))).toBeNull();
    expect(retiredBy(event('operator_token_revoked', { data: null }))).toBeNull();
  });
});
