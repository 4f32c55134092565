import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DIR_MODE, FILE_MODE } from './permissions.js';

/*
 * The embedded first run's way in: without KEYPLANE_ADMIN_TOKEN, an embedded server keeps its
 * bootstrap operator token in DATA_DIR/admin-token (mode 0600, beside the data it guards), made on
 * the first start and read on every later one, so that the admin listener (loopback) and
 * `keyplane --url … --token "$(cat DATA_DIR/admin-token)"` work without configuring anything.
 */

export const ADMIN_TOKEN_FILE = 'admin-token';

export interface AdminTokenFile {
  token: string;
  path: string;
  /** Whether this start wrote it (the banner then says where it is). */
  created: boolean;
}

/** Reads DATA_DIR/admin-token, writing a new random token (256 bits, hex) first when there is none. */
export function readOrCreateAdminToken(dataDir: string): AdminTokenFile {
  const file = path.resolve(dataDir, ADMIN_TOKEN_FILE);
  if (existsSync(file)) {
    // Kept private even if it was copied in with wider modes: it opens the whole internal API.
    chmodSync(file, FILE_MODE);
    return { token: readFileSync(file, 'utf8').trim(), path: file, created: false };
  }
  mkdirSync(dataDir, { recursive: true, mode: DIR_MODE });
  const token = randomBytes(32).toString('hex');
  // 'wx': never overwrite a token another process wrote a moment ago.
  writeFileSync(file, `${token}\n`, { mode: FILE_MODE, flag: 'wx' });
  return { token, path: file, created: true };
}
