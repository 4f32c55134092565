import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Forks, not threads: PGlite (WASM) and pg pools are happiest one process per worker.
    pool: 'forks',
    // Generous: PGlite's first start per file and child processes are slow on a busy 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
