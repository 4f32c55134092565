import { execSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/* The command line of `npm run bench` (bench/run.ts), parsed once. */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Options {
  argv: string[];
  smoke: boolean;
  /** Seconds measured per run, after `warmup` seconds not recorded. */
  seconds: number;
  warmup: number;
  only?: string[];
  /** The git ref of the A side (A/B mode), or undefined (the normal mode against the baseline app). */
  against?: string;
  /** A/B: runs of each side per scenario (A B A B …). */
  pairs: number;
  /** Seed and run the scale scenarios (normal mode: unless --no-scale; A/B: only with --scale). */
  scale: boolean;
  embedded: boolean;
  out?: string;
}

export function parseOptions(argv: string[]): Options {
  const flag = (name: string) => argv.includes(`--${name}`);
  const option = (name: string) => {
    const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return undefined;
    return argv[i]!.includes('=') ? argv[i]!.slice(argv[i]!.indexOf('=') + 1) : argv[i + 1];
  };
  const smoke = flag('smoke');
  const against = option('against');
  const only = option('only')?.split(',');
  return {
    argv,
    smoke,
    // 10 s measured after a 3 s warm-up (the minimum); the smoke run only proves the bench runs.
    seconds: Number(option('seconds') ?? (smoke ? 1 : 10)),
    warmup: Number(option('warmup') ?? (smoke ? 0 : 3)),
    only,
    against,
    pairs: Number(option('pairs') ?? (smoke ? 1 : 3)),
    // Seeding the scale world takes minutes: not for an --only run that names no scale scenario.
    scale: (against ? flag('scale') : !flag('no-scale')) && (!only || only.some((id) => id.startsWith('scale.'))),
    embedded: !flag('no-embedded'),
    out: option('out'),
  };
}

/** The short commit of a checkout, +dirty when it has uncommitted changes to tracked files. */
export function gitCommit(root: string): string {
  try {
    const dirty = execSync('git status --porcelain --untracked-files=no', { cwd: root }).toString().trim() ? '+dirty' : '';
    return execSync('git rev-parse --short HEAD', { cwd: root }).toString().trim() + dirty;
  } catch {
    return 'unknown';
  }
}

export const log = (s: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
