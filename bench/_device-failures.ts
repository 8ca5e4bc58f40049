/**
 * The failure figures of `npm run bench -- device` (issue 13), on a real qemu-virt-arm64 guest
 * booted with `signet run` (Debian's U-Boot running the A/B bootcmd of a `signet disk --boot-ab`
 * disk; -no-reboot, so every reset ends a run and the bench powers the board on again):
 *
 * device.bad_kernel_fell_back   1 when a properly signed boot image whose kernel panics (signed
 *                               command line with an rdinit that does not exist, panic=-1), put in
 *                               boot_b and armed as the agent arms it (one bootenv sector, the
 *                               product's writer), is tried bootlimit times by U-Boot, which then
 *                               boots boot_a, whose verified app runs and confirms it, leaving the
 *                               bootenv on slot a; else 0.
 *
 * device.powercut_points       power cuts (QEMU killed with SIGKILL) during the boot-slot write of
 *                               the device's own agent taking boot image 2.0.0 from a real
 *                               `signet server`: at its start, at chunks spread over the slot and
 *                               just after the arming write (tests/helpers/device-powercut.ts)
 * device.powercut_unbootable    restarts after those cuts that did not boot a boot slot U-Boot
 *                               verified and a verified app slot (goal 0)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PartitionDevice } from '../bootloader/src/block';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { readBootEnv, writeBootEnv } from '../bootloader/src/bootenv';
import { loadBoard, type Board } from '../sdk/board';
import { abLayout, type AbLayout } from '../sdk/disk/boot-ab';
import { buildBootImage } from '../sdk/disk/boot-image';
import { cacheDir, sdkRoot } from '../sdk/util/paths';
import { bootWriteCutSweep, restartVerified } from '../tests/helpers/device-powercut';
import { startDeviceWorld } from '../tests/helpers/device-world';
import { powerOn } from '../tests/helpers/device-run';
import { signetCli, type Figures } from './_lib';

const LIMIT_MS = 600_000; // liveness bound of one power-on only

function withEnv<T>(disk: string, board: Board, ab: AbLayout, f: (env: PartitionDevice) => T): T {
  const dev = new FileBlockDevice(disk, board.flash.blockSize);
  try {
    return f(new PartitionDevice(dev, ab.bootenv.offset, ab.bootenv.size));
  } finally {
    dev.close();
  }
}

/** device.bad_kernel_fell_back: see the header. */
export async function badKernelFellBack(): Promise<Figures> {
  const board = loadBoard('qemu-virt-arm64');
  const ab = abLayout(board)!;
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'bench-device-failures-'));
  const at = (p: string) => join(work, p);
  try {
    signetCli(['keys', 'init', '--dir', at('keys')], LIMIT_MS);
    signetCli(['build', '--project', join(sdkRoot(), 'examples', 'hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', at('keys'), '--out', at('app.simg'), '--no-typecheck'], LIMIT_MS);
    const bad = await buildBootImage({
      board: { ...board, kernel: { ...board.kernel, cmdline: 'console=ttyAMA0 panic=-1 rdinit=/signet-none' } },
      keysDir: at('keys'), testMode: true, release: { version: '2.0.0', securityCounter: 2 },
    });
    writeFileSync(at('bad.itb'), bad.fit);
    signetCli(['disk', at('app.simg'), '--board', board.id, '--keys', at('keys'), '--boot-ab', '--boot-b', at('bad.itb'), '--app-test-mode',
      '--boot-version', '1.0.0', '--boot-security-counter', '1', '--out', at('disk.img'), '--key-dtb', at('pub.dtb')], LIMIT_MS);
    const limit = withEnv(at('disk.img'), board, ab, (env) => {
      const r = readBootEnv(env);
      writeBootEnv(env, r, { boot_slot: 'b', bootcount: '0', bootlimit: r.vars!.bootlimit, boot_good: 'a' });
      return parseInt(r.vars!.bootlimit, 16);
    });
    const picks: string[] = [];
    let last = '';
    for (let i = 0; i <= limit + 1 && !last.includes('boot[HALT]'); i++) {
      last = (await powerOn([at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb')], { limitMs: LIMIT_MS })).console;
      for (const m of last.matchAll(/signet-ab: boot_slot=([ab]) bootcount=(\w+)/g)) picks.push(m[1] + m[2]);
    }
    const want = [...Array.from({ length: limit }, (_, i) => 'b' + (i + 1).toString(16)), 'a1'];
    const env = withEnv(at('disk.img'), board, ab, (e) => readBootEnv(e).vars);
    const fell = picks.join(',') === want.join(',') && last.includes('boot[BOOT-CONFIRM] slot=a') && last.includes('boot[HALT]') &&
      env?.boot_slot === 'a' && env.bootcount === '0' && env.boot_good === 'a';
    return { bad_kernel_fell_back: { value: fell ? 1 : 0, unit: '' } };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Cut points of the sweep, as in tests/device-boot-agent-failures. */
const POWERCUT_POINTS = 10;

/** device.powercut_points and device.powercut_unbootable: see the header. */
export async function powercut(): Promise<Figures> {
  const board = loadBoard('qemu-virt-arm64');
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'bench-device-powercut-'));
  let world: Awaited<ReturnType<typeof startDeviceWorld>> | undefined;
  try {
    signetCli(['boards'], LIMIT_MS); // from the sources: rebuilds the CLI bundle the helpers run, if it is older
    world = await startDeviceWorld(work, board, 'bench-cut-01');
    const w = world;
    w.signet(['fit', '--board', board.id, '--keys', w.at('keys'), '--out', w.at('boot-2.0.0.itb'), '--version', '2.0.0', '--security-counter', '2']);
    w.signet(['publish', w.at('boot-2.0.0.itb'), '--server', w.url, '--keys', w.at('keys'), '--admin', w.at('admin')]);
    w.signet(['rollout', 'create', '--board', board.id, '--boot-version', '2.0.0', '--percent', '100', '--halt-failure-rate', '0.5', '--server', w.url, '--admin', w.at('admin')]);
    const { runs } = await bootWriteCutSweep({ runArgs: w.runArgs, points: POWERCUT_POINTS, limitMs: LIMIT_MS, done: (c) => /boot\[BOOT-CONFIRM\]/.test(c) });
    const cuts = runs.filter((r) => r.ended === 'cut');
    let unbootable = 0;
    for (let k = 0; k < cuts.length; k++) if (!runs[k + 1] || !restartVerified(runs[k + 1].console, cuts[k].point === 'armed')) unbootable++;
    return { powercut_points: { value: cuts.length, unit: 'count' }, powercut_unbootable: { value: unbootable, unit: 'count' } };
  } finally {
    world?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
