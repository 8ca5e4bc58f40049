/**
 * QEMU for emulated boards: the machine options a board.json names, its generated device tree,
 * and a guest whose serial console is a unix socket. A unix socket applies back-pressure and
 * never drops bytes (a pty does); the socket is QEMU's server and QEMU waits for us to connect
 * before it starts the guest, so nothing printed early is lost.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Board } from '../board';
import { decodeFdt, encodeFdt, ensureChild, stringValue, type FdtNode } from '../fit/fdt';
import { DiskError } from './errors';

export type QemuSettings = NonNullable<Board['qemu']>;

export function boardQemu(board: Board): QemuSettings {
  if (!board.qemu) {
    throw new DiskError('E_BOARD_NO_QEMU', `board ${board.id} has no qemu section, so it cannot be emulated`, 'run it on the real board, or pick an emulated board (signet boards)');
  }
  return board.qemu;
}

/** The firmware (U-Boot) a board boots under QEMU, checked to exist. */
export function boardFirmware(board: Board): string {
  const fw = boardQemu(board).firmware;
  if (!fw) throw new DiskError('E_BOARD_NO_QEMU', `board ${board.id} names no qemu.firmware`, 'add the U-Boot binary to the board file, or use --direct');
  if (!existsSync(fw)) throw new DiskError('E_QEMU_MISSING', `U-Boot firmware ${fw} is not installed`, "run 'apt-get install u-boot-qemu'");
  return fw;
}

export function checkQemuInstalled(board: Board): string {
  const system = boardQemu(board).system;
  if (spawnSync('sh', ['-c', `command -v ${system}`]).status !== 0) {
    throw new DiskError('E_QEMU_MISSING', `${system} is not installed`, "run 'apt-get install qemu-system-arm'");
  }
  return system;
}

/** Machine, CPU and memory: the options the device tree depends on. */
export function machineArgs(board: Board, extraMachineOptions = ''): string[] {
  const q = boardQemu(board);
  return ['-M', q.machine + extraMachineOptions, '-cpu', q.cpu, '-m', String(q.memoryMb), '-nic', 'none'];
}

/**
 * The device tree QEMU generates for the board's machine with its firmware loaded (firmware
 * changes the tree: QEMU leaves out the secure-world GPIO keys), as the kernel and U-Boot see it.
 */
