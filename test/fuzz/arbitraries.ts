import fc from 'fast-check';
import { withLastCharChanged } from '../support/tokens.js';

/*
 * Hostile request parts for the fuzzer: every generator yields something a client could put on the
 * wire. Header values stay within what an HTTP parser accepts (visible ASCII, space, tab and
 * obs-text), since anything else never reaches the application on a real socket.
 */

/** Strings that have broken servers before: SQL, traversal, format strings, NUL, unicode edge cases. */
const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  "' OR 1=1 --",
  "'; drop table api_keys; --",
  '"; select pg_sleep(10); --',
  '$1',
  '%s%s%s%n',
  '${jndi:ldap://x}',
  '{{7*7}}',
  '../../../../etc/passwd',
  '..%2f..%2f..%2fetc%2fpasswd',
  '%00',
  '\ud800',
  '\udfff\ud800',
  '𝕜𝕖𝕪𝕡𝕝𝕒𝕟𝕖',
  'ﷺ'.repeat(50),
  'é'.repeat(129),
  'a'.repeat(129),
  'a'.repeat(10_000),
  '\u202e\u0041',
  '\r\n\r\nHTTP/1.1 200 OK',
  '__proto__',
  'constructor',
  'null',
  'true',
  '-1',
  '1e309',
  'NaN',
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '00000000-0000-0000-0000-00000000000g',
  'sk_test_',
  'sk_svc_test_' + 'A'.repeat(49),
];

const anyString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
);

/** Any JSON value, biased to scalars that are near the valid ones. */
const scalar = fc.oneof(
  anyString,
  fc.integer(),
  fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 100_000_000, 100_000_001, 1.5, 1e308),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.uuid(),
  fc.constantFrom('full', 'call_only', 'sms_only', 'read_only', 'legacy_full', 'test', 'live', 'call', 'sms', 'agent-1'),
);
const jsonValue = fc.oneof({ weight: 4, arbitrary: scalar }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) });

/** A body built on the route's own field names, with hostile values and stray fields. */
function nearValidBody(fields: string[]) {
  const known = fields.length ? fields : ['x'];
  return fc
    .tuple(
      fc.dictionary(fc.constantFrom(...known), jsonValue, { maxKeys: known.length }),
      fc.dictionary(fc.oneof(anyString, fc.constantFrom('__proto__', 'constructor', 'prototype')), jsonValue, { maxKeys: 2 }),
      fc.boolean(),
    )
    .map(([own, stray, addStray]) => {
      const body: Record<string, unknown> = { ...own };
      // Never mint keys with a rotation secret here: each costs an argon2 hash and tests nothing new.
      if ('self_rotation' in body) body.self_rotation = false;
      if (addStray) Object.assign(body, stray);
      return JSON.stringify(body);
    });
}

