import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { inject } from 'vitest';
import { recordLiteralSecret, recordResponseBody, recordSecrets } from '../../support/harness.js';
import { freePort } from './cluster.js';

/*
 * keyplane as a real child process (`node bin/keyplane.js serve`), the way it runs in production.
 * Its stdout/stderr (pino JSON) go to the run's log directory, where teardown greps every line for
 * leaked secrets. Rate limits are raised far above what a test sends: these tests measure crash,
 * outage and load behaviour, not the limits (which have their own tests).
 */

const BIN = path.resolve('bin/keyplane.js');
/** Any per-route limit far above what a test sends in its lifetime. */
const UNLIMITED = '10000000/3600';

export interface ServerProcess {
  base: string;
  adminBase: string;
  adminToken: string;
  child: ChildProcess;
  /** Where the server's stdout and stderr go (pino's JSON lines). */
  logFile: string;
  /** SIGKILL: no graceful shutdown, no finally blocks, sockets cut mid-request. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

let started = 0;

export async function startServer(databaseUrl: string, extraEnv: Record<string, string> = {}): Promise<ServerProcess> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const adminToken = `system-test-operator-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}-padding`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'info',
    KEYPLANE_ADMIN_TOKEN: adminToken,
    RATE_LIMIT_KEYS_MINT: UNLIMITED,
    RATE_LIMIT_KEYS_LIST: UNLIMITED,
    RATE_LIMIT_KEYS_GET: UNLIMITED,
    RATE_LIMIT_KEYS_UPDATE: UNLIMITED,
    RATE_LIMIT_KEYS_REVOKE: UNLIMITED,
    RATE_LIMIT_KEYS_ROTATE: UNLIMITED,
    RATE_LIMIT_AUDIT_READ: UNLIMITED,
    RATE_LIMIT_AGENTS_SELF_READ: UNLIMITED,
    RATE_LIMIT_AGENTS_SELF_CHECK: UNLIMITED,
    RATE_LIMIT_AUTH_FAILURES: UNLIMITED,
    RATE_LIMIT_AGENTS_SELF_ROTATE: UNLIMITED,
    RATE_LIMIT_AGENTS_SELF_ROTATE_FAILURES: UNLIMITED,
    ...extraEnv,
  };
  const logFile = path.join(inject('runDir'), 'logs', `server-${process.pid}-${++started}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  // The operator token is a secret too: teardown greps the logs and bodies for it.
  recordLiteralSecret(adminToken);
  const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`keyplane exited during startup (code ${child.exitCode}); see ${logFile}`);
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(500) });
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`keyplane did not start within 30 s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // The admin listener starts right after the public one.
  const adminBase = `http://127.0.0.1:${adminPort}`;
  for (let i = 0; i < 50; i++) {
    try {
      await fetch(`${adminBase}/healthz`, { signal: AbortSignal.timeout(500) });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    base,
    adminBase,
    adminToken,
    child,
    logFile,
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: any;
  raw: string;
  ms: number;
}

/** One HTTP request the SDK's way (Content-Type: application/json always); never throws on HTTP status. */
export async function http(
  base: string,
  method: string,
  url: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const t0 = performance.now();
  const res = await fetch(`${base}${url}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  const raw = await res.text();
  const ms = performance.now() - t0;
  recordSecrets(raw);
  recordResponseBody(method, url, res.status, raw);
  let body: unknown;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, raw, ms };
}

export interface Bootstrap {
  accountId: string;
  serviceKey: string;
  apiKey: string;
}

export async function bootstrap(server: ServerProcess): Promise<Bootstrap> {
  // A process just started on a busy host can shed its first requests (503, its start-up counted
  // in the event-loop delay): set-up waits that out, as a client told Retry-After would.
  let r = await http(server.adminBase, 'POST', '/internal/v1/bootstrap', { token: server.adminToken, body: {} });
  for (let i = 0; i < 10 && r.status === 503; i++) {
    await new Promise((res) => setTimeout(res, 1000));
    r = await http(server.adminBase, 'POST', '/internal/v1/bootstrap', { token: server.adminToken, body: {} });
  }
  if (r.status !== 201) throw new Error(`bootstrap failed: ${r.status} ${r.raw}`);
  return { accountId: r.body.account_id, serviceKey: r.body.service_key, apiKey: r.body.api_key };
}
