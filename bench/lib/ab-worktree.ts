import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/*
 * The A side of an A/B run: a git ref checked out in a temporary worktree (detached), with its
 * dependencies: the current checkout's node_modules when the ref's package-lock.json is the same
 * file, else its own `npm ci`.
 */

export interface RefCheckout {
  ref: string;
  commit: string;
  dir: string;
  /** How its node_modules came to be: 'linked' (the current checkout's) or 'npm ci'. */
  modules: 'linked' | 'npm ci';
  /** Whether its migrations/ equal the current checkout's (the embedded template is keyed by them). */
  sameMigrations: boolean;
  remove(): void;
}

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

function filesOf(dir: string): string {
  if (!existsSync(dir)) return '';
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .sort()
    .map((f) => `${path.relative(dir, f)}\n${readFileSync(f, 'utf8')}`)
    .join('\n');
}

export function checkoutRef(root: string, ref: string, log: (s: string) => void): RefCheckout {
  const commit = git(root, 'rev-parse', '--verify', `${ref}^{commit}`);
  const parent = mkdtempSync(path.join(os.tmpdir(), 'keyplane-ab-'));
  const dir = path.join(parent, 'keyplane');
  let added = false;
  const remove = () => {
    // The link first, so that nothing below can reach the shared node_modules through it.
    const link = path.join(dir, 'node_modules');
    try {
      unlinkSync(link);
    } catch {
      /* not a link, or not there */
    }
    if (added) {
      try {
        git(root, 'worktree', 'remove', '--force', dir);
      } catch (err) {
        log(`git worktree remove ${dir}: ${(err as Error).message}`);
      }
    }
    rmSync(parent, { recursive: true, force: true });
    try {
      git(root, 'worktree', 'prune');
    } catch {
      /* nothing to prune */
    }
  };
  try {
    git(root, 'worktree', 'add', '--detach', dir, commit);
    added = true;
    const sameLock = readFileSync(path.join(root, 'package-lock.json'), 'utf8') === readFileSync(path.join(dir, 'package-lock.json'), 'utf8');
    if (sameLock) symlinkSync(realpathSync(path.join(root, 'node_modules')), path.join(dir, 'node_modules'), 'dir');
    else {
      log(`${ref}: its package-lock.json differs from this checkout's: npm ci in ${dir}…`);
      execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    }
    const sameMigrations = filesOf(path.join(root, 'migrations')) === filesOf(path.join(dir, 'migrations'));
    log(`A = ${ref} (${commit.slice(0, 7)}) in ${dir}, node_modules ${sameLock ? 'linked' : 'from npm ci'}`);
    return { ref, commit, dir, modules: sameLock ? 'linked' : 'npm ci', sameMigrations, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
