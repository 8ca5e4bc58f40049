/**
 * Boot time of a qemu-virt-arm64 disk made by `signet disk` (examples/hello), from QEMU's start
 * to the app's line on the console, in qemu-system-aarch64 (TCG on this machine: figures are for
 * comparing runs on one machine, not for a device).
 *
 * boot.arm64_ms              the real chain: U-Boot verifies the FIT, Linux, the boot stage
 *                            verifies the app image, the app prints (median of 5)
 * boot.arm64_direct_ms       QEMU loads kernel/initramfs/DTB itself, the rest as above
 * boot.verify_overhead_ratio direct boot with the verifying boot stage ÷ direct boot of the same
 *                            kernel, modules and /init running a bench-only script that reads the
 *                            app from slot A and runs it without any check (goal ≤ 1.05). The
 *                            stage verifies with the C host's SHA-256 and ed25519 (libsodium)
 * boot.stage_verify_ms       the difference of those two medians: what verification costs
 * boot.xen_arm32_ms          xen-arm32: Xen dom0less under QEMU, the guest as a DomU, QEMU start
 *                            to the app's line (sdk/disk/run-xen.ts), on the board's own kernel
 *                            (the minimal one built from source; median of 3)
 * boot.xen_arm32_debian_ms   the same on Debian's armmp binary kernel (median of 3, alternated)
 * boot.xen_minimal_vs_debian_ratio  the two medians' ratio (goal ≤ 0.5)
 * boot.arm64_debian_ms       boot.arm64_ms's chain with Debian's cloud-arm64 binary kernel
 *                            (the board with kernel.source "debian-binary" and a layout with room
 *                            for its 28 MiB Image; its virtio modules loaded from the initramfs)
 * boot.minimal_vs_debian_ratio  boot.arm64_ms ÷ boot.arm64_debian_ms, runs alternated (goal ≤ 0.5):
 *                            one untimed boot of each, then rounds that swap which goes first,
 *                            apart from the direct boots; both on the same QEMU command line
 *                            (startArm64: same machine, memory, disk, i6300esb watchdog)
 *
 * Where the time goes, per kernel (`arm64_*` the minimal one, `arm64_debian_*` Debian's; medians
 * of the same runs, from host-side timestamps of console lines, so they add up to the total only
 * approximately):
 * boot.arm64_uboot_ms        QEMU start to U-Boot's "Starting kernel": U-Boot, reading the FIT,
 *                            verifying it, unpacking the kernel (both gzip: the minimal one libdeflate -12, Debian's its own)
 * boot.arm64_kernel_ms       "Starting kernel" to /init's first line (host[…] or boot[…]): Linux,
 *                            unpacking the initramfs, for Debian's kernel loading its modules
 * boot.arm64_stage_ms        /init's first line to the app's line: the boot stage verifying
 *                            and starting the app
 * boot.arm64_cpu_ms, boot.arm64_*_cpu_ms  the same in CPU time of the QEMU process (user + system,
 *                            /proc, 10 ms ticks): what the guest cost the host, which other load on
 *                            the machine changes far less than the wall clock
 * boot.minimal_vs_debian_cpu_ratio  boot.arm64_cpu_ms ÷ boot.arm64_debian_cpu_ms
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { partition, loadBoard, type Board } from '../sdk/board';
import { fitRamdisk } from '../sdk/disk/boot-image';
import { unlzma } from '../sdk/disk/compress';
import { buildDisk } from '../sdk/disk/disk';
import { buildInitramfs } from '../sdk/disk/initramfs';
import { fetchKernel, kernelModules, KVM_BLOCK_MODULES } from '../sdk/disk/kernel';
import { GuestConsole, machineArgs } from '../sdk/disk/qemu';
import { startArm64 } from '../sdk/disk/run-arm64';
import { bootXenArm32ForBench } from '../sdk/disk/run-xen';
import { decodeFdt, findNode, getProp } from '../sdk/fit/fdt';
import { buildRelease } from '../sdk/image/release';
import { initKeys } from '../sdk/keys/keyset';
import { cacheDir, sdkRoot } from '../sdk/util/paths';
import { median, type Figures } from './_lib';

const APP_LINE = 'hello from signet';
const RUNS = 3;
/** Rounds of the two U-Boot chains (each swaps which goes first): the ratio's medians. */
const CHAIN_RUNS = 5;
const LIMIT_MS = 600_000; // liveness bound only

