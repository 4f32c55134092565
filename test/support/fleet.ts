import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { recordSecrets } from './harness.js';
import { freePort } from './redis.js';

/*
 * Real keyplane processes (`node bin/keyplane.js serve`), as an operator runs them, on a Postgres
 * database of their own. Their logs go to the run's log directory, so the end-of-run leak check
 * covers them too.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The server the fleet's database is created on: the run's, else the machine's local Postgres. */
export const serverUrl = () => process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function createFleetDatabase(label: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `keyplane_${label}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`create database "${name}"`);
  await admin.end();
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl() });
      await c.connect();
      await c.query(`drop database if exists "${name}" with (force)`);
      await c.end();
    },
  };
}

export interface Instance {
  name: string;
  base: string;
  adminBase: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startInstance(name: string, env: Record<string, string>): Promise<Instance> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const logFile = path.join(inject('runDir'), 'logs', `fleet-${name}-${process.pid}-${port}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['bin/keyplane.js', 'serve'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      HOST: '127.0.0.1',
      PORT: String(port),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(adminPort),
      LOG_LEVEL: 'info',
      // Two processes on one test database: a small pool each is plenty.
      DATABASE_POOL_MAX: '4',
      ...env,
    },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`instance ${name} exited with ${child.exitCode}; see ${logFile}`);
    const up = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`instance ${name} did not start within 30 s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name,
    base,
    adminBase: `http://127.0.0.1:${adminPort}`,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: any;
}

/** A request the way the SDKs make it: Content-Type: application/json on every request. */
export async function http(
  base: string,
  method: string,
  url: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const res = await fetch(`${base}${url}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  recordSecrets(text);
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}