/** Raw payloads: random JSON, malformed JSON, huge and deeply nested bodies, NUL bytes. */
export function payload(fields: string[]) {
  return fc.oneof(
    { weight: 6, arbitrary: nearValidBody(fields) },
    { weight: 2, arbitrary: jsonValue.map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
    { weight: 1, arbitrary: fc.json().map((j) => j.slice(0, Math.max(1, j.length - 1))) },
    { weight: 1, arbitrary: fc.constantFrom('{', '}', '{"a":}', '[1,]', "{'a':1}", '{"a":1}{"b":2}', 'undefined', '\u0000', '{"name":"\u0000"}', '\ufeff{}', '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"x":1}}}') },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 30_000 }).map((d) => '['.repeat(d) + ']'.repeat(d)) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 10_000 }).map((d) => '{"a":'.repeat(d) + '1' + '}'.repeat(d)) },
    { weight: 1, arbitrary: fc.integer({ min: 65 * 1024, max: 200 * 1024 }).map((n) => JSON.stringify({ name: 'x'.repeat(n) })) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

const headerChar = fc.constantFrom(...'abcXYZ019-_.:/+=;, \t~!#$%&*"\'()<>?@[]\\^`{|}'.split(''), '\u00e9', '\u00ff');
export const headerValue = fc.oneof(
  fc.string({ unit: headerChar, maxLength: 60 }),
  fc.integer({ min: 256, max: 16_000 }).map((n) => 'k'.repeat(n)),
  fc.constantFrom('', ' ', 'a b', 'x'.repeat(255), 'x'.repeat(256), 'null'),
);

/** The Authorization header: valid tokens of each tier, near misses, junk, or none. */
export function authorization(valid: { service: string; api: string; operator: string }, own: string | undefined) {
  const flip = withLastCharChanged;
  return fc.oneof(
    // Mostly the route's own credential, so most requests get past auth to the body and the params.
    { weight: own ? 10 : 0, arbitrary: fc.constantFrom(`Bearer ${own}`, `bearer    ${own}`) },
    { weight: 2, arbitrary: fc.constantFrom(`Bearer ${valid.service}`, `Bearer ${valid.api}`, `Bearer ${valid.operator}`) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        'Bearer',
        'Bearer ',
        'Basic dXNlcjpwYXNz',
        `Bearer ${flip(valid.service)}`,
        `Bearer ${flip(valid.api)}`,
        `Bearer ${valid.service.slice(0, -5)}`,
        `Bearer ${valid.service} extra`,
        `Bearer ${valid.operator}x`,
        `Token ${valid.service}`,
        'Bearer sk_live_' + '0'.repeat(49),
        'Bearer sk_svc_live_' + 'z'.repeat(49),
      ),
    },
    { weight: 1, arbitrary: headerValue.map((v) => `Bearer ${v}`) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 16_000 }).map((n) => `Bearer ${'sk_test_'.padEnd(n, 'A')}`) },
  );
}

export const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      undefined,
      'application/json; charset=utf-8',
      'application/json; charset=utf-16',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      'APPLICATION/JSON',
      '*/*',
      '',
    ),
  },
);

/** The `:id` path segment: real ids, random uuids, non-uuids, traversal and encodings. */
export function pathId(real: string[]) {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...real) },
    { weight: 2, arbitrary: fc.uuid() },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        '..',
        '..%2F..%2Finternal%2Fv1%2Fbootstrap',
        '%2e%2e%2f%2e%2e%2f',
        '..;',
        '%00',
        'a%00b',
        '%',
        '%E0%A4%A',
        '%F0%9F%94%91',
        '%C0%AE%C0%AE',
        'null',
        '1',
        '-1',
        "'%20OR%201=1",
        'x'.repeat(5_000),
        '00000000-0000-0000-0000-000000000000',
        'AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA',
        '{id}',
        ':id',
        'keys',
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((s) => encodeURIComponent(s)) },
  );
}

/** A query string: the route's own parameters with hostile values, duplicates, junk and bad encodings. */
export function queryString(fields: string[]) {
  const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...(fields.length ? fields : ['q'])) }, { weight: 1, arbitrary: fc.constantFrom('__proto__', 'limit[]', 'a[b]', '', '%', 'x') });
  const value = fc.oneof(
    fc.constantFrom('1', '0', '-1', '100', '101', '500', '501', '100000', '100001', 'abc', '1.5', '1e3', '0x10', ' 5', 'self', 'compliance_event', 'call,sms', 'bogus', '', '%', '%00', '%E0%A4%A', 'null', '9'.repeat(400)),
    fc.uuid(),
    fc.string({ maxLength: 20 }).map(encodeURIComponent),
  );
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 4, arbitrary: fc.array(fc.tuple(key, value), { maxLength: 4 }).map((pairs) => (pairs.length ? '?' + pairs.map(([k, v]) => `${k}=${v}`).join('&') : '')) },
    { weight: 1, arbitrary: fc.constantFrom('?', '?&&&', '?=', '?limit', '?limit=1&limit=2', '?%zz', '?' + 'a=1&'.repeat(2_000)) },
  );
}