/**
 * The bench-only unverified stage: same device, same slot, same app, same host object shape;
 * it parses just enough of the image header and manifest to find app.js and runs it. Never ship.
 */
function unverifiedBootJs(device: string, slotOffset: number): string {
  return `(function () {
  var n = signet_native;
  var A = ${slotOffset};
  var h = n.blockOpen(${JSON.stringify(device)}, false);
  function u32(b, o) { return b[o] + b[o + 1] * 256 + b[o + 2] * 65536 + b[o + 3] * 16777216; }
  function text(b) { var s = ''; for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]); return decodeURIComponent(escape(s)); }
  var head = n.blockRead(h, A, 32);
  var manifestSize = u32(head, 12);
  var m = JSON.parse(text(n.blockRead(h, A + 32, manifestSize)));
  var off = A + 32 + manifestSize, app = null;
  for (var i = 0; i < m.payloads.length; i++) {
    if (m.payloads[i].name === 'app.js') { app = n.blockRead(h, off, m.payloads[i].size); break; }
    off += m.payloads[i].size;
  }
  n.print('boot[OK] slot=a version=' + m.version + ' (unverified)');
  (Function('return this')()).__signet_host = {
    board: m.board, version: m.version,
    log: function (l) { n.print(l); }, confirm: function () {},
    stage: function () { throw new Error('unverified bench stage'); }, exit: function () {}
  };
  n.evalScript(text(app), 'app.js');
  n.print('boot[HALT]');
  n.powerOff();
})();
`;
}

/** ms from QEMU's start to the app's line (waits for the guest to power off afterwards). */
async function timeToApp(guest: GuestConsole, cleanup?: () => void): Promise<number> {
  try {
    await guest.waitFor(APP_LINE, LIMIT_MS);
    const ms = Date.now() - guest.startedAt;
    await guest.waitFor('boot[HALT]', LIMIT_MS);
    await guest.waitExit(LIMIT_MS);
    return ms;
  } finally {
    await guest.close();
    cleanup?.();
  }
}

/** Console lines that end a phase of a boot through U-Boot, in the order they come. */
const PHASE_MARKS = [
  { phase: 'uboot', line: /Starting kernel \.\.\./ },
  { phase: 'kernel', line: /(^|\n)(host|boot)\[/ },
  { phase: 'stage', line: /hello from signet/ }, // APP_LINE
] as const;
type Phase = (typeof PHASE_MARKS)[number]['phase'];

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU ms (user + system) so far of the QEMU this process started; the bench runs one at a time. */
function qemuCpuMs(): number | undefined {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    } catch {
      continue; // gone
    }
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' '); // f[0] is field 3 (state): ppid f[1], utime f[11], stime f[12]
    if (Number(f[1]) !== process.pid || !stat.slice(stat.indexOf('(') + 1, close).startsWith('qemu-system')) continue;
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  }
  return undefined;
}

/**
 * Watches a guest's console (startArm64's onOutput) and notes when each phase's closing line
 * arrives, on the wall clock and in QEMU's CPU time: `durations(startedAt)` gives each phase's ms,
 * from QEMU's start or the previous mark.
 */
class PhaseClock {
  #text = '';
  #next = 0;
  readonly #at: { wall: number; cpu?: number }[] = [];
  readonly onOutput = (chunk: string): void => {
    const wall = Date.now();
    this.#text += chunk;
    for (let m; this.#next < PHASE_MARKS.length && (m = PHASE_MARKS[this.#next]!.line.exec(this.#text)); ) {
      this.#at.push({ wall, cpu: qemuCpuMs() });
      this.#next++;
      this.#text = this.#text.slice(m.index + m[0].length); // the next mark comes after this one
    }
    if (this.#text.length > 4096) this.#text = this.#text.slice(-256);
  };
  durations(startedAt: number): { wall: Partial<Record<Phase, number>>; cpu: Partial<Record<Phase, number>> } {
    const wall: Partial<Record<Phase, number>> = {};
    const cpu: Partial<Record<Phase, number>> = {};
    let from: { wall: number; cpu?: number } = { wall: startedAt, cpu: 0 };
    this.#at.forEach((t, i) => {
      const phase = PHASE_MARKS[i]!.phase;
      wall[phase] = t.wall - from.wall;
      if (t.cpu !== undefined && from.cpu !== undefined) cpu[phase] = t.cpu - from.cpu;
      from = t;
    });
    return { wall, cpu };
  }
}

