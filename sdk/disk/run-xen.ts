/**
 * `signet run` for Xen boards: Xen 4.17 dom0less under QEMU with the Signet guest as DomU 1.
 *
 * The console is QEMU's PL011, which Xen owns; Xen prints the DomU's vpl011 output prefixed
 * `(XEN) DOM1: `. It is read through a unix socket QEMU waits on before starting the CPU
 * (qemu.ts GuestConsole), so nothing is lost. A dom0less DomU that powers off or reboots
 * leaves Xen idling (no dom0 is there to shut the machine down or restart the guest), so the
 * runner watches for the guest kernel's last words and then quits QEMU over QMP: QEMU exits
 * 0, as it does when a KVM guest powers off.
 *
 * The guest's flash is the disk image file itself, as QEMU's second NOR bank passed through by
 * Xen (xen-flash.ts): what the guest writes is in the file when QEMU exits.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBoard, type Board } from '../board';
import { scaffoldProject } from '../build/scaffold';
import { buildRelease } from '../image/release';
import { initKeys } from '../keys/keyset';
import { asSignetError } from './errors';
import { checkQemuInstalled, GuestConsole } from './qemu';
import type { KernelSourceKind } from './kernel';
import type { GuestNetwork } from './network';
import type { GuestRunOptions, StartedGuest } from './run-types';
import { checkXenNetwork } from './xen-net';
import { checkXenBoard, fetchXen, guestForApp, guestFromDisk, prepareXenBoot, type XenBootPlan, type XenGuestImages } from './xen';
import { XenError } from './xen-errors';
import { domUFlashHeadBytes, writeFreshFlash } from './xen-flash';
import { checkQemuPlacement, dumpQemuDtb, xenQemuArgs } from './xen-qemu';

/** `(XEN) DOM1: text` → { domain: 1, text }; Xen's own lines → undefined. */
export function domULine(raw: string): { domain: number; text: string } | undefined {
  const m = /^\(XEN\) DOM(\d+): ?(.*)$/.exec(raw);
  return m ? { domain: Number(m[1]), text: m[2]! } : undefined;
}

/** The guest kernel's last words, or Xen's, after which nothing more will run. */
const GUEST_DONE = /^(\[\s*[\d.]+\] )?(reboot: (Power down|Restarting system|System halted)|---\[ end Kernel panic)/;
const XEN_DONE = /^\(XEN\) (Reboot in five seconds|Manual reset required)/;
/** A slot verified and its app is starting: a good slot, or a trial of a staged update. */
const SLOT_BOOTED = /^boot\[(OK|TRIAL)\] /;
const APP_FAILED = /^(boot\[APP-ERROR\]|boot\[RECOVERY\]|host\[ERROR\])/;

export function isGuestDone(raw: string): boolean {
  const dom = domULine(raw);
  return (dom !== undefined && GUEST_DONE.test(dom.text)) || XEN_DONE.test(raw);
}

/** Asks QEMU to quit (QMP `quit`: exit status 0). */
function quitQemu(qmpSocket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(qmpSocket);
    s.once('connect', () => {
      // Commands run in order; capabilities negotiation must come first.
      s.write('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
    });
    s.on('data', () => undefined);
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(true));
  });
}

/**
 * Boots a prepared plan: writes the files, starts QEMU with the console on a socket, and quits
 * QEMU once the guest is done. `onLine` sees each raw console line.
 */
