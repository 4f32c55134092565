import { defineConfig } from 'vitest/config';

/*
 * Three projects: `unit` and `integration` are the fast loop (`npm test`); `system` holds what
 * starts real processes, throwaway clusters, Redis and load (`npm run test:system`).
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
    reporters: ['default'],
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { ...shared, name: 'integration', include: ['test/integration/**/*.test.ts', 'test/fuzz/**/*.test.ts'] } },
      { test: { ...shared, name: 'system', include: ['test/system/**/*.test.ts', 'test/fleet/**/*.test.ts'] } },
    ],
  },
});
