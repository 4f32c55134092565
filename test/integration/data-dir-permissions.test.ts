import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { tightenTree } from '../../src/db/pglite/permissions.js';

/*
 * An embedded data directory is private to keyplane's user: every directory 0700, every file 0600,
 * whatever the umask and whatever modes PGlite gives its files (0666). Modes are compared on their
 * permission bits (mode & 0o777), so the file type bits do not matter. (Embedded whichever database
 * the run uses.)
 */

const tmp = mkdtempSync(path.join(os.tmpdir(), 'keyplane-perms-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every path under root (root included) whose permission bits are not 0700 (directory) or 0600 (file). */
function notPrivate(root: string): string[] {
  const wrong: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    const mode = st.mode & 0o777;
    if (st.isDirectory()) {
      if (mode !== 0o700) wrong.push(`${p} ${mode.toString(8)}`);
      for (const e of readdirSync(p)) walk(path.join(p, e));
    } else if (st.isFile() && mode !== 0o600) wrong.push(`${p} ${mode.toString(8)}`);
  };
  walk(root);
  return wrong;
}

const countFiles = (root: string) => readdirSync(root, { recursive: true }).length;

describe('embedded data directory permissions', () => {
  it('a new data directory: 0700 directories and 0600 files when open, and after it is closed', async () => {
    const dataDir = path.join(tmp, 'fresh');
    const database = await openDatabase({ dataDir });
    try {
      await database.migrate();
      // Something that makes PGlite write (and create files) while running.
      await database.db.execute(sql`create table perm_probe as select g from generate_series(1, 1000) g`);
      expect(countFiles(dataDir)).toBeGreaterThan(500);
      // What PGlite creates while running may be 0666 until close, but behind two 0700 directories.
      expect(lstatSync(dataDir).mode & 0o777).toBe(0o700);
      expect(lstatSync(path.join(dataDir, 'pgdata')).mode & 0o777).toBe(0o700);
      expect(lstatSync(path.join(dataDir, 'keyplane.lock')).mode & 0o777).toBe(0o600);
    } finally {
      await database.close();
    }
    expect(notPrivate(dataDir)).toEqual([]);
  });

  it('what PGlite copied or created at open is tightened at once', async () => {
    const dataDir = path.join(tmp, 'at-open');
    const database = await openDatabase({ dataDir });
    try {
      expect(notPrivate(dataDir)).toEqual([]);
    } finally {
      await database.close();
    }
  });

  it('an existing DATA_DIR open to everyone, and its old files, are made private at start', async () => {
    const dataDir = path.join(tmp, 'world-writable');
    const first = await openDatabase({ dataDir });
    await first.close();
    chmodSync(dataDir, 0o777);
    chmodSync(path.join(dataDir, 'pgdata'), 0o777);
    chmodSync(path.join(dataDir, 'pgdata', 'PG_VERSION'), 0o666);
    const again = await openDatabase({ dataDir });
    try {
      expect(notPrivate(dataDir)).toEqual([]);
    } finally {
      await again.close();
    }
  });

  it('tightenTree sets exact modes whatever they were, and leaves symlinks alone', () => {
    const root = path.join(tmp, 'tree');
    mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    writeFileSync(path.join(root, 'a', 'b', 'f'), 'x');
    writeFileSync(path.join(root, 'g'), 'x');
    chmodSync(path.join(root, 'a'), 0o777);
    chmodSync(path.join(root, 'a', 'b', 'f'), 0o666);
    chmodSync(path.join(root, 'g'), 0o400);
    tightenTree(root);
    expect(notPrivate(root)).toEqual([]);
  });
});
