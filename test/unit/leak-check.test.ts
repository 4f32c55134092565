import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateRotationSecret, generateToken } from '../../src/domain/credentials.js';
import { findLeaks } from '../support/leak-check.js';

let dir: string;
function run(logs: string, secrets: string[]) {
  dir = mkdtempSync(path.join(tmpdir(), 'leak-'));
  mkdirSync(path.join(dir, 'logs'));
  mkdirSync(path.join(dir, 'secrets'));
  writeFileSync(path.join(dir, 'logs', '1.log'), logs);
  writeFileSync(path.join(dir, 'secrets', '1.txt'), secrets.join('\n'));
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
    expect(report).toEqual({ secrets: 1, lines: 1, leaks: [] });
  });
});
