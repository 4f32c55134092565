import { describe, expect } from 'vitest';
import { base62Checksum, generateToken, randomBase62 } from '../../src/domain/auth/credentials.js';
import { ADMIN_TOKEN, type Tenant, type TestApp } from '../support/harness.js';
import { unlimitedRateLimits } from '../support/routes.js';
import { appTest } from '../support/fixtures.js';

const it = appTest({ rateLimit: unlimitedRateLimits() });

/*
 * Timing (issue 8, point 4): rejecting an unknown key must not tell an attacker whether its visible
 * prefix (kind + first 8 random characters, the key_prefix shown in dashboards) belongs to a real
 * key. Lookups are by the SHA-256 of the whole token, so a near miss of a real key and a random key
 * cost the same. Measured as many interleaved samples per class, compared by median with a
 * tolerant bound so the test is not flaky on a busy CI machine: the statistic is the median of the
 * per-round paired differences, which cancels load that hits all classes of a round alike.
 */

/** Samples per class: enough for a stable median, about a second of work per class. */
const SAMPLES = 300;
/** The median paired difference may reach this fraction of the overall median, or this many ms, whichever is larger. */
const RELATIVE_BOUND = 0.25;
const ABSOLUTE_BOUND_MS = 0.3;

let t: TestApp;
let tenant: Tenant;

it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

/** A well-formed token (valid checksum) that shares the first `keep` random characters of `real`. */
function sharing(real: string, kindPrefix: string, keep: number): string {
  for (;;) {
    const random = real.slice(kindPrefix.length, kindPrefix.length + keep) + randomBase62(43 - keep);
    const body = kindPrefix + random;
    // Never the real key itself (1 chance in 62 when only one character is drawn).
    if (!real.startsWith(body)) return body + base62Checksum(body);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[s.length >> 1]!;
};

async function timeRejection(app: typeof t.app, url: string, token: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  expect(res.statusCode).toBe(401);
  return ms;
}

async function compare(app: typeof t.app, url: string, classes: Record<string, () => string>) {
  const names = Object.keys(classes);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < 30; i++) for (const n of names) await timeRejection(app, url, classes[n]!()); // warm-up
  for (let i = 0; i < SAMPLES; i++) {
    // Interleaved in a random order each round, so drift (GC, other tests) hits every class alike.
    for (const n of [...names].sort(() => Math.random() - 0.5)) samples[n]!.push(await timeRejection(app, url, classes[n]!()));
  }
  // Per round, each class minus the last (the baseline): drift and load bursts cancel within a round,
  // and the median of those paired differences is what a patient attacker could average out.
  const base = names.at(-1)!;
  const overall = median(Object.values(samples).flat());
  const diffs = Object.fromEntries(names.slice(0, -1).map((n) => [n, median(samples[n]!.map((x, i) => x - samples[base]![i]!))]));
  const spread = Math.max(...Object.values(diffs).map(Math.abs));
  const bound = Math.max(ABSOLUTE_BOUND_MS, RELATIVE_BOUND * overall);
  const fmt = (o: Record<string, number>) => JSON.stringify(Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Number(v.toFixed(3))])));
  const medians = Object.fromEntries(names.map((n) => [n, median(samples[n]!)]));
  process.stdout.write(`[timing] ${url}: medians ${fmt(medians)} ms; median paired difference vs "${base}" ${fmt(diffs)} ms (bound ${bound.toFixed(3)})\n`);
  return { spread, bound };
}

describe('rejection timing does not reveal whether a key prefix exists', () => {
  it('service keys: a near miss of a real key, a real key_prefix, and a random unknown key are rejected alike', async () => {
    const p = 'sk_svc_test_';
    const { spread, bound } = await compare(t.app, '/v1/keys', {
      'shares 42 of 43 random chars': () => sharing(tenant.serviceKey, p, 42),
      'shares the key_prefix (8 chars)': () => sharing(tenant.serviceKey, p, 8),
      'random unknown': () => generateToken('service', 'test').plaintext,
    });
    expect(spread).toBeLessThan(bound);
  });

  it('API keys on /v1/audit: the same', async () => {
    const p = 'sk_test_';
    const { spread, bound } = await compare(t.app, '/v1/audit', {
      'shares 42 of 43 random chars': () => sharing(tenant.apiKey, p, 42),
      'shares the key_prefix (8 chars)': () => sharing(tenant.apiKey, p, 8),
      'random unknown': () => generateToken('api', 'test').plaintext,
    });
    expect(spread).toBeLessThan(bound);
  });

  it('the operator token: a near miss and a random token are rejected alike (hashed, then timingSafeEqual)', async () => {
    const { spread, bound } = await compare(t.admin, '/internal/v1/accounts/00000000-0000-4000-8000-000000000000/service-keys', {
      'all but the last char': () => ADMIN_TOKEN.slice(0, -1) + randomBase62(1).replace(ADMIN_TOKEN.at(-1)!, '#'),
      'random of the same length': () => randomBase62(ADMIN_TOKEN.length),
    });
    expect(spread).toBeLessThan(bound);
  });
});
