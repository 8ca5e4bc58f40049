import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The order test files start in (sequence.sequencer below; here, not imported, since vite's
 * native config loader cannot resolve an extensionless import): longest first, so
 * that CI's two workers finish together instead of one starting a five-minute file near the end
 * while the other idles. A fresh clone has no vitest results cache, so the default order (by
 * file size) would be arbitrary in time: the files known to be long carry their seconds from a
 * fresh-clone CI run (2 cores) here. Where vitest's cache knows a file's duration (a developer's
 * second run), that is used instead. Files in neither start after the known-long ones, in
 * vitest's own order.
 */

/** Seconds per file in a fresh-clone CI run (1 worker, 2 cores); files under ~9 s are left out. */
const KNOWN_SECONDS: Record<string, number> = {
  'tests/flash-xen.test.ts': 600, // measured 675 s on this machine under load (not yet on fresh-clone CI)
  'tests/kernel-build.test.ts': 363,
  'tests/xen-ota.test.ts': 180, // 3 tests, 4 Xen boots: ~240 s under load here
  'tests/flash-hardening.test.ts': 291,
  'tests/flash-uboot.test.ts': 191,
  'tests/device-boot-agent-failures.test.ts': 163,
  'tests/cli-hardening.test.ts': 142,
  'tests/tcb-boot.test.ts': 141,
  'tests/flash-faults.test.ts': 133,
  'tests/device-failures.test.ts': 96,
  'tests/debian.test.ts': 78,
  'tests/cli-keys.test.ts': 60,
  'tests/guest-network.test.ts': 56,
  'tests/ymodem-noisy.test.ts': 53,
  'tests/qemu-arm64.test.ts': 46,
  'tests/vectors.test.ts': 43,
  'tests/root-rotation.test.ts': 40,
  'tests/device-ota.test.ts': 40,
  'tests/native-ed25519.test.ts': 39,
  'tests/boot-ab.test.ts': 36,
  'tests/ymodem-lrzsz.test.ts': 32,
  'tests/serve-arm64.test.ts': 30,
  'tests/fleet-nginx.test.ts': 30,
  'tests/xen-arm32.test.ts': 29,
  'tests/flash-refuse.test.ts': 27,
  'tests/cli-build.test.ts': 25,
  'tests/cli-provision.test.ts': 25,
  'tests/disk.test.ts': 24,
  'tests/router-admin.test.ts': 22,
  'tests/keys-pkcs11.test.ts': 21,
  'tests/build.test.ts': 18,
  'tests/server-hardening-net.test.ts': 18,
  'tests/mirror.test.ts': 18,
  'tests/keys-pkcs11-rsa.test.ts': 18,
  'tests/cli-ota.test.ts': 17,
  'tests/server-replicas.test.ts': 16,
  'tests/keys-ceremony.test.ts': 15,
  'tests/image-hardening.test.ts': 15,
  'tests/typecheck.test.ts': 14,
  'tests/agent-restart.test.ts': 14, // 19 s here at load 12: keys, boot-stage bundle, one C-host boot
  'tests/ota-boot-target.test.ts': 13,
  'tests/server-fuzz.test.ts': 12,
  'tests/ota-agent.test.ts': 11,
  'tests/runtime.test.ts': 11,
  'tests/run-node.test.ts': 11,
  'tests/dns.test.ts': 10,
  'tests/server-audit.test.ts': 10,
  'tests/publish.test.ts': 9,
  'tests/error-lines.test.ts': 9,
  'tests/uboot-driver.test.ts': 9,
};

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files); // vitest's order: its cache's durations, else file size
    const root = this.ctx.config.root;
    const seconds = (f: TestSpecification): number => {
      const file = relative(root, f.moduleId).split('\\').join('/');
      const cached = this.ctx.cache.getFileTestResults(`${f.project.name}:${file}`)?.duration;
      return cached !== undefined && cached > 0 ? cached / 1000 : (KNOWN_SECONDS[file] ?? 0);
    };
    return base
      .map((f, i) => ({ f, i, s: seconds(f) }))
      .sort((a, b) => b.s - a.s || a.i - b.i)
      .map(({ f }) => f);
  }
}

/**
 * Files whose assertions count what a real peer did within its own time limits (fleet-nginx:
 * no report deferred by a 10 s stall timeout while 240 devices report through nginx): with
 * another file loading both cores beside them they fail (seen: deferred reports, then the
 * 120 s bound). They run last, one at a time, after the two-worker group.
 */
const ALONE = ['tests/fleet-nginx.test.ts'];

const common = {
  testTimeout: 120_000,
  hookTimeout: 300_000,
  pool: 'forks' as const,
};

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    ...common,
    // Once for the run (the projects below do not repeat it).
    globalSetup: ['tests/global-setup.ts'],
    projects: [
      {
        test: {
          ...common,
          name: 'tests',
          root: fileURLToPath(new URL('..', import.meta.url)),
          include: ['tests/**/*.test.ts'],
          exclude: ALONE,
          // Two files at a time on CI's 2 cores (vitest's default is cores - 1, i.e. one): most
          // files wait on a single-vCPU QEMU, a serial line or a child process, so one worker
          // leaves a core idle for most of the run. SIGNET_TEST_WORKERS overrides it.
          maxWorkers: Number(process.env.SIGNET_TEST_WORKERS) || 2,
          // Longest files first (above), so both workers end together.
          sequence: { sequencer: LongestFirst, groupOrder: 0 },
        },
      },
      {
        test: {
          ...common,
          name: 'alone',
          root: fileURLToPath(new URL('..', import.meta.url)),
          include: ALONE,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
