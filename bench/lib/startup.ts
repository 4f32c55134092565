import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { adminQuery, databaseUrlFor } from './admin-db.js';
import { benchTmp } from './embedded.js';
import { freePort, memoryOf, startChild, waitForOk } from './proc.js';

/*
 * Start-up of the embedded server, compiled (dist/, `npm run build`) against the TypeScript sources
 * through tsx (how `npm start` ran before the build existed): the milliseconds from the spawn to the
 * first 200 on /healthz, and the server's RSS at that moment: embedded, on a data directory that
 * does not exist yet (a first run: the template is copied) and on that same directory again (a
 * restart); and in server mode on an already migrated database of the bench's Postgres
 * (BENCH_DATABASE_URL), where start-up is the process's own work.
 * Runs interleave tsx, compiled, tsx, compiled … so that whatever the host does hits both.
 */

export type Runner = 'tsx' | 'compiled';
export type Database = 'embedded, new DATA_DIR' | 'embedded, existing DATA_DIR' | 'Postgres';

const ARGS: Record<Runner, string[]> = {
  tsx: ['--max-old-space-size=192', '--import', 'tsx', 'src/main.ts'],
  compiled: ['--max-old-space-size=192', 'bin/keyplane.js', 'serve'],
};

export interface StartupRow {
  runner: Runner;
  database: Database;
  ms: number[];
  rssMb: number[];
}

export interface StartupResult {
  date: string;
  commit: string;
  node: string;
  runs: number;
  loadAverageBefore: number[];
  rows: StartupRow[];
}

/** `where` is a data directory (embedded) or a postgres:// URL (server mode). */
async function startOnce(root: string, where: string, runner: Runner): Promise<{ ms: number; rssMb: number }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), ADMIN_PORT: String(adminPort), HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  if (where.startsWith('postgres://')) env.DATABASE_URL = where;
  else env.DATA_DIR = where;
  const t0 = performance.now();
  const child = startChild(`keyplane (${runner})`, process.execPath, ARGS[runner], env, root);
  try {
    const ms = await waitForOk(`http://127.0.0.1:${port}/healthz`, child, t0);
    return { ms, rssMb: memoryOf(child.pid).rssMb };
  } finally {
    await child.stop();
  }
}

export async function runStartup(root: string, runs: number, log: (s: string) => void): Promise<StartupRow[]> {
  if (!existsSync(path.join(root, 'dist', '.built'))) throw new Error('dist/ is not built: npm run build');
  const databases: Database[] = ['embedded, new DATA_DIR', 'embedded, existing DATA_DIR', 'Postgres'];
  const rows: StartupRow[] = (['tsx', 'compiled'] as const).flatMap((runner) => databases.map((database) => ({ runner, database, ms: [], rssMb: [] })));
  const tmp = benchTmp(root, 'startup-');
  const dbName = `keyplane_bench_startup_${process.pid}`;
  await adminQuery(`create database ${dbName}`);
  try {
    const url = databaseUrlFor(dbName);
    await startOnce(root, url, 'compiled'); // applies the migrations, unmeasured
    for (let i = 0; i < runs; i++) {
      for (const runner of ['tsx', 'compiled'] as const) {
        const dir = path.join(tmp, `${runner}-${i}`);
        for (const database of databases) {
          const m = await startOnce(root, database === 'Postgres' ? url : dir, runner);
          const row = rows.find((r) => r.runner === runner && r.database === database)!;
          row.ms.push(m.ms);
          row.rssMb.push(m.rssMb);
          log(`${runner}, ${database}: ${m.ms.toFixed(0)} ms, ${m.rssMb.toFixed(0)} MB`);
        }
      }
    }
    return rows;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    await adminQuery(`drop database if exists ${dbName} with (force)`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function startupMarkdown(s: StartupResult): string {
  const lines = [
    '## Start-up: compiled (dist/) against tsx',
    '',
    `Measured ${s.date} (commit ${s.commit}), Node ${s.node}, ${s.runs} runs of each, interleaved; load average ${s.loadAverageBefore.map((l) => l.toFixed(1)).join(' / ')} before. From the spawn to the first 200 on /healthz; RSS of the server at that answer. \`npm run bench:startup\`.`,
    '',
    '| command | database | median s | range s | median RSS MB | range MB |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const r of s.rows) {
    const cmd = r.runner === 'tsx' ? '`node --import tsx src/main.ts`' : '`node bin/keyplane.js serve` (dist/)';
    const range = (xs: number[], k: number, digits: number) => `${(Math.min(...xs) / k).toFixed(digits)}–${(Math.max(...xs) / k).toFixed(digits)}`;
    lines.push(`| ${cmd} | ${r.database} | **${(median(r.ms) / 1000).toFixed(2)}** | ${range(r.ms, 1000, 2)} | **${median(r.rssMb).toFixed(0)}** | ${range(r.rssMb, 1, 0)} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** The start-up section of results.{json,md}, beside (or replacing) the last one; the rest stays. */
export function writeStartupResults(dir: string, s: StartupResult): void {
  const jsonFile = path.join(dir, 'results.json');
  const before = existsSync(jsonFile) ? (JSON.parse(readFileSync(jsonFile, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(jsonFile, `${JSON.stringify({ ...before, startup: s }, null, 2)}\n`);
  const mdFile = path.join(dir, 'results.md');
  const md = existsSync(mdFile) ? readFileSync(mdFile, 'utf8') : '';
  const kept = md.split('\n## Start-up: compiled')[0]!.trimEnd();
  writeFileSync(mdFile, `${kept ? `${kept}\n\n` : ''}${startupMarkdown(s)}`);
}
