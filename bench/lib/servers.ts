import os from 'node:os';
import path from 'node:path';
import type { Origins } from './world.js';
import { cpuSecondsOf, freePort, postgresCpu, postgresCpuSecondsSince, startChild, waitForOk, type Child } from './proc.js';
import { drive, type Measured, type Recipe } from './load.js';
import type { CpuPerRequest } from './report.js';

/* The processes a bench run measures (keyplane in server mode, the baseline app) and one measured run. */

export const ADMIN_TOKEN = 'bench-a3959e8678f7f2dcadc5b202f77b83eaea217e3bb74caa349ed305088fd076d0';

/** Rate limits raised far beyond what one machine can send: the bench measures work, not 429s. */
const HIGH = '1000000000/1';
export const HIGH_LIMITS: NodeJS.ProcessEnv = Object.fromEntries(
  ['KEYS_MINT', 'KEYS_LIST', 'KEYS_GET', 'KEYS_UPDATE', 'KEYS_REVOKE', 'KEYS_ROTATE', 'AUDIT_READ', 'AGENTS_SELF_ROTATE', 'AGENTS_SELF_ROTATE_FAILURES', 'AUTH_FAILURES'].map((n) => [
    `RATE_LIMIT_${n}`,
    HIGH,
  ]),
);

/** Node flags for keyplane's process: --profile (a CPU profile per run in bench/profiles/) or --perf. */
export function profilingFlags(root: string, argv: string[]): string[] {
  if (argv.includes('--profile')) return ['--cpu-prof', `--cpu-prof-dir=${path.join(root, 'bench/profiles')}`];
  // --perf-basic-prof also makes V8 write a log of its heap: keep it out of the checkout.
  if (argv.includes('--perf')) return ['--perf-basic-prof', '--no-logfile-per-isolate', `--logfile=${path.join(os.tmpdir(), 'keyplane-bench-v8.log')}`];
  return [];
}

export interface Keyplane {
  child: Child;
  origins: Origins;
}

/**
 * keyplane in server mode from the checkout at `root` (its own src/main.ts), on `databaseUrl`,
 * which it migrates at start. The same node flags as `npm start`: the heap limit is part of how
 * keyplane runs.
 */
export async function startKeyplane(name: string, root: string, databaseUrl: string, nodeFlags: string[] = []): Promise<Keyplane> {
  const port = await freePort();
  const adminPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...HIGH_LIMITS,
    DATABASE_URL: databaseUrl,
    DATABASE_POOL_MAX: '10',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    KEYPLANE_ADMIN_TOKEN: ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
  };
  const child = startChild(name, process.execPath, [...nodeFlags, '--max-old-space-size=192', '--import', 'tsx', 'src/main.ts'], env, root);
  await waitForOk(`http://127.0.0.1:${port}/healthz`, child, performance.now(), 120_000);
  return { child, origins: { public: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}` } };
}

/** The baseline app (bench/baseline.server.ts) on the same database and pool size. */
export async function startBaseline(root: string, databaseUrl: string): Promise<{ child: Child; origin: string }> {
  const port = await freePort();
  const env = { ...process.env, BASELINE_DATABASE_URL: databaseUrl, BASELINE_PORT: String(port), BASELINE_POOL_MAX: '10' };
  const child = startChild('baseline', process.execPath, ['--import', 'tsx', 'bench/baseline.server.ts'], env, root);
  await waitForOk(`http://127.0.0.1:${port}/healthz`, child, performance.now());
  return { child, origin: `http://127.0.0.1:${port}` };
}

export type Run = Measured & CpuPerRequest;

/**
 * One measured run (after a warm-up) with the CPU its server process and every Postgres process
 * used, per request: where a scenario's cost goes.
 */
export async function measure(origin: string, recipe: Recipe, pid: number, seconds: number, warmup: number): Promise<Run> {
  if (warmup > 0) await drive(origin, recipe, warmup);
  const server0 = cpuSecondsOf(pid);
  const db0 = postgresCpu();
  const m = await drive(origin, recipe, seconds);
  const perRequest = (s: number) => (m.requests > 0 ? (s * 1e6) / m.requests : 0);
  const serverSeconds = cpuSecondsOf(pid) - server0;
  return { ...m, serverCpu: serverSeconds / seconds, serverUsPerRequest: perRequest(serverSeconds), dbUsPerRequest: perRequest(postgresCpuSecondsSince(db0)) };
}
