import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ADMIN_TOKEN, recordSecrets } from '../support/harness.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-shutdown-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

describe('graceful shutdown', () => {
  it('on SIGTERM stops accepting, finishes in-flight requests, closes the database and exits 0', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), ADMIN_PORT: String(adminPort), KEYPLANE_ADMIN_TOKEN: ADMIN_TOKEN, LOG_LEVEL: 'info' };
    delete env.DATABASE_URL;
    const url = inject('databaseUrl');
    if (url) env.DATABASE_URL = url;
    else env.DATA_DIR = path.join(tmp, 'data');
    const child = spawn(process.execPath, ['bin/keyplane.js', 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 150 && !(await fetch(`${base}/healthz`).then((r) => r.ok, () => false)); i++) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const boot = await fetch(`http://127.0.0.1:${adminPort}/internal/v1/bootstrap`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const bootText = await boot.text();
    recordSecrets(bootText);
    const { service_key } = JSON.parse(bootText);

    // Requests in flight when the signal arrives must still be answered in full.
    const inFlight = Array.from({ length: 20 }, () =>
      fetch(`${base}/v1/keys`, { headers: { authorization: `Bearer ${service_key}` } }).then((r) => r.status, (e: Error) => e.message),
    );
    await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGTERM');
    const statuses = await Promise.all(inFlight);
    const code = await exited;
    // Every request was either answered 200 or (sent after the listener closed) refused; none cut off.
    for (const s of statuses) expect([200, 503, 'fetch failed']).toContain(s);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    expect(code).toBe(0);
    expect(output).toMatch(/shutting down/);
    const after = await fetch(`${base}/healthz`).then(() => 'answered', () => 'refused');
    expect(after).toBe('refused');
    // Generous: a cold embedded start takes ~2 s on an idle machine but much longer under load.
  }, 120_000);
});
