import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { recordSecrets } from '../support/harness.js';
import { freePort } from './support/cluster.js';

/*
 * The README's "Smoke test with curl" runs as written (issue 31, item 6): start the server, then
 * bootstrap through it. Its block is taken from README.md and run by bash in an empty directory
 * (so ./data is new: a first run), with free ports in place of 8080/8081 on this shared machine.
 */

const run = promisify(execFile);
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-readme-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function smokeScript(): string {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Smoke test with curl'));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('README.md has no sh block under "Smoke test with curl"');
  return block[1]!;
}

describe('README smoke test', () => {
  it('runs as written: the server starts first, the CLI bootstraps through it', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const script = smokeScript().replaceAll('8080', String(port)).replaceAll('8081', String(adminPort));
    writeFileSync(path.join(tmp, 'smoke.sh'), script);
    symlinkSync(path.resolve('bin'), path.join(tmp, 'bin'));
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(port), ADMIN_PORT: String(adminPort) };
    const { stdout } = await run('bash', ['-e', 'smoke.sh'], { cwd: tmp, env, timeout: 150_000 });
    recordSecrets(stdout);
    expect(stdout).toContain('{"keys":[],"total":0}');
    expect(stdout).toMatch(/"plaintext_key":"sk_test_/);
    expect(stdout).toMatch(/service\s+sk_svc_test_\w{8}\s+test\s+active\s+bootstrap service key/);
    expect(stdout).toContain('{"error":{"code":"invalid_api_key"');
    expect(stdout).toContain('{"error":{"code":"unauthorized"');
    const log = () => readFileSync(path.join(tmp, 'keyplane.log'), 'utf8');
    expect(log()).toContain('first run: operator token in');
    // The script's last line stops the server: it shuts down gracefully.
    await expect.poll(log, { timeout: 20_000, interval: 200 }).toMatch(/"msg":"closed"/);
  }, 180_000);
});
