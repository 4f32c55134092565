import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config.js';
import { estimatedEntropyBits, MIN_ENTROPY_BITS, operatorTokenProblem } from '../../src/domain/auth/token-strength.js';
import { ADMIN_TOKEN as BENCH_TOKEN } from '../../bench/lib/servers.js';
import { ADMIN_TOKEN as TEST_TOKEN } from '../support/harness.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const OLD_COMPOSE_PLACEHOLDER = 'change-me-to-a-long-random-operator-token';

describe('the operator token rule (KEYPLANE_ADMIN_TOKEN)', () => {
  it('accepts every `openssl rand -hex 32` and `openssl rand -base64 32` (2,000 of each)', () => {
    let lowest = Infinity;
    for (let i = 0; i < 2000; i++) {
      const bytes = randomBytes(32);
      for (const token of [bytes.toString('hex'), bytes.toString('base64')]) {
        expect(operatorTokenProblem(token)).toBeNull();
        lowest = Math.min(lowest, estimatedEntropyBits(token));
      }
    }
    // The margin: the lowest estimate of a random token is far above the bar.
    expect(lowest).toBeGreaterThan(MIN_ENTROPY_BITS + 50);
  });

  it.each([
    ['the old compose placeholder', OLD_COMPOSE_PLACEHOLDER, /placeholder/],
    ['a changeme variant', 'CHANGE_ME_please_0123456789abcdefghijklmnop', /placeholder.*changeme/],
    ['changeme with other separators', 'x-change.me-XyZ123abcdefghijklmnopqrstuvw', /placeholder/],
    ['a replace-me', 'replace-me-with-something-long-and-random!', /placeholder/],
    ['too short', randomBytes(15).toString('hex'), /at least 32 characters/],
    ['one repeated character', 'a'.repeat(64), /distinct/],
    ['a short pattern repeated', 'abcdefgh'.repeat(8), /distinct/],
    ['a long run of one character with a few others', `${'0'.repeat(60)}123456789`, /entropy/],
    ['words and alphabet runs (the tests\' old token)', 'test-operator-token-0123456789abcdefghijklmnop', /entropy/],
  ])('refuses %s', (_what, token, why) => {
    const problem = operatorTokenProblem(token);
    expect(problem).toMatch(why);
    expect(problem).toContain('openssl rand -hex 32');
    expect(problem).not.toContain(token);
  });

  it('is applied at start: parseConfig refuses a weak token without quoting it, and accepts a strong one', () => {
    expect(() => parseConfig({ KEYPLANE_ADMIN_TOKEN: OLD_COMPOSE_PLACEHOLDER })).toThrow(/KEYPLANE_ADMIN_TOKEN: looks like a placeholder/);
    expect(() => parseConfig({ KEYPLANE_ADMIN_TOKEN: 'z'.repeat(40) })).toThrow(/KEYPLANE_ADMIN_TOKEN: has fewer than 10 distinct/);
    try {
      parseConfig({ KEYPLANE_ADMIN_TOKEN: OLD_COMPOSE_PLACEHOLDER });
    } catch (err) {
      expect(String(err)).not.toContain(OLD_COMPOSE_PLACEHOLDER);
    }
    const strong = randomBytes(32).toString('hex');
    expect(parseConfig({ KEYPLANE_ADMIN_TOKEN: strong }).KEYPLANE_ADMIN_TOKEN).toBe(strong);
    expect(parseConfig({}).KEYPLANE_ADMIN_TOKEN).toBeUndefined();
  });

  it('the tokens the tests and the bench start servers with meet it', () => {
    for (const token of [TEST_TOKEN, BENCH_TOKEN]) expect(operatorTokenProblem(token)).toBeNull();
  });
});

describe('the compose files', () => {
  const files = readdirSync(ROOT).filter((f) => /^(docker-)?compose.*\.ya?ml$/.test(f));

  it('are found', () => {
    expect(files.sort()).toEqual(['docker-compose.fleet.yml', 'docker-compose.yml']);
  });

  it.each(files)('%s has no fallback operator token: it fails fast without one', (file) => {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    expect(text).not.toContain(OLD_COMPOSE_PLACEHOLDER);
    // Every service that sets the token takes it from the environment, required (${VAR:?message}).
    const doc = parse(text) as { services: Record<string, { environment?: Record<string, string> }> };
    const values = Object.values(doc.services).flatMap((s) => (s.environment?.KEYPLANE_ADMIN_TOKEN === undefined ? [] : [s.environment.KEYPLANE_ADMIN_TOKEN]));
    expect(values.length).toBeGreaterThan(0);
    for (const v of values) expect(v).toMatch(/^\$\{KEYPLANE_ADMIN_TOKEN:\?[^}]+\}$/);
    // No default of any kind (${VAR:-x} or ${VAR-x}) for it anywhere in the file.
    expect(text).not.toMatch(/\$\{KEYPLANE_ADMIN_TOKEN:?-/);
  });
});