async function launch(board: Board, plan: XenBootPlan, o: { onOutput?: (chunk: string) => void; onLine?: (raw: string) => void; extraArgs?: string[] }): Promise<StartedGuest> {
  checkXenBoard(board);
  const system = checkQemuInstalled(board);
  const work = mkdtempSync(join(tmpdir(), 'signet-xen-'));
  const cleanup = (): void => rmSync(work, { recursive: true, force: true });
  try {
    const files = {
      xen: join(work, 'xen'),
      dtb: join(work, 'xen.dtb'),
      kernel: join(work, 'zImage'),
      ramdisk: join(work, 'ramdisk.cpio'),
      partialDtb: join(work, 'domU-partial.dtb'),
      qmpSocket: join(work, 'qmp.sock'),
    };
    writeFileSync(files.xen, plan.xen.image);
    writeFileSync(files.dtb, plan.dtb.image);
    writeFileSync(files.kernel, plan.kernel.image);
    writeFileSync(files.ramdisk, plan.ramdisk.image);
    if (plan.passthrough) writeFileSync(files.partialDtb, plan.passthrough.partialDtb.image);
    let pending = '';
    let quitting = false;
    let guest: GuestConsole | undefined;
    const onOutput = (chunk: string): void => {
      o.onOutput?.(chunk);
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const raw = pending.slice(0, nl).replace(/\r/g, '');
        pending = pending.slice(nl + 1);
        o.onLine?.(raw);
        if (!quitting && isGuestDone(raw)) {
          quitting = true;
          void quitQemu(files.qmpSocket).then((ok) => {
            if (!ok) void guest?.close();
          });
        }
      }
    };
    guest = await GuestConsole.start({ system, args: [...xenQemuArgs(board, plan, files), ...(o.extraArgs ?? [])], onOutput });
    return { guest, mode: 'direct', cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

async function plan(board: Board, guest: XenGuestImages, flashFile: string, halt: boolean, network?: GuestNetwork): Promise<XenBootPlan> {
  checkXenBoard(board);
  if (network) checkXenNetwork(board);
  const [platformDtb, xen] = await Promise.all([dumpQemuDtb(board), fetchXen(board)]);
  const p = prepareXenBoot({ board, guest, flashFile, halt, platformDtb, network }, xen);
  checkQemuPlacement(p, platformDtb, board);
  return p;
}

/**
 * The `signet run` starter for `hypervisor: "xen"` boards (sdk/disk/run.ts): the disk's boot
 * image (FIT) runs as the DomU, the disk itself is its flash (written in place, as on arm64).
 */
export async function startXen(o: GuestRunOptions): Promise<StartedGuest> {
  try {
    checkXenBoard(o.board);
    const guest = guestFromDisk(o.board, o.disk, o.keyDtb);
    const p = await plan(o.board, guest, o.disk, o.halt ?? false, o.network);
    return await launch(o.board, p, { onOutput: o.onOutput, extraArgs: o.extraArgs });
  } catch (e) {
    throw asSignetError(e);
  }
}

export interface RunXenOptions {
  board: Board;
  /**
   * Exactly one of: an app image (flashed into a fresh slot A, with keysDir), or a disk image
   * from `signet disk`: its path (the guest's flash, written in place, so a later run sees what
   * this one wrote), or its bytes (a temporary copy).
   */
  appImage?: Uint8Array;
  disk?: string | Uint8Array;
  /** Holds root.json, the trust anchor compiled into the boot stage (with appImage; a disk carries its own). */
  keysDir?: string;
  /** U-Boot's public-key tree: the disk's FIT must verify with it first (with disk). */
  keyDtb?: Uint8Array;
  /** Power the guest off when its app ends (tests, benches) instead of rebooting it. */
  halt: boolean;
  /** Each console line as it arrives: DomU lines without Xen's prefix, Xen's own lines as they are. */
  onLine?: (line: string) => void;
  /** Copy the raw console (Xen's prefixes included) to this process's stdout. */
  consoleToTerminal?: boolean;
  /** Stop the guest after this long (DiskError E_RUN_TIMEOUT); default 10 minutes. */
  timeoutMs?: number;
  /**
   * A NIC on QEMU's user-mode network, passed through to the DomU, with host ports forwarded on
   * 127.0.0.1 (the guest gets 10.0.2.15 by DHCP, the host is 10.0.2.2). Needs Xen and the DomU
   * kernel built from source (E_XEN_NET otherwise).
   */
  network?: GuestNetwork;
  /** Called once QEMU has started (e.g. to start polling a forwarded port). */
  onStarted?: () => void;
}

export interface RunXenResult {
  /** Console lines, DomU lines without Xen's `(XEN) DOM1: ` prefix. */
  lines: string[];
  /** The console exactly as Xen printed it. */
  rawLines: string[];
  /** 0: a slot booted (`boot[OK]`, or `boot[TRIAL]` for a staged update) and its app ended without error; 1 otherwise. */
  exitCode: number;
  /** QEMU start to QEMU exit. */
  ms: number;
  /** QEMU start to the first guest line after `boot[OK]`/`boot[TRIAL]` (the app's first line). */
  appLineMs?: number;
  /** `flashBytes`: the flash the DomU sees (the bank passed through, or the RAM copy's head); `partialDtb` when passed through. */
  plan: { kernelBytes: number; ramdiskBytes: number; flashBytes: number; bootargs: string; partialDtb?: Uint8Array };
}

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;

function readRootJson(keysDir: string | undefined): string {
  try {
    if (keysDir === undefined) throw new Error('no keysDir');
    return readFileSync(join(keysDir, 'root.json'), 'utf8');
  } catch (cause) {
    throw new XenError('E_XEN_INPUT', `no root.json in ${keysDir ?? '(no keys folder given)'}`, "pass the folder made by 'signet keys init'", cause);
  }
}

/** Boots once and collects the console; for tests, benches and scripts. */
export async function runXen(opts: RunXenOptions): Promise<RunXenResult> {
  const { board } = opts;
  checkXenBoard(board);
  if ((opts.appImage === undefined) === (opts.disk === undefined)) {
    throw new XenError('E_XEN_INPUT', 'give either an app image or a disk image to boot', 'pass exactly one of them');
  }
  // A flash file made here (from an app image or disk bytes) lives in `scratch`, gone after the run.
  const scratch = mkdtempSync(join(tmpdir(), 'signet-xen-flash-'));
  try {
    let guest: XenGuestImages;
    let flashFile: string;
    if (opts.appImage) {
      guest = await guestForApp(board, readRootJson(opts.keysDir));
      flashFile = join(scratch, 'flash.img');
      writeFreshFlash(board, opts.appImage, flashFile);
    } else if (typeof opts.disk === 'string') {
      guest = guestFromDisk(board, opts.disk, opts.keyDtb);
      flashFile = opts.disk;
    } else {
      flashFile = join(scratch, 'disk.img');
      writeFileSync(flashFile, opts.disk!);
      guest = guestFromDisk(board, flashFile, opts.keyDtb);
    }
    return await bootPlan(opts, await plan(board, guest, flashFile, opts.halt, opts.network));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function bootPlan(opts: RunXenOptions, p: XenBootPlan): Promise<RunXenResult> {
  const { board } = opts;

  const lines: string[] = [];
  const rawLines: string[] = [];
  let sawOk = false;
  let failed = false;
  let appLineMs: number | undefined;
  const t0 = performance.now();
  const started = await launch(board, p, {
    onLine: (raw) => {
      rawLines.push(raw);
      if (opts.consoleToTerminal) process.stdout.write(raw + '\n');
      const dom = domULine(raw);
      const line = dom ? dom.text : raw;
      lines.push(line);
      if (dom && sawOk && appLineMs === undefined) appLineMs = performance.now() - t0;
      if (dom && SLOT_BOOTED.test(line)) sawOk = true;
      if (dom && APP_FAILED.test(line)) failed = true;
      opts.onLine?.(line);
    },
  });
  opts.onStarted?.();
  try {
    await started.guest.waitExit(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  } finally {
    await started.guest.close();
    started.cleanup();
  }
  return {
    lines,
    rawLines,
    exitCode: sawOk && !failed ? 0 : 1,
    ms: performance.now() - t0,
    appLineMs,
    plan: {
      kernelBytes: p.kernel.image.length,
      ramdiskBytes: p.ramdisk.image.length,
      flashBytes: p.passthrough ? p.passthrough.flash.size : domUFlashHeadBytes(board),
      bootargs: p.kernel.bootargs,
      partialDtb: p.passthrough?.partialDtb.image,
    },
  };
}

/**
 * For `npm run bench -- boot` (`boot.xen_arm32_ms`): a fresh key set and the scaffolded hello
 * service built for xen-arm32, booted once; milliseconds from QEMU start to the app's line.
 * `kernelSource` boots the DomU on that kernel instead of the board's own choice (the minimal
 * kernel built from source against Debian's armmp binary, in one bench run).
 */
export async function bootXenArm32ForBench(o: { kernelSource?: KernelSourceKind } = {}): Promise<number> {
  const own = loadBoard('xen-arm32');
  const board: Board = o.kernelSource ? { ...own, kernel: { ...own.kernel, source: o.kernelSource } } : own;
  const dir = await mkdtemp(join(tmpdir(), 'signet-xen-bench-'));
  try {
    const keysDir = join(dir, 'keys');
    await initKeys({ dir: keysDir });
    const projectDir = join(dir, 'svc');
    await scaffoldProject(projectDir, { name: 'bench-svc', board: board.id });
    const out = join(dir, 'app.simg');
    await buildRelease({ projectDir, version: '1.0.0', securityCounter: 1, keysDir, out, typecheck: false });
    const r = await runXen({ board, appImage: new Uint8Array(readFileSync(out)), keysDir, halt: true });
    if (r.exitCode !== 0 || r.appLineMs === undefined) {
      throw new XenError('E_XEN_GUEST', `the Xen guest did not run its app (last line: ${r.lines[r.lines.length - 1] ?? 'none'})`, 'run tests/xen-arm32.test.ts to see the console');
    }
    return r.appLineMs;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
