import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migratePglite, migrationSourceFiles } from '../migrate.js';
import { DIR_MODE, FILE_MODE, tightenTree } from './permissions.js';

/*
 * A template of the embedded database: a PGlite data directory already initialised and migrated,
 * as the gzipped tarball PGlite itself dumps (dumpDataDir) and loads (loadDataDir), and unpacked
 * beside it: a new data directory on disk is a copy of that directory (templateDirPath), an
 * in-memory database loads the tarball.
 *
 * PGlite runs initdb for every new data directory, and that is most of an embedded cold start:
 * 3.5 s of the 6.3 s from `npm start` to the first 200 on a fresh DATA_DIR (the issue asks < 5 s),
 * against 0.9 s to load this tarball. So `npm ci` builds the template once (package.json
 * postinstall: scripts/pglite-template.ts), and a new data directory, or an in-memory database
 * (the embedded test suite), starts from it; migrate() then runs as always (nothing to apply).
 *
 * The template belongs to one PGlite version and one schema (the migrations and the SQL files of
 * db/sql): its file name carries a hash of all of them, so after an upgrade or a change of the
 * schema it is simply not found (a new data directory is then initialised as before, until the next
 * `npm ci` or `npm run pglite:template`).
 * It holds an empty schema: no account, no key, nothing secret. Still, a data directory is copied
 * from it, so it is kept as private as one (permissions.ts: directories 0700, files 0600), and so
 * is every copy, before it is renamed into place.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CACHE_DIR = path.join(ROOT, 'node_modules', '.cache', 'keyplane');

/** What the template was made from: PGlite's version and every schema source file (names and contents). */
function templateKey(): string {
  // Its package.json is not exported, so it is read from where npm installs it.
  const manifest = path.join(ROOT, 'node_modules', '@electric-sql', 'pglite', 'package.json');
  const pglite = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  const hash = createHash('sha256').update(`pglite ${pglite}\n`);
  for (const file of migrationSourceFiles()) hash.update(`${path.basename(file)}\n`).update(readFileSync(file));
  return `pglite-${pglite}-${hash.digest('hex').slice(0, 16)}`;
}

export function templatePath(): string {
  return path.join(CACHE_DIR, `${templateKey()}.tar.gz`);
}

/**
 * The same template unpacked: a data directory as PGlite leaves it when closed. A new data
 * directory on disk is a copy of it (copyTemplateDir), which skips PGlite's unpacking of the
 * tarball through its own file system layer: on 2026-11-23's host, copying took 0.51–0.56 s and
 * opening the copy 1.2–1.3 s, against 2.4–3.0 s to open a new directory from the tarball.
 */
export function templateDirPath(): string {
  return path.join(CACHE_DIR, templateKey());
}

/**
 * Makes `pgdata` (which must not exist yet) a copy of the template directory, if `npm ci` built
 * one for this PGlite and these migrations. The copy is made under a temporary name and renamed,
 * so an interrupted copy never looks like a data directory. False when there is nothing to copy
 * or the copy failed: the caller then starts from the tarball, or from initdb.
 */
export function copyTemplateDir(pgdata: string): boolean {
  const source = templateDirPath();
  if (!existsSync(path.join(source, 'PG_VERSION'))) return false;
  const partial = `${pgdata}.${process.pid}.partial`;
  try {
    rmSync(partial, { recursive: true, force: true });
    cpSync(source, partial, { recursive: true });
    tightenTree(partial);
    renameSync(partial, pgdata);
    return true;
  } catch {
    rmSync(partial, { recursive: true, force: true });
    return false;
  }
}

/** The template for this PGlite and these migrations, or undefined if it has not been built. */
export function readTemplate(): Blob | undefined {
  try {
    const file = templatePath();
    return existsSync(file) ? new Blob([readFileSync(file)]) : undefined;
  } catch {
    return undefined;
  }
}

/** Templates of this PGlite for other schemas kept beside the current one (the newest built). */
const OTHER_SCHEMAS_KEPT = 2;

/**
 * Removes the templates of other PGlite versions (never usable again) and all but the newest few of
 * other schemas: a checkout that switches between branches of different schemas, or several
 * worktrees sharing one node_modules, keeps its templates instead of rebuilding them on each switch.
 * This key's entries (and a concurrent build's partial ones) stay.
 */
function pruneTemplates(key: string): void {
  const version = key.slice(0, key.lastIndexOf('-'));
  const keyOf = (entry: string) => /^pglite-\d+\.\d+\.\d+-[0-9a-f]{16}/.exec(entry)?.[0];
  const remove = (entry: string) => rmSync(path.join(CACHE_DIR, entry), { recursive: true, force: true });
  const built = new Map<string, number>();
  for (const entry of readdirSync(CACHE_DIR)) {
    const other = keyOf(entry);
    if (!other || other === key) continue;
    if (!other.startsWith(`${version}-`)) remove(entry);
    else if (entry === `${other}.tar.gz`) built.set(other, statSync(path.join(CACHE_DIR, entry)).mtimeMs);
    else if (!built.has(other)) built.set(other, 0);
  }
  const stale = new Set([...built].sort((a, b) => b[1] - a[1]).slice(OTHER_SCHEMAS_KEPT).map(([k]) => k));
  for (const entry of readdirSync(CACHE_DIR)) if (stale.has(keyOf(entry) ?? '')) remove(entry);
}

/**
 * Builds the template: a new in-memory database, migrated, dumped, and unpacked beside the tarball.
 * Written under temporary names and renamed, so a reader never sees half a template; templates of
 * other versions are removed.
 */
export async function buildTemplate(): Promise<{ file: string; dir: string; bytes: number }> {
  const { PGlite } = await import('@electric-sql/pglite');
  // From initdb, never from an older template: the template is what a new directory would be.
  const client = new PGlite();
  try {
    await migratePglite(client);
    const bytes = Buffer.from(await (await client.dumpDataDir('gzip')).arrayBuffer());
    mkdirSync(CACHE_DIR, { recursive: true, mode: DIR_MODE });
    chmodSync(CACHE_DIR, DIR_MODE);
    const file = templatePath();
    const partial = `${file}.${process.pid}.partial`;
    writeFileSync(partial, bytes, { mode: FILE_MODE });
    chmodSync(partial, FILE_MODE);
    renameSync(partial, file);
    // The directory form: the tarball unpacked by PGlite itself, then closed cleanly. Made once per
    // template key and never replaced, since a process may be copying it (copyTemplateDir): one
    // already there was made from the same PGlite and migrations, and is kept.
    const dir = templateDirPath();
    if (!existsSync(path.join(dir, 'PG_VERSION'))) {
      rmSync(dir, { recursive: true, force: true }); // not a template (no copy starts from it)
      const partialDir = `${dir}.${process.pid}.partial`;
      rmSync(partialDir, { recursive: true, force: true });
      const unpacked = new PGlite(partialDir, { loadDataDir: new Blob([bytes]) });
      await unpacked.waitReady;
      await unpacked.close();
      tightenTree(partialDir);
      try {
        renameSync(partialDir, dir);
      } catch (err) {
        // Another build renamed its copy into place first: keep that one.
        if (!existsSync(path.join(dir, 'PG_VERSION'))) throw err;
      } finally {
        rmSync(partialDir, { recursive: true, force: true });
      }
    }
    // One made before templates were private is made so now (its contents are never changed).
    tightenTree(dir);
    pruneTemplates(path.basename(dir));
    return { file, dir, bytes: bytes.length };
  } finally {
    await client.close();
  }
}
