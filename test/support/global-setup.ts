import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/db/client.js';
import { SECRET_PATTERN } from '../../src/domain/credentials.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Postgres URL of this run's own database; empty in PGlite mode. */
    databaseUrl: string;
    dbMode: 'postgres' | 'pglite';
    /** Where every test app writes its logs and the secrets it issued, checked at teardown. */
    runDir: string;
  }
}

const runId = `${Date.now().toString(36)}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;

function dockerAvailable(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Picks the test database: TEST_DATABASE_URL → a fresh database of a unique name on that server
 * (dropped afterwards); else, with a Docker engine, a testcontainers Postgres; else PGlite.
 */
export default async function setup(project: TestProject) {
  const runDir = path.resolve('.test-runs', runId);
  mkdirSync(path.join(runDir, 'logs'), { recursive: true });
  mkdirSync(path.join(runDir, 'secrets'), { recursive: true });
  mkdirSync(path.join(runDir, 'bodies'), { recursive: true });
  mkdirSync(path.join(runDir, 'idempotency'), { recursive: true });
  project.provide('runDir', runDir);

  let cleanup: () => Promise<void> = async () => {};
  let serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl && dockerAvailable()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:16-alpine').start();
    serverUrl = container.getConnectionUri();
    cleanup = async () => void (await container.stop());
  }
  if (serverUrl) {
    const dbName = `keyplane_test_${runId}`;
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`create database "${dbName}"`);
    await admin.end();
    const url = new URL(serverUrl);
    url.pathname = `/${dbName}`;
    const database = await openDatabase({ databaseUrl: url.toString(), poolMax: 2 });
    await database.migrate();
    await database.close();
    project.provide('databaseUrl', url.toString());
    project.provide('dbMode', 'postgres');
    const previous = cleanup;
    cleanup = async () => {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`drop database if exists "${dbName}" with (force)`);
      await c.end();
      await previous();
    };
    process.stdout.write(`[keyplane tests] database: postgres (${dbName})\n`);
  } else {
    project.provide('databaseUrl', '');
    project.provide('dbMode', 'pglite');
    process.stdout.write('[keyplane tests] database: PGlite (embedded)\n');
  }

  return async () => {
    try {
      checkLogsForSecrets(runDir);
    } finally {
      await cleanup();
      if (!process.env.KEEP_TEST_RUNS) rmSync(runDir, { recursive: true, force: true });
    }
  };
}

/**
 * No secret that any test saw (plaintext keys, rotation secrets, operator tokens) may appear in any
 * log line of the run (servers in-process and child processes), in any response body other than the
 * first answer of an issuing route (error bodies included), or in any stored idempotency response.
 * Logs must also hold nothing shaped like a secret at all.
 */
function checkLogsForSecrets(runDir: string): void {
  const read = (dir: string) => readdirSync(dir).map((f) => readFileSync(path.join(dir, f), 'utf8'));
  const logs = read(path.join(runDir, 'logs')).join('\n');
  const bodies = read(path.join(runDir, 'bodies')).join('\n');
  const idempotency = read(path.join(runDir, 'idempotency')).join('\n');
  const secrets = new Set(
    read(path.join(runDir, 'secrets'))
      .join('\n')
      .split('\n')
      .filter(Boolean),
  );
  const leaks = new Set<string>();
  for (const m of logs.matchAll(SECRET_PATTERN)) leaks.add(`log:${m[0].slice(0, 12)}`);
  for (const m of idempotency.matchAll(SECRET_PATTERN)) leaks.add(`idempotency:${m[0].slice(0, 12)}`);
  // Shaped secrets are found by the pattern and looked up; shapeless ones (operator tokens) by search.
  const shaped = (text: string) => new Set([...text.matchAll(SECRET_PATTERN)].map((m) => m[0]));
  const found = { log: shaped(logs), body: shaped(bodies), idempotency: shaped(idempotency) };
  const text = { log: logs, body: bodies, idempotency };
  for (const s of secrets) {
    const isShaped = new RegExp(`^${SECRET_PATTERN.source}$`).test(s);
    for (const where of ['log', 'body', 'idempotency'] as const) {
      if (isShaped ? found[where].has(s) : text[where].includes(s)) leaks.add(`${where}:${s.slice(0, 12)}`);
    }
  }
  const count = (text: string) => text.split('\n').filter(Boolean).length;
  process.stdout.write(
    `[keyplane tests] secret-leak check: ${secrets.size} issued secrets (keys, rotation secrets, operator tokens); ` +
      `searched ${count(logs)} log lines, ${count(bodies)} response bodies, ${count(idempotency)} stored idempotency responses; ${leaks.size} leaks\n`,
  );
  if (leaks.size > 0) throw new Error(`secrets found (where:prefix): ${[...leaks].join(', ')}`);
}
