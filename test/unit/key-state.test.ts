import { describe, expect, it } from 'vitest';
import { accepts, EXPIRING_WITHIN_MS, keyState, keyStatus, refusalReason } from '../../src/domain/keys/key-state.js';

/* The one rule of a key's state (issue 29), at its boundaries. */

const now = new Date('2026-06-01T12:00:00.000Z');
const at = (ms: number) => new Date(now.getTime() + ms);
const row = (r: { revokedAt?: Date; suspendedAt?: Date; expiresAt?: Date }) => ({ revokedAt: null, suspendedAt: null, expiresAt: null, ...r });

describe('keyState', () => {
  it('decides live, overlapping, suspended, expired and revoked at their boundaries', () => {
    expect(keyState(row({}), now)).toBe('live');
    expect(keyState(row({ expiresAt: at(1) }), now)).toBe('live');
    expect(keyState(row({ expiresAt: now }), now)).toBe('expired');
    expect(keyState(row({ revokedAt: at(1) }), now)).toBe('overlapping');
    expect(keyState(row({ revokedAt: now }), now)).toBe('revoked');
    expect(keyState(row({ suspendedAt: at(-5) }), now)).toBe('suspended');
  });

  it('revoked wins over suspension and expiry; suspension over expiry; an overlap does not save either', () => {
    expect(keyState(row({ revokedAt: at(-1), suspendedAt: at(-5), expiresAt: at(-2) }), now)).toBe('revoked');
    expect(keyState(row({ suspendedAt: at(-5), expiresAt: at(-2) }), now)).toBe('suspended');
    expect(keyState(row({ revokedAt: at(60_000), expiresAt: at(-1) }), now)).toBe('expired');
    expect(keyState(row({ revokedAt: at(60_000), suspendedAt: at(-1) }), now)).toBe('suspended');
  });

  it('accepts live and overlapping keys only; verify names suspension and expiry, not revocation', () => {
    expect((['live', 'overlapping', 'suspended', 'expired', 'revoked'] as const).map(accepts)).toEqual([true, true, false, false, false]);
    expect(refusalReason('suspended')).toBe('suspended');
    expect(refusalReason('expired')).toBe('expired');
    expect(refusalReason('revoked')).toBeUndefined();
  });

  it('keyStatus (the console): a live key expiring within 7 days is expiring, every other state is its own', () => {
    expect(keyStatus(row({}), now)).toBe('live');
    expect(keyStatus(row({ expiresAt: at(EXPIRING_WITHIN_MS + 1) }), now)).toBe('live');
    expect(keyStatus(row({ expiresAt: at(EXPIRING_WITHIN_MS) }), now)).toBe('expiring');
    expect(keyStatus(row({ expiresAt: at(1) }), now)).toBe('expiring');
    expect(keyStatus(row({ expiresAt: now }), now)).toBe('expired');
    expect(keyStatus(row({ revokedAt: at(1000), expiresAt: at(2000) }), now)).toBe('overlapping');
    expect(keyStatus(row({ suspendedAt: at(-5), expiresAt: at(1) }), now)).toBe('suspended');
    expect(keyStatus(row({ revokedAt: now }), now)).toBe('revoked');
  });
});
