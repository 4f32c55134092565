import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/*
 * Three projects: `unit` and `integration` are the fast loop (`npm test`); `system` holds what
 * starts real processes (the CLI, servers, throwaway clusters, redis-server), builds PGlite
 * templates, needs Redis or runs load (`npm run test:system`).
 *
 * The global setup (database pick, secret-leak check at teardown) is declared once, on the root
 * config, and the projects do not inherit it: vitest runs the root's global setup once per run
 * whichever projects are selected and hands its provided values (database URL, run directory) to
 * every project, so one database serves the run and one leak check covers every project's output.
 */
const shared = {
  // Forks, not threads: PGlite (WASM) and pg pools are happiest one process per worker.
  pool: 'forks',
  // Generous: PGlite's first start per file and child processes are slow on a busy 2-core machine.
  testTimeout: 60_000,
  hookTimeout: 120_000,
} as const;

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    // Two test files at a time even on two cores (vitest's default there is one): much of a file's
    // time is spent waiting on the database server, and one file's waits overlap the other's work.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    reporters: ['default'],
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { ...shared, name: 'integration', include: ['test/integration/**/*.test.ts', 'test/fuzz/**/*.test.ts'] } },
      {
        test: {
          ...shared,
          name: 'system',
          include: ['test/system/**/*.test.ts', 'test/fleet/**/*.test.ts'],
          // One file at a time: these measure latency under load, kill servers and start clusters,
          // and must not compete with each other for the machine.
          maxWorkers: 1,
        },
      },
    ],
  },
});