export async function dumpMachineDtb(board: Board): Promise<Uint8Array> {
  const system = checkQemuInstalled(board);
  const fw = boardFirmware(board);
  const dir = mkdtempSync(join(tmpdir(), 'signet-dtb-'));
  const out = join(dir, 'machine.dtb');
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn(system, [...machineArgs(board, `,dumpdtb=${out}`), '-bios', fw, '-display', 'none'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', (e) => reject(new DiskError('E_QEMU_MISSING', `cannot start ${system}: ${e.message}`, "run 'apt-get install qemu-system-arm'", e)));
      p.on('exit', (code) =>
        code === 0 && existsSync(out) ? resolve() : reject(new DiskError('E_QEMU_FAILED', `${system} could not dump the device tree (exit ${code}): ${err.trim().split('\n').pop()}`, 'check qemu settings in the board file')),
      );
    });
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The kernel's device tree for the boot image: QEMU's tree without the per-run random seeds
 * (/chosen/rng-seed, /chosen/kaslr-seed — a seed in a signed, published image is no secret and
 * would make every build differ), with /chosen/bootargs set to the board's command line so the
 * command line is covered by the FIT signature.
 */
export function kernelDtb(machineDtb: Uint8Array, bootargs: string): Uint8Array {
  const fdt = decodeFdt(machineDtb);
  const chosen: FdtNode = ensureChild(fdt.root, 'chosen');
  chosen.properties = chosen.properties.filter((p) => p.name !== 'rng-seed' && p.name !== 'kaslr-seed' && p.name !== 'bootargs');
  chosen.properties.push({ name: 'bootargs', value: stringValue(bootargs) });
  return encodeFdt(fdt);
}

/**
 * U-Boot's control device tree for booting a disk (`signet run`): the machine's tree without the
 * NOR flash node (`/flash@0`, QEMU's two pflash banks: U-Boot itself and its environment). U-Boot
 * still reads its environment through the flash's memory window, but it has no flash driver at
 * run time: nothing the boot script does can erase or rewrite the firmware or its environment
 * (the environment is written when the disk is provisioned, and the board's flasher only checks
 * it: serial.envMode "check"), and the boot skips the CFI probe of 64 MiB (~75 ms under TCG).
 */
export function bootControlDtb(machineDtb: Uint8Array): Uint8Array {
  const fdt = decodeFdt(machineDtb);
  fdt.root.children = fdt.root.children.filter((c) => !/^flash@/.test(c.name));
  return encodeFdt(fdt);
}

export interface GuestOptions {
  system: string;
  /** Everything but the console and display options. */
  args: string[];
  /** Called with each chunk the console prints (e.g. to relay it to a terminal). */
  onOutput?: (chunk: string) => void;
}

// ---- no guest outlives the process that started it ----------------------------------------

/** QEMUs this process started and that still run. */
const liveGuests = new Set<ChildProcess>();
const GUEST_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type GuestSignal = (typeof GUEST_SIGNALS)[number];
const guestSignalHandlers = new Map<GuestSignal, () => void>(GUEST_SIGNALS.map((sig) => [sig, () => onGuestSignal(sig)]));

function killLiveGuests(): void {
  for (const q of liveGuests) q.kill('SIGKILL');
  liveGuests.clear();
}

/** `signet run` stopped by a signal: its guests go with it, then the signal does what it would have. */
function onGuestSignal(sig: GuestSignal): void {
  killLiveGuests();
  for (const [s, h] of guestSignalHandlers) process.off(s, h);
  process.kill(process.pid, sig);
}

/**
 * Tie a QEMU's life to this process: killed at exit and on SIGINT/SIGTERM/SIGHUP (a guest left
 * running after its `signet run` ended holds its disk and forwarded ports). The signal handlers
 * are installed only while a guest runs, so they change nothing for a process without one.
 */
function outliveNoGuest(qemu: ChildProcess): void {
  if (liveGuests.size === 0) {
    for (const [s, h] of guestSignalHandlers) process.on(s, h);
    process.on('exit', killLiveGuests);
  }
  liveGuests.add(qemu);
  qemu.once('exit', () => {
    liveGuests.delete(qemu);
    if (liveGuests.size === 0) {
      for (const [s, h] of guestSignalHandlers) process.off(s, h);
      process.off('exit', killLiveGuests);
    }
  });
}

/** A QEMU guest with its console on a unix socket: transcript, waitFor, send, exit. */
export class GuestConsole {
  readonly #qemu: ChildProcess;
  readonly #socket: net.Socket;
  readonly #dir: string;
  readonly exited: Promise<number | null>;
  #hasExited = false;
  readonly #ended: Promise<void>;
  #text = '';
  #cursor = 0;
  #stderr = '';
  #waiters = new Set<() => void>();
  readonly startedAt: number;

  private constructor(qemu: ChildProcess, socket: net.Socket, exited: Promise<number | null>, dir: string, startedAt: number, stderr: string, onOutput?: (c: string) => void) {
    this.#qemu = qemu;
    this.#socket = socket;
    this.#dir = dir;
    this.exited = exited;
    this.startedAt = startedAt;
    this.#stderr = stderr;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#text += chunk;
      onOutput?.(chunk);
      for (const w of this.#waiters) w();
    });
    socket.on('error', () => undefined);
    qemu.stderr?.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    // Ended = QEMU exited and the socket delivered its last bytes (it closes after them).
    const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    this.#ended = exited
      .then(() => Promise.race([socketClosed, new Promise((r) => setTimeout(r, 2_000))]))
      .then(() => {
        this.#hasExited = true;
        for (const w of this.#waiters) w();
      });
  }

  /** Starts QEMU (paused until we connect to its console socket) and connects. */
  static async start(o: GuestOptions): Promise<GuestConsole> {
    // Own short folder: unix socket paths are limited to ~108 bytes.
    const dir = mkdtempSync(join(tmpdir(), 'signet-qemu-'));
    const sock = join(dir, 'console.sock');
    const args = [
      ...o.args,
      '-display', 'none',
      '-monitor', 'none',
      '-chardev', `socket,id=con0,path=${sock},server=on,wait=on`,
      '-serial', 'chardev:con0',
    ];
    const startedAt = Date.now();
    const qemu = spawn(o.system, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    outliveNoGuest(qemu);
    let stderr = '';
    qemu.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let hasExited = false;
    const exited = new Promise<number | null>((resolve) => {
      qemu.on('exit', (code) => resolve(code));
      qemu.on('error', () => resolve(null));
    });
    void exited.then(() => (hasExited = true));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (hasExited) {
        rmSync(dir, { recursive: true, force: true });
        throw new DiskError('E_QEMU_FAILED', `${o.system} exited before opening its console: ${stderr.trim().split('\n').pop() ?? ''}`, 'check the QEMU options and that the disk file is readable');
      }
      if (existsSync(sock)) {
        const socket = await new Promise<net.Socket | undefined>((resolve) => {
          const s = net.createConnection(sock);
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(undefined));
        });
        if (socket) return new GuestConsole(qemu, socket, exited, dir, startedAt, stderr, o.onOutput);
      }
      if (Date.now() > deadline) {
        qemu.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        throw new DiskError('E_QEMU_FAILED', `${o.system} did not open its console socket within 30 s`, 'check that the machine is not overloaded');
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  get transcript(): string {
    return this.#text;
  }

  get stderr(): string {
    return this.#stderr;
  }

  get hasExited(): boolean {
    return this.#hasExited;
  }

  /**
   * Waits until `pattern` appears after the previous match and returns the text up to and
   * including it. Rejects with the console tail if QEMU exits or `timeoutMs` passes first
   * (a liveness bound, not a timing assertion).
   */
  waitFor(pattern: string | RegExp, timeoutMs = 120_000): Promise<string> {
    const find = (): number | undefined => {
      const rest = this.#text.slice(this.#cursor);
      if (typeof pattern === 'string') {
        const i = rest.indexOf(pattern);
        return i < 0 ? undefined : this.#cursor + i + pattern.length;
      }
      const m = new RegExp(pattern.source, pattern.flags.replace('g', '')).exec(rest);
      return m ? this.#cursor + m.index + m[0].length : undefined;
    };
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const end = find();
        if (end !== undefined) {
          done();
          const out = this.#text.slice(this.#cursor, end);
          this.#cursor = end;
          resolve(out);
        } else if (this.#hasExited) {
          done();
          reject(new Error(`QEMU exited while waiting for ${String(pattern)}; console tail:\n${this.#text.slice(-3000)}\n${this.#stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${String(pattern)}; console tail:\n${this.#text.slice(-3000)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  send(text: string): void {
    this.#socket.write(text, 'latin1');
  }

  /** Types a U-Boot command and returns its output up to the next prompt (or `until`). */
  async command(cmd: string, until: string | RegExp = '\n=> ', timeoutMs?: number): Promise<string> {
    this.send(`${cmd}\r`);
    return this.waitFor(until, timeoutMs);
  }

  /** Waits for QEMU to exit by itself (the guest powered off); kills it after `timeoutMs` (none: wait). */
  async waitExit(timeoutMs?: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const waits: Promise<number | null | 'timeout'>[] = [this.#ended.then(() => this.exited)];
    if (timeoutMs !== undefined) waits.push(new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))));
    const r = await Promise.race(waits);
    clearTimeout(timer);
    if (r === 'timeout') {
      await this.close();
      throw new DiskError('E_RUN_TIMEOUT', `the guest was still running after ${Math.round(timeoutMs! / 1000)} s and was stopped`, 'boot with --halt so the guest powers off, or raise --timeout');
    }
    await this.close();
    return r;
  }

  async close(): Promise<void> {
    this.#socket.destroy();
    if (!this.#hasExited) this.#qemu.kill('SIGTERM');
    const killTimer = setTimeout(() => this.#qemu.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(killTimer);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
