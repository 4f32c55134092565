import { describe, expect, it } from 'vitest';
import { chainHash } from '../../src/domain/audit/chain-hash.js';
import { canonicalJson } from '../../src/domain/canonical-json.js';

describe('canonical event encoding', () => {
  it('sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null }, u: undefined })).toBe(
      '{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });
  it('chain hashes depend on the previous link, the sequence and the content', () => {
    const h = chainHash('0'.repeat(64), 1, '{}');
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(chainHash('0'.repeat(64), 2, '{}')).not.toBe(h);
    expect(chainHash('1'.repeat(64), 1, '{}')).not.toBe(h);
    expect(chainHash('0'.repeat(64), 1, '{"a":1}')).not.toBe(h);
  });
});
