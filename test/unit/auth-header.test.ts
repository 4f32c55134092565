import { describe, expect, it } from 'vitest';
import { bearerToken } from '../../src/http/plugins/auth.js';

describe('Authorization header parsing', () => {
  it('reads a bearer token, tolerating extra spaces and scheme case', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('Bearer     abc')).toBe('abc');
    expect(bearerToken('bearer abc ')).toBe('abc');
  });
  it('treats a missing or blank header as missing', () => {
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken('   ')).toBeUndefined();
  });
  it('rejects other schemes and malformed values', () => {
    expect(bearerToken('Basic abc')).toBeNull();
    expect(bearerToken('Bearer')).toBeNull();
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken('Bearerabc')).toBeNull();
  });
});
