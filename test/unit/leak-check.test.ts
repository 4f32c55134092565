import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateRotationSecret, generateToken } from '../../src/domain/auth/credentials.js';
import { findLeaks } from '../support/leak-check.js';

let dir: string;
function run(logs: string, secrets: string[], extra: { bodies?: string; idempotency?: string; headers?: string; events?: string } = {}) {
  dir = mkdtempSync(path.join(tmpdir(), 'leak-'));
  for (const d of ['logs', 'secrets', 'bodies', 'idempotency', 'headers', 'events']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'headers', '1.txt'), extra.headers ?? '');
  writeFileSync(path.join(dir, 'events', '1.txt'), extra.events ?? '');
  writeFileSync(path.join(dir, 'logs', '1.log'), logs);
  writeFileSync(path.join(dir, 'secrets', '1.txt'), secrets.join('\n'));
  writeFileSync(path.join(dir, 'bodies', '1.txt'), extra.bodies ?? '');
  writeFileSync(path.join(dir, 'idempotency', '1.txt'), extra.idempotency ?? '');
  return findLeaks(dir);
}
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the secret-leak check the whole run goes through', () => {
  it('finds a recorded secret and any secret-shaped string in the logs', () => {
    const key = generateToken('service', 'live').plaintext;
    const secret = generateRotationSecret();
    const report = run(`{"msg":"x ${key}"}\n{"msg":"${secret}"}\n`, [key]);
    expect(report.leaks.sort()).toEqual([key.slice(0, 12), secret.slice(0, 12)].sort());
    expect(report.lines).toBe(2);
  });
  it('passes clean logs that mention only key prefixes', () => {
    const t = generateToken('api', 'test');
    const report = run(`{"key_prefix":"${t.keyPrefix}"}\n`, [t.plaintext]);
    expect(report).toMatchObject({ secrets: 1, lines: 1, leaks: [] });
  });
  it('finds a recorded secret or operator token in a response body, and anything secret-shaped in a stored response', () => {
    const key = generateToken('api', 'test').plaintext;
    const operator = 'an-operator-token-without-any-recognisable-shape-0123';
    const stray = generateToken('service', 'test').plaintext;
    const report = run('', [key, operator], {
      bodies: `{"error":{"message":"${key}"}}\n{"x":"${operator}"}\n`,
      idempotency: `{"key":{"plaintext_key":"${stray}"}}\n`,
    });
    expect(report.leaks.sort()).toEqual([key.slice(0, 12), operator.slice(0, 12), stray.slice(0, 12)].sort());
    expect(report).toMatchObject({ bodies: 2, storedResponses: 1 });
  });
  it('finds a secret in a logged URL, a response header or a stored event\'s request id and user agent', () => {
    const [a, b, c, d] = [generateToken('api', 'live'), generateToken('service', 'test'), generateToken('api', 'test'), generateToken('api', 'test')].map((t) => t.plaintext);
    const report = run(`{"req":{"url":"/v1/keys?k=${a}"}}\n`, [a!], {
      headers: `{"x-request-id":"${b}"}\n`,
      events: `["${c}", null, null, {}]\n[null, "curl ${d}", null, {}]\n`,
    });
    expect(report.leaks.sort()).toEqual([a, b, c, d].map((s) => s!.slice(0, 12)).sort());
    expect(report.where.sort()).toEqual(['event', 'event', 'header', 'log']);
    expect(report).toMatchObject({ headers: 1, events: 2 });
  });
  it('passes scrubbed URLs, request ids and user agents', () => {
    const key = generateToken('api', 'test').plaintext;
    const report = run('{"req":{"url":"/v1/keys?k=[redacted:sk_test_]"}}\n', [key], {
      headers: '{"x-request-id":"0b7c1a0e-6a43-4a9b-9c39-1c6f0f7f2f4b"}\n',
      events: '["0b7c1a0e-6a43-4a9b-9c39-1c6f0f7f2f4b", "curl [redacted:sk_test_]", null, {}]\n',
    });
    expect(report.leaks).toEqual([]);
  });
  it('a secret-shaped string a client sent itself (not issued) may be echoed in a body', () => {
    const fake = generateToken('service', 'test').plaintext;
    expect(run('', [], { bodies: `{"key":{"name":"${fake}"}}\n` }).leaks).toEqual([]);
  });
});
