import { defineConfig } from 'vitest/config'

// Cross-process tests start real tandem-server processes from the compiled
// packages (`pnpm build` runs first), so they spend most of their time
// waiting on other processes; two files at a time suits a 2-core machine.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'packages/*/src/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
  },
})
