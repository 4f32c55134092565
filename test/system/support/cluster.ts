import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';

/*
 * A throwaway PostgreSQL cluster for the system tests: initdb into a temp dir, its own port and its
 * own socket dir, so a test may stop, kill and restart it without touching the machine's shared
 * server. As root, initdb and pg_ctl run as the postgres user (Postgres refuses to run as root).
 */

const run = promisify(execFile);

/** A free loopback TCP port (bound then released; good enough on a test machine). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

export interface Cluster {
  port: number;
  url: string;
  dataDir: string;
  start(): Promise<void>;
  /** pg_ctl stop -m immediate: every backend dies at once, like a crash or a network cut. */
  stopImmediate(): Promise<void>;
  /** Backends connected to the keyplane database with application_name 'keyplane'. */
  keyplaneConnections(): Promise<number>;
  /** What keyplane's sessions are doing (state, wait, transaction age, query), one line each: for failure messages. */
  sessions(): Promise<string[]>;
  destroy(): Promise<void>;
}

/** @param settings extra server settings (`-c name=value`), e.g. a slower WAL writer. */
export async function createCluster(settings: Record<string, string> = {}): Promise<Cluster> {
  const root = mkdtempSync(path.join(tmpdir(), 'keyplane-pg-'));
  const dataDir = path.join(root, 'data');
  const sockDir = root;
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(root, uid, gid);
    chmodSync(root, 0o700);
  }
  const port = await freePort();
  const [initCmd, initArgs] = asPostgres('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  execFileSync(initCmd, initArgs, { stdio: 'ignore', timeout: 60_000 });
  // Small and quick: a few connections, no fsync wait (the machine does not crash, only processes).
  const extra = Object.entries(settings).map(([name, value]) => ` -c ${name}=${value}`).join('');
  const opts = `-p ${port} -k ${sockDir} -c listen_addresses=127.0.0.1 -c max_connections=60 -c fsync=off -c shared_buffers=32MB${extra}`;
  const logFile = path.join(root, 'pg.log');
  const pgCtl = (args: string[]) => {
    const [cmd, a] = asPostgres('pg_ctl', args);
    return run(cmd, a, { timeout: 30_000 });
  };
  const base = `postgres://postgres@127.0.0.1:${port}`;
  const cluster: Cluster = {
    port,
    url: `${base}/keyplane`,
    dataDir,
    async start() {
      await pgCtl(['-D', dataDir, '-o', opts, '-l', logFile, '-w', '-t', '30', 'start']);
    },
    async stopImmediate() {
      await pgCtl(['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
    },
    async keyplaneConnections() {
      const c = new pg.Client({ connectionString: `${base}/postgres` });
      await c.connect();
      try {
        const r = await c.query("select count(*)::int as n from pg_stat_activity where application_name = 'keyplane'");
        return r.rows[0].n as number;
      } finally {
        await c.end();
      }
    },
    async sessions() {
      const c = new pg.Client({ connectionString: `${base}/postgres` });
      await c.connect();
      try {
        const r = await c.query(
          `select pid, state, wait_event_type, wait_event, round(extract(epoch from now() - xact_start) * 1000) as xact_ms,
                  round(extract(epoch from now() - state_change) * 1000) as state_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 120) as query
             from pg_stat_activity where application_name = 'keyplane' order by pid`,
        );
        return r.rows.map((s) => `${s.pid} ${s.state} wait=${s.wait_event_type ?? '-'}/${s.wait_event ?? '-'} xact=${s.xact_ms ?? '-'}ms state=${s.state_ms}ms ${s.query}`);
      } finally {
        await c.end();
      }
    },
    async destroy() {
      try {
        if (statSync(path.join(dataDir, 'postmaster.pid'), { throwIfNoEntry: false })) await cluster.stopImmediate();
      } catch {
        // already stopped
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
  await cluster.start();
  const c = new pg.Client({ connectionString: `${base}/postgres` });
  await c.connect();
  await c.query('create database keyplane');
  await c.end();
  return cluster;
}
