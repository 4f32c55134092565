/*
 * npm run bench [-- --smoke] [-- --seconds=N] [-- --warmup=N] [-- --no-scale] [-- --no-embedded] [-- --only=small.get,…]
 *               [-- --profile]   (keyplane runs with --cpu-prof; profiles land in bench/profiles/)
 *               [-- --out=DIR]
 *   keyplane against the baseline app (bench/lib/normal.ts), on its own, uniquely named database of
 *   the local Postgres (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres;
 *   created and dropped here). Writes bench/results.{json,md,svg,png}.
 *
 * npm run bench -- --against <git ref> [--pairs=N] [--seconds=N] [--only=…] [--scale] [--no-embedded] [--smoke]
 *   A/B mode (bench/lib/ab.ts): the ref's build (A, in a temporary git worktree) against the working
 *   tree's (B), both in server mode on their own databases of the same Postgres, interleaved per
 *   scenario A B A B …; then the embedded cold start of each. Writes the A/B section of
 *   bench/results.{json,md}.
 */
import { runAb } from './lib/ab.js';
import { runNormal } from './lib/normal.js';
import { parseOptions } from './lib/options.js';

const options = parseOptions(process.argv.slice(2));
try {
  await (options.against ? runAb(options) : runNormal(options));
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
}
