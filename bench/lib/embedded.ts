import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { EmbeddedResult } from './report.js';
import { drive, once, type Recipe } from './load.js';
import { freePort, memoryOf, startChild, waitForOk, type Child } from './proc.js';
import { ADMIN_TOKEN } from './servers.js';

/*
 * Embedded mode (PGlite): the cold start a first-time user sees, and GET /v1/keys/{id} against a
 * bare Fastify doing the same SELECT on its own in-process PGlite.
 */

function embeddedEnv(dataDir: string, port: number, adminPort: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  return { ...env, KEYPLANE_ADMIN_TOKEN: ADMIN_TOKEN, ADMIN_PORT: String(adminPort) };
}

/** The bench's own directory for data directories (see runEmbedded); each caller makes its own below it. */
export function benchTmp(root: string, prefix: string): string {
  // Inside the checkout, where `npm start` keeps its default DATA_DIR (./data): a data directory is
  // ~1,050 files, and on this machine creating a file in /tmp costs 0.9 ms against 0.2–0.4 ms here.
  mkdirSync(path.join(root, 'bench', '.tmp'), { recursive: true });
  return mkdtempSync(path.join(root, 'bench', '.tmp', prefix));
}

/**
 * `npm start` in the checkout at `root` (its own package.json and src/main.ts), embedded mode on
 * `dataDir`, which must not exist yet: the milliseconds from the spawn to the first 200 on /healthz.
 */
export async function coldStartMs(root: string, dataDir: string): Promise<number> {
  const port = await freePort();
  const adminPort = await freePort();
  const t0 = performance.now();
  const cold = startChild('npm start', 'npm', ['start'], embeddedEnv(dataDir, port, adminPort), root);
  try {
    return await waitForOk(`http://127.0.0.1:${port}/healthz`, cold, t0);
  } finally {
    await cold.stop();
  }
}

export async function runEmbedded(
  root: string,
  highLimits: NodeJS.ProcessEnv,
  seconds: number,
  warmup: number,
  log: (s: string) => void,
): Promise<EmbeddedResult> {
  const tmp = benchTmp(root, 'embedded-');
  const children: Child[] = [];
  try {
    // 1. Cold start: `npm start` exactly as the README says, on a data directory that does not exist yet.
    const coldStart = await coldStartMs(root, path.join(tmp, 'cold'));
    log(`embedded cold start: ${coldStart.toFixed(0)} ms`);

    // 2. GET /v1/keys/{id} vs the PGlite baseline, interleaved B S B.
    const kp = await freePort();
    const kpAdmin = await freePort();
    const server = startChild('keyplane (embedded)', process.execPath, ['--max-old-space-size=192', '--import', 'tsx', 'src/main.ts'], { ...embeddedEnv(path.join(tmp, 'kp'), kp, kpAdmin), ...highLimits }, root);
    children.push(server);
    const bp = await freePort();
    const baseline = startChild('baseline (embedded)', process.execPath, ['--import', 'tsx', 'bench/baseline.server.ts'], { ...process.env, BASELINE_DATA_DIR: path.join(tmp, 'baseline'), BASELINE_PORT: String(bp) }, root);
    children.push(baseline);
    const s0 = performance.now();
    await waitForOk(`http://127.0.0.1:${kp}/healthz`, server, s0);
    await waitForOk(`http://127.0.0.1:${bp}/healthz`, baseline, s0);

    const boot = await once(`http://127.0.0.1:${kpAdmin}`, 'POST', '/internal/v1/bootstrap', { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, '{}');
    if (boot.status !== 201) throw new Error(`embedded bootstrap answered ${boot.status}: ${boot.text}`);
    const sk = (JSON.parse(boot.text) as { service_key: string }).service_key;
    const auth = { authorization: `Bearer ${sk}`, 'content-type': 'application/json' };
    const minted = await once(`http://127.0.0.1:${kp}`, 'POST', '/v1/keys', { ...auth, 'idempotency-key': 'bench-embedded-1' }, JSON.stringify({ name: 'bench' }));
    if (minted.status !== 201) throw new Error(`embedded mint answered ${minted.status}: ${minted.text}`);
    const keyId = (JSON.parse(minted.text) as { key: { id: string } }).key.id;

    const get: Recipe = { method: 'GET', path: `/v1/keys/${keyId}`, headers: auth, expect: 200 };
    const base: Recipe = { method: 'GET', path: '/baseline/keys/00000000-0000-4000-8000-000000000001', headers: {}, expect: 200 };
    const kpOrigin = `http://127.0.0.1:${kp}`;
    const bOrigin = `http://127.0.0.1:${bp}`;
    const measure = async (origin: string, r: Recipe) => {
      if (warmup > 0) await drive(origin, r, warmup);
      return drive(origin, r, seconds);
    };
    const b1 = await measure(bOrigin, base);
    const s = await measure(kpOrigin, get);
    const b2 = await measure(bOrigin, base);
    const baselineRps = (b1.rps + b2.rps) / 2;
    const peakRssMb = memoryOf(server.pid).peakMb;
    log(`embedded GET: ${s.rps.toFixed(0)} req/s vs baseline ${baselineRps.toFixed(0)}`);
    return {
      coldStartMs: coldStart,
      get: { rps: s.rps, p50: s.p50, p99: s.p99, errors: s.errors, baselineRps, ratio: s.rps / baselineRps },
      peakRssMb,
    };
  } finally {
    for (const c of children) await c.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
