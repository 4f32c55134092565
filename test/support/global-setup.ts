import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/db/database.js';
import { findLeaks } from './leak-check.js';

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
  mkdirSync(path.join(runDir, 'events'), { recursive: true });
  mkdirSync(path.join(runDir, 'headers'), { recursive: true });
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
      const report = findLeaks(runDir);
      process.stdout.write(
        `[keyplane tests] secret-leak check: ${report.secrets} issued secrets (keys, rotation secrets, operator tokens); searched ` +
          `${report.lines} log lines, ${report.bodies} response bodies, ${report.storedResponses} stored idempotency responses, ` +
          `${report.headers} response headers, ${report.events} stored events; ${report.leaks.length} leaks\n`,
      );
      if (report.leaks.length > 0) {
        // vitest reports an error thrown here but keeps its exit code; set it so the run fails.
        process.exitCode = 1;
        throw new Error(`secrets found (prefix in where): ${report.leaks.map((l, i) => `${l} in ${report.where[i]}`).join(', ')}`);
      }
    } finally {
      await cleanup();
      if (!process.env.KEEP_TEST_RUNS) rmSync(runDir, { recursive: true, force: true });
    }
  };
}

