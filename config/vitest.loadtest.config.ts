import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** The load harness's own tests: run after the main suite, alone, so their load does not skew timing-sensitive tests. */
export default defineConfig({
  // Paths below are relative to the repository root (this file lives in config/).
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['loadtest/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
