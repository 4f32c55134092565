import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateRotationSecret, generateToken } from '../../src/domain/auth/credentials.js';
import { findLeaks } from '../support/leak-check.js';

let dir: string;
function run(logs: string, secrets: string[], extra: { bodies?: string; idempotency?: string } = {}) {
  dir = mkdtempSync(path.join(tmpdir(), 'leak-'));
  for (const d of ['logs', 'secrets', 'bodies', 'idempotency']) mkdirSync(path.join(dir, d));
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
  it('a secret-shaped string a client sent itself (not issued) may be echoed in a body', () => {
    const fake = generateToken('service', 'test').plaintext;
    expect(run('', [], { bodies: `{"key":{"name":"${fake}"}}\n` }).leaks).toEqual([]);
  });
});
