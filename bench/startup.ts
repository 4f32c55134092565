/*
 * npm run bench:startup [-- --runs=N]
 *   Builds dist/ (npm run build), then measures the embedded server's start-up compiled and through
 *   tsx (bench/lib/startup.ts), embedded and on the bench's Postgres (BENCH_DATABASE_URL). Writes the start-up section of bench/results.{json,md}; the other
 *   sections stay as the last full run left them.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { gitCommit, log, ROOT } from './lib/options.js';
import { runStartup, writeStartupResults } from './lib/startup.js';

const arg = process.argv.find((a) => a.startsWith('--runs='));
const runs = arg ? Number(arg.slice('--runs='.length)) : 5;
const built = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build.ts'], { cwd: ROOT, stdio: 'inherit' });
if (built.status !== 0) process.exit(1);
const date = new Date().toISOString();
const loadAverageBefore = os.loadavg();
const rows = await runStartup(ROOT, runs, log);
writeStartupResults(path.join(ROOT, 'bench'), { date, commit: gitCommit(ROOT), node: process.version, runs, loadAverageBefore, rows });
log(`wrote the start-up section of bench/results.{json,md} (load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')})`);