/** Per phase, each run's wall and CPU ms; cpuTotal: each run's CPU ms to the app's line. */
type PhaseTimes = Record<'wall' | 'cpu', Record<Phase, number[]>> & { cpuTotal: number[] };
const phaseTimes = (): PhaseTimes => ({ wall: { uboot: [], kernel: [], stage: [] }, cpu: { uboot: [], kernel: [], stage: [] }, cpuTotal: [] });

/** A boot through U-Boot, timed to the app's line and per phase. */
async function timeUbootBoot(o: Parameters<typeof startArm64>[0], phases: PhaseTimes): Promise<number> {
  const clock = new PhaseClock();
  const u = await startArm64({ ...o, onOutput: clock.onOutput });
  const ms = await timeToApp(u.guest, u.cleanup);
  const d = clock.durations(u.guest.startedAt);
  for (const kind of ['wall', 'cpu'] as const) {
    for (const m of PHASE_MARKS) if (d[kind][m.phase] !== undefined) phases[kind][m.phase].push(d[kind][m.phase]!);
  }
  if (PHASE_MARKS.every((m) => d.cpu[m.phase] !== undefined)) phases.cpuTotal.push(PHASE_MARKS.reduce((sum, m) => sum + d.cpu[m.phase]!, 0));
  return ms;
}

/** Per phase medians, and the CPU time to the app's line (median over runs). */
function phaseFigures(prefix: string, p: PhaseTimes): Figures {
  const out: Figures = {};
  for (const kind of ['wall', 'cpu'] as const) {
    for (const m of PHASE_MARKS) {
      const xs = p[kind][m.phase];
      if (xs.length) out[`${prefix}_${m.phase}${kind === 'cpu' ? '_cpu' : ''}_ms`] = { value: Math.round(median(xs)), unit: 'ms' };
    }
  }
  if (p.cpuTotal.length) out[`${prefix}_cpu_ms`] = { value: Math.round(median(p.cpuTotal)), unit: 'ms' };
  return out;
}

