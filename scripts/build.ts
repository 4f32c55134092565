/*
 * `npm run build` (and `npm ci`'s postinstall): compiles src/ to dist/ with tsc (tsconfig.build.json:
 * one .js and one source map per source file, incremental), copies the files the code reads beside
 * itself at run time (db/sql/*.sql, the console's http/console/assets/*; tsc emits examples.json itself), removes what no source file
 * produces any more, and writes dist/.built last. bin/keyplane.js runs dist/ only when that stamp
 * is newer than every file under src/, so an edited or never-built checkout runs its sources.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'src');
const DIST = path.join(ROOT, 'dist');
const STAMP = path.join(DIST, '.built');

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** The source file a file in dist/ comes from: x.js and x.js.map from x.ts, anything else copied as is. */
function sourceOf(rel: string): string {
  return rel.replace(/\.js(\.map)?$/, '.ts');
}

const t0 = performance.now();
rmSync(STAMP, { force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
if (compiled.status !== 0) {
  console.error('keyplane: the build failed (tsc); bin/keyplane.js runs the sources through tsx until it succeeds');
  process.exit(1);
}
mkdirSync(path.join(DIST, 'db', 'sql'), { recursive: true });
for (const f of readdirSync(path.join(SRC, 'db', 'sql'))) cpSync(path.join(SRC, 'db', 'sql', f), path.join(DIST, 'db', 'sql', f));
// The operator console's browser files (CSS, scripts), served from beside the compiled plugin.
const CONSOLE_ASSETS = path.join('http', 'console', 'assets');
mkdirSync(path.join(DIST, CONSOLE_ASSETS), { recursive: true });
for (const f of readdirSync(path.join(SRC, CONSOLE_ASSETS))) cpSync(path.join(SRC, CONSOLE_ASSETS, f), path.join(DIST, CONSOLE_ASSETS, f));
for (const rel of filesUnder(DIST)) {
  if (rel.startsWith('.')) continue;
  const source = rel.startsWith(CONSOLE_ASSETS) ? rel : sourceOf(rel);
  if (rel.endsWith('.ts') || !existsSync(path.join(SRC, source))) rmSync(path.join(DIST, rel));
}
writeFileSync(STAMP, `${new Date().toISOString()}\n`);
console.log(`keyplane: compiled src/ to dist/ (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
