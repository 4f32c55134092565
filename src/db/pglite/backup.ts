import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { migratePglite, type MigrationLogger } from '../migrate.js';
import { acquireDataDirLock } from './data-dir-lock.js';
import { DIR_MODE, ownDataDir, tightenTree } from './permissions.js';

/*
 * Backups of the embedded database: PGlite's own dump of its data directory (dumpDataDir, a gzipped
 * tarball of the files), restored with loadDataDir into a new directory. A dump is taken under
 * PGlite's query lock after a CHECKPOINT, so no statement writes while the files are read: what it
 * holds is every transaction committed before it, as after a crash. It holds every key's hash and
 * the whole compliance log: whoever reads it can check guessed tokens offline, so it is kept as
 * private as the data directory.
 */

type PgliteClient = { query(text: string): Promise<unknown>; dumpDataDir(compression?: 'gzip'): Promise<Blob> };

/** The dump of an open embedded database: a gzipped tarball of its data directory. */
export async function dumpPglite(client: PgliteClient): Promise<Uint8Array> {
  // Flushed first, so that a restore replays little WAL.
  await client.query('checkpoint');
  const blob = await client.dumpDataDir('gzip');
  return new Uint8Array(await blob.arrayBuffer());
}

const notABackup = (why: string) => new Error(`not a backup of an embedded keyplane database (${why})`);

/**
 * The tar archive inside a dump, checked before PGlite sees it: PGlite decompresses what it cannot
 * untar in a stream whose error nobody awaits, so a file that is not a dump would end the process
 * with an unhandled rejection instead of an answer.
 */
function tarOf(dump: Uint8Array): Uint8Array {
  let tar = dump;
  if (dump[0] === 0x1f && dump[1] === 0x8b) {
    try {
      tar = new Uint8Array(gunzipSync(dump));
    } catch (err) {
      throw notABackup(`gzip: ${(err as Error).message}`);
    }
  }
  // A tar header's magic, at byte 257 of its first block.
  if (Buffer.from(tar.subarray(257, 262)).toString('latin1') !== 'ustar') throw notABackup('no tar archive in it');
  return tar;
}

export interface RestoreOutcome {
  /** Where the data directory that was there before now is (kept until the operator removes it); null when there was none. */
  previous: string | null;
}

/**
 * Replaces DATA_DIR's database with a dump: the current one is moved aside (never deleted), the
 * dump is loaded into a new directory and migrated to this keyplane's schema (a dump of an older
 * keyplane is upgraded; one of a newer keyplane is refused, as the server refuses it). On any
 * failure the directory is put back as it was. Takes the data directory's lock, so it refuses to
 * run while a server uses it.
 */
export async function restorePglite(dataDir: string, dump: Uint8Array, log?: MigrationLogger): Promise<RestoreOutcome> {
  const tar = tarOf(dump);
  mkdirSync(dataDir, { recursive: true, mode: DIR_MODE });
  ownDataDir(dataDir);
  const lock = acquireDataDirLock(dataDir);
  const pgdata = path.join(dataDir, 'pgdata');
  const previous = existsSync(pgdata) ? `${pgdata}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}` : null;
  try {
    if (previous) renameSync(pgdata, previous);
    try {
      const { PGlite } = await import('@electric-sql/pglite');
      const client = new PGlite(pgdata, { loadDataDir: new Blob([tar]) });
      try {
        await client.waitReady.catch((err: Error) => {
          throw notABackup(`PGlite could not load it: ${err.message}`);
        });
        await migratePglite(client, log);
      } catch (err) {
        // A client that never started cannot close either; the error worth reporting is the first.
        await client.close().catch(() => {});
        throw err;
      }
      await client.close();
      tightenTree(pgdata);
    } catch (err) {
      rmSync(pgdata, { recursive: true, force: true });
      if (previous) renameSync(previous, pgdata);
      throw err;
    }
    if (previous) tightenTree(previous);
    return { previous };
  } finally {
    lock.release();
  }
}