export async function run(): Promise<Figures> {
  const board = loadBoard('qemu-virt-arm64');
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'bench-boot-'));
  try {
    const keys = join(work, 'keys');
    await initKeys({ dir: keys });
    const app = join(work, 'app.simg');
    await buildRelease({ projectDir: join(sdkRoot(), 'examples', 'hello'), version: '1.2.0', securityCounter: 3, keysDir: keys, out: app, typecheck: false });
    const disk = join(work, 'disk.img');
    const d = await buildDisk({ board, appImage: app, keysDir: keys, out: disk });
    // The same board on Debian's binary kernel: what a minimal kernel is measured against.
    const debianBoard: Board = {
      ...board,
      kernel: { ...board.kernel, source: 'debian-binary' },
      loadAddresses: { kernel: '0x40400000', ramdisk: '0x48100000', fdt: '0x48000000', fit: '0x50000000' },
    };
    const debianDisk = join(work, 'debian.img');
    const dd = await buildDisk({ board: debianBoard, appImage: app, keysDir: keys, out: debianDisk });

    // The unverified twin: same kernel and device tree (from the FIT), same modules and /init.
    const fit = decodeFdt(d.boot.fit).root;
    const image = (n: string) => getProp(findNode(fit, `/images/${n}`)!, 'data')!;
    const kernel = await fetchKernel(board);
    // Packed as the FIT packs its own (gzip'd when the kernel unpacks gzip), so both boots
    // unpack the same way.
    const unverified = await fitRamdisk(kernel, await buildInitramfs({
      arch: board.arch,
      bootJs: unverifiedBootJs(board.flash.device, partition(board, 'slot_a').offset),
      modules: kernelModules(kernel, KVM_BLOCK_MODULES),
    }));
    // The FIT's kernel for QEMU's -kernel, which takes a raw or gzip'd Image: an lzma one unpacked.
    const kernelNode = findNode(fit, '/images/kernel')!;
    const lzma = new TextDecoder().decode(getProp(kernelNode, 'compression') ?? new Uint8Array()).startsWith('lzma');
    writeFileSync(join(work, 'Image'), lzma ? await unlzma(image('kernel')) : image('kernel'));
    writeFileSync(join(work, 'board.dtb'), image('fdt'));
    writeFileSync(join(work, 'verified.cpio'), image('ramdisk'));
    writeFileSync(join(work, 'unverified.cpio'), unverified);
    const cmdline = `${board.kernel.cmdline} -- --halt`;
    const direct = (initrd: string) =>
      GuestConsole.start({
        system: board.qemu!.system,
        args: [
          ...machineArgs(board),
          '-kernel', join(work, 'Image'), '-initrd', join(work, initrd), '-dtb', join(work, 'board.dtb'), '-append', cmdline,
          '-drive', `if=none,id=flash,format=raw,file=${disk}`, '-device', 'virtio-blk-device,drive=flash', '-no-reboot',
        ],
      });

    // Alternate, one guest at a time, so both kinds see the same machine load.
    const verifiedMs: number[] = [];
    const unverifiedMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      verifiedMs.push(await timeToApp(await direct('verified.cpio')));
      unverifiedMs.push(await timeToApp(await direct('unverified.cpio')));
    }
    // The two U-Boot chains in a loop of their own, not after the direct boots: the first QEMU
    // after a direct one pays 200-350 ms more host system time (QEMU's sys CPU at U-Boot's
    // "Starting kernel", whichever kernel), which the minimal chain alone used to get every
    // round. An untimed boot of each first (cold files, each fresh disk's first boot-state
    // write), then each round swaps which chain goes first.
    const minimal = { board, disk, halt: true, keyDtb: d.boot.keyDtb };
    const debian = { board: debianBoard, disk: debianDisk, halt: true, keyDtb: dd.boot.keyDtb };
    await timeUbootBoot(minimal, phaseTimes());
    await timeUbootBoot(debian, phaseTimes());
    const ubootMs: number[] = [];
    const debianMs: number[] = [];
    const minimalPhases = phaseTimes();
    const debianPhases = phaseTimes();
    for (let i = 0; i < CHAIN_RUNS; i++) {
      const pair = [() => timeUbootBoot(minimal, minimalPhases).then((ms) => ubootMs.push(ms)), () => timeUbootBoot(debian, debianPhases).then((ms) => debianMs.push(ms))];
      for (const boot of i % 2 ? pair.reverse() : pair) await boot();
    }
    const v = median(verifiedMs);
    const n = median(unverifiedMs);
    const figures: Figures = {
      arm64_ms: { value: Math.round(median(ubootMs)), unit: 'ms' },
      arm64_direct_ms: { value: Math.round(v), unit: 'ms' },
      arm64_unverified_ms: { value: Math.round(n), unit: 'ms' },
      verify_overhead_ratio: { value: v / n, unit: 'ratio' },
      stage_verify_ms: { value: Math.round(v - n), unit: 'ms' },
      arm64_debian_ms: { value: Math.round(median(debianMs)), unit: 'ms' },
      minimal_vs_debian_ratio: { value: median(ubootMs) / median(debianMs), unit: 'ratio' },
      ...phaseFigures('arm64', minimalPhases),
      ...phaseFigures('arm64_debian', debianPhases),
    };
    if (minimalPhases.cpuTotal.length && debianPhases.cpuTotal.length) {
      figures.minimal_vs_debian_cpu_ratio = { value: median(minimalPhases.cpuTotal) / median(debianPhases.cpuTotal), unit: 'ratio' };
    }
    try {
      // The board's own kernel against Debian's armmp binary, alternated so both see the same load.
      const minimal: number[] = [];
      const debian: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        minimal.push(await bootXenArm32ForBench());
        debian.push(await bootXenArm32ForBench({ kernelSource: 'debian-binary' }));
      }
      figures.xen_arm32_ms = { value: Math.round(median(minimal)), unit: 'ms' };
      figures.xen_arm32_debian_ms = { value: Math.round(median(debian)), unit: 'ms' };
      figures.xen_minimal_vs_debian_ratio = { value: median(minimal) / median(debian), unit: 'ratio' };
    } catch (e) {
      // Keep the arm64 figures; say why the Xen one is missing.
      const line = typeof (e as { line?: unknown }).line === 'function' ? (e as { line(): string }).line() : String((e as Error).message ?? e);
      process.stderr.write(`note: boot.xen_arm32_ms not measured: ${line}\n`);
    }
    return figures;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
