import { describe, expect, it } from 'vitest';
import { generateRotationSecret, generateToken, randomBase62 } from '../../src/domain/auth/credentials.js';
import { isSecretShaped, scrubSecrets, SECRET_PATTERN } from '../../src/domain/auth/secret-shapes.js';

const child = generateToken('api', 'live');
const service = generateToken('service', 'test');
const rotation = generateRotationSecret();
// A named operator token: kpo_, 43 random and 6 checksum base62 characters.
const operator = `kpo_${randomBase62(49)}`;

describe('secret shapes: the one list of what keyplane issues', () => {
  it.each([
    ['a child or portal API key', child.plaintext, '[redacted:sk_live_]'],
    ['a service key', service.plaintext, '[redacted:sk_svc_test_]'],
    ['a rotation secret', rotation, '[redacted:rs_]'],
    ['a named operator token', operator, '[redacted:kpo_]'],
  ])('scrubs %s anywhere in the text, keeping only its prefix', (_kind, secret, marker) => {
    const url = `/v1/keys/${secret}?a=1&token=${secret}`;
    const out = scrubSecrets(url);
    expect(out).toBe(`/v1/keys/${marker}?a=1&token=${marker}`);
    expect(out).not.toMatch(SECRET_PATTERN);
    expect(isSecretShaped(secret)).toBe(true);
    expect(isSecretShaped(`Mozilla/5.0 (${secret})`)).toBe(true);
  });
  it('scrubs a truncated or overlong paste, and a percent-encoded underscore', () => {
    expect(scrubSecrets(`x=${child.plaintext.slice(0, 30)}`)).toBe('x=[redacted:sk_live_]');
    expect(scrubSecrets(`x=${child.plaintext}abcdef`)).toBe('x=[redacted:sk_live_]');
    const encoded = service.plaintext.replace(/_/g, '%5F');
    expect(scrubSecrets(`/v1/keys?k=${encoded}`)).toBe('/v1/keys?k=[redacted:sk_svc_test_]');
    expect(isSecretShaped(encoded.replace(/%5F/g, '%5f'))).toBe(true);
  });
  it('the leak pattern matches each issued secret exactly', () => {
    for (const secret of [child.plaintext, service.plaintext, rotation, operator]) expect(`x ${secret} y`.match(SECRET_PATTERN)).toEqual([secret]);
  });
  it('leaves display prefixes, ids and ordinary text alone (returned as the same string)', () => {
    for (const text of [
      child.keyPrefix,
      operator.slice(0, 12),
      `/v1/audit?api_key_id=${child.keyPrefix}&limit=5`,
      '/internal/v1/accounts/0b7c1a0e-6a43-4a9b-9c39-1c6f0f7f2f4b/service-keys',
      'saperly-sdk/2.1 node/20.19 (linux; x64)',
      'users_and_errors_abc',
      '{"msg":"request completed","res":{"statusCode":200}}',
    ]) {
      expect(scrubSecrets(text)).toBe(text);
      expect(isSecretShaped(text)).toBe(false);
    }
  });
  it('scrubs known literals (the operator token) whatever their shape', () => {
    const token = 'f3a9c0d1e2b4a5968778695a4b3c2d1e0f9e8d7c6b5a49382716051f2e3d4c5b';
    expect(scrubSecrets(`/internal/v1/verify?t=${token}`, [token])).toBe('/internal/v1/verify?t=[redacted]');
    expect(scrubSecrets(`/internal/v1/verify?t=${token}`)).toContain(token);
  });
});
