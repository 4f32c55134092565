import { chmodSync, readdirSync } from 'node:fs';
import path from 'node:path';

/*
 * An embedded data directory holds every key's hash and the whole compliance log: only keyplane's
 * own user may read or change it. PGlite writes its files mode 0666 whatever the umask (its
 * Emscripten file system sets the mode itself), so modes are set here, explicitly: 0700 for every
 * directory, 0600 for every file. A directory of 0700 also keeps out anything PGlite creates while
 * running (a new relation, a WAL segment) until the next tightening, at close.
 */
export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** chmods `root` and everything below it: directories DIR_MODE, files FILE_MODE; symlinks are left alone. */
export function tightenTree(root: string): void {
  chmodSync(root, DIR_MODE);
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) tightenTree(full);
    else if (entry.isFile()) chmodSync(full, FILE_MODE);
  }
}

/**
 * Makes DATA_DIR (creating it if needed) 0700, also one that exists with wider modes: it is
 * keyplane's, and a directory other users can write is how a key's hash gets edited. One keyplane
 * cannot chmod (another user owns it) is refused with a message that says so.
 */
export function ownDataDir(dataDir: string): void {
  try {
    chmodSync(dataDir, DIR_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      `cannot make the data directory ${dataDir} private (mode 0700): ${code ?? String(err)}. ` +
        'The embedded database keeps key hashes there; run keyplane as the directory\'s owner.',
      { cause: err },
    );
  }
}
