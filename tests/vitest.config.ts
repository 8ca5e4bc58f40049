import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { LongestFirst } from './helpers/longest-first';

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // Two files at a time on CI's 2 cores (vitest's default is cores - 1, i.e. one): most files
    // wait on a single-vCPU QEMU, a serial line or a child process, so one worker leaves a core
    // idle for most of the run. SIGNET_TEST_WORKERS overrides it (1 on a busy shared machine).
    maxWorkers: Number(process.env.SIGNET_TEST_WORKERS) || 2,
    // Longest files first (tests/helpers/longest-first.ts), so both workers end together.
    sequence: { sequencer: LongestFirst },
    globalSetup: ['tests/global-setup.ts'],
  },
});
