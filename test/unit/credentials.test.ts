import { describe, expect, it } from 'vitest';
import {
  base62Checksum,
  generateOperatorToken,
  generateRotationSecret,
  generateToken,
  operatorTokenHash,
  parseToken,
  randomBase62,
  sha256Hex,
} from '../../src/domain/auth/credentials.js';
import { SECRET_PATTERN } from '../../src/domain/auth/secret-shapes.js';

describe('token format', () => {
  it.each([
    ['service', 'test', 'sk_svc_test_'],
    ['service', 'live', 'sk_svc_live_'],
    ['api', 'test', 'sk_test_'],
    ['api', 'live', 'sk_live_'],
  ] as const)('%s/%s tokens start with %s and parse back', (kind, env, prefix) => {
    const t = generateToken(kind, env);
    expect(t.plaintext.startsWith(prefix)).toBe(true);
    expect(t.plaintext).toHaveLength(prefix.length + 43 + 6);
    expect(t.keyPrefix).toBe(t.plaintext.slice(0, prefix.length + 8));
    expect(t.tokenHash).toBe(sha256Hex(t.plaintext));
    expect(parseToken(t.plaintext)).toEqual({ kind, environment: env, tokenHash: t.tokenHash });
  });

  it('service key_prefix is 20 characters, as the spec example', () => {
    expect(generateToken('service', 'live').keyPrefix).toHaveLength(20);
  });

  it('carries at least 256 bits of randomness (43 base62 characters)', () => {
    expect(43 * Math.log2(62)).toBeGreaterThanOrEqual(256);
    const seen = new Set(Array.from({ length: 2000 }, () => randomBase62(43)));
    expect(seen.size).toBe(2000);
  });

  it('uses every base62 character roughly uniformly', () => {
    const counts = new Map<string, number>();
    for (const ch of randomBase62(62_000)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(62);
    for (const n of counts.values()) expect(n).toBeGreaterThan(700);
  });

  it('rejects any single-character change (checksum), truncation and extension', () => {
    const t = generateToken('api', 'test').plaintext;
    let rejected = 0;
    for (let i = 8; i < t.length; i++) {
      const ch = t[i] === 'a' ? 'b' : 'a';
      const mangled = t.slice(0, i) + ch + t.slice(i + 1);
      if (parseToken(mangled) === null) rejected++;
    }
    expect(rejected).toBe(t.length - 8);
    expect(parseToken(t.slice(0, -1))).toBeNull();
    expect(parseToken(`${t}x`)).toBeNull();
  });

  it('rejects wrong prefixes, bad characters, and oversize input without throwing', () => {
    const t = generateToken('service', 'live').plaintext;
    expect(parseToken(t.replace('sk_svc_live_', 'sk_svc_prod_'))).toBeNull();
    expect(parseToken(t.replace('sk_', 'pk_'))).toBeNull();
    expect(parseToken(`${t.slice(0, 20)}-${t.slice(21)}`)).toBeNull();
    expect(parseToken('')).toBeNull();
    expect(parseToken('x'.repeat(10_000))).toBeNull();
  });

  it('checksum is 6 base62 characters', () => {
    expect(base62Checksum('sk_test_abc')).toMatch(/^[0-9A-Za-z]{6}$/);
  });

  it('the leak pattern matches every secret kind and not a key_prefix', () => {
    const t = generateToken('service', 'test');
    const rs = generateRotationSecret();
    expect(`x ${t.plaintext} y`.match(SECRET_PATTERN)).toEqual([t.plaintext]);
    expect(rs.match(SECRET_PATTERN)).toEqual([rs]);
    expect(t.keyPrefix.match(SECRET_PATTERN)).toBeNull();
  });

  it('operator tokens: kpo_, checksummed, hashed like keys, never taken for a key (nor a key for one)', () => {
    const op = generateOperatorToken();
    expect(op.plaintext).toMatch(/^kpo_[0-9A-Za-z]{49}$/);
    expect(op.keyPrefix).toBe(op.plaintext.slice(0, 12));
    expect(operatorTokenHash(op.plaintext)).toBe(op.tokenHash);
    expect(op.tokenHash).toBe(sha256Hex(op.plaintext));
    const flipped = op.plaintext.slice(0, -1) + (op.plaintext.endsWith('A') ? 'B' : 'A');
    expect(operatorTokenHash(flipped)).toBeNull();
    expect(operatorTokenHash(`${op.plaintext}A`)).toBeNull();
    expect(parseToken(op.plaintext)).toBeNull();
    expect(operatorTokenHash(generateToken('api', 'test').plaintext)).toBeNull();
    expect(`a=${op.plaintext};`.match(SECRET_PATTERN)).toEqual([op.plaintext]);
    expect(op.keyPrefix.match(SECRET_PATTERN)).toBeNull();
  });
});
