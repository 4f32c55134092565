import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './cluster.js';

/*
 * A PgBouncer of the test's own (Debian's `pgbouncer`, not a system service): its own config and
 * port in a temp dir, in front of one database of a Postgres server. As root it drops to the
 * postgres user (`-u`), since PgBouncer refuses to run as root.
 */

export interface PgBouncer {
  /** The URL keyplane connects to: PgBouncer's port, the same database name and user. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

const isRoot = () => process.getuid?.() === 0;

function waitForPort(port: number, deadline: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`pgbouncer is not listening on ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** Starts PgBouncer in `poolMode` in front of the database `databaseUrl` names. */
export async function startPgBouncer(databaseUrl: string, poolMode: 'transaction' | 'session' = 'transaction'): Promise<PgBouncer> {
  const target = new URL(databaseUrl);
  const dbname = target.pathname.slice(1);
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'keyplane-pgbouncer-'));
  const ini = path.join(dir, 'pgbouncer.ini');
  const user = decodeURIComponent(target.username || 'postgres');
  writeFileSync(
    ini,
    [
      '[databases]',
      `${dbname} = host=${target.hostname} port=${target.port || 5432} dbname=${dbname} user=${user}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      // The test's clients are trusted; the server side authenticates as `user` (trust on the test servers).
      'auth_type = any',
      `pool_mode = ${poolMode}`,
      // Fewer server connections than keyplane's pools hold: transactions of different clients
      // share server connections, which is what the mode is about.
      'default_pool_size = 4',
      'max_client_conn = 200',
      'ignore_startup_parameters = extra_float_digits',
      'logfile =',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const args = isRoot() ? ['-u', 'postgres', ini] : [ini];
  const child = spawn('pgbouncer', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port, Date.now() + 10_000),
      exited.then(() => {
        throw new Error(`pgbouncer exited at start: ${log}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const url = new URL(databaseUrl);
  url.host = `127.0.0.1:${port}`;
  return {
    url: url.toString(),
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
