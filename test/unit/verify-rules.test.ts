import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PERMISSIONS } from '../../src/db/schema.js';
import { allows, inScope, lineOptional, tiersAllowing, VERBS } from '../../src/domain/verify/rules.js';

const LINE = '7b0c5a52-3f0e-4a57-9d0c-7b1c2d3e4f50';
const OTHER = '0e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9';

describe('verification rules', () => {
  it('every tier may read; only full and legacy_full may admin', () => {
    for (const p of PERMISSIONS) {
      expect(allows(p, 'read')).toBe(true);
      expect(allows(p, 'admin')).toBe(p === 'full' || p === 'legacy_full');
    }
    expect(allows('call_only', 'sms')).toBe(false);
    expect(allows('sms_only', 'call')).toBe(false);
  });

  it('line scope: own line always, another never, none only to read', () => {
    for (const verb of VERBS) {
      expect(inScope(null, verb, null)).toBe(true);
      expect(inScope(null, verb, OTHER)).toBe(true);
      expect(inScope(LINE, verb, LINE)).toBe(true);
      expect(inScope(LINE, verb, LINE.toUpperCase())).toBe(true);
      expect(inScope(LINE, verb, OTHER)).toBe(false);
      expect(inScope(LINE, verb, null)).toBe(verb === 'read');
    }
  });

  it('the rules as the debit statement takes them are the same rules', () => {
    for (const verb of VERBS) {
      expect([...tiersAllowing(verb)].sort()).toEqual(PERMISSIONS.filter((p) => allows(p, verb)).sort());
      expect(lineOptional(verb)).toBe(inScope(LINE, verb, null));
    }
    expect(tiersAllowing('admin').sort()).toEqual(['full', 'legacy_full']);
  });

  it('a line-scoped key never acts on a line other than its own', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.uuid(), fc.constantFrom(...VERBS), (keyLine, asked, verb) => {
        const ok = inScope(keyLine, verb, asked);
        expect(ok).toBe(keyLine.toLowerCase() === asked.toLowerCase());
      }),
    );
  });
});
