// Test helper: real U-Boot (Debian's qemu_arm64 build) in QEMU, its serial
// console on a unix socket. A unix socket applies back-pressure and never
// drops bytes, unlike a pty. Deliberately minimal — the real console driver
// for `signet flash` lives in sdk/flash.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const UBOOT_QEMU_ARM64 = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';
export const QEMU_AARCH64 = 'qemu-system-aarch64';
/** The machine U-Boot runs on; dumping the DTB must use the same options. */
export const QEMU_VIRT_ARGS = ['-M', 'virt', '-cpu', 'cortex-a57', '-m', '1024', '-nic', 'none'] as const;

export interface QemuLoad {
  file: string;
  addr: number;
}

export interface QemuUbootOptions {
  dtb?: string;
  loads?: QemuLoad[];
  ubootBin?: string;
}

export class UbootConsole {
  readonly #qemu: ChildProcess;
  readonly #socket: net.Socket;
  #text = '';
  #cursor = 0;
  #waiters = new Set<() => void>();
  #exit: Promise<number | null>;
  #exited = false;
  #qemuStderr = '';
  readonly #socketDir: string;

  private constructor(qemu: ChildProcess, socket: net.Socket, exit: Promise<number | null>, socketDir: string) {
    this.#qemu = qemu;
    this.#socket = socket;
    this.#exit = exit;
    this.#socketDir = socketDir;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#text += chunk;
      for (const w of this.#waiters) w();
    });
    socket.on('error', () => undefined);
    qemu.stderr?.on('data', (d: Buffer) => (this.#qemuStderr += d.toString()));
    void exit.then(() => {
      this.#exited = true;
      for (const w of this.#waiters) w();
    });
  }

  /** Starts QEMU paused on the console socket, then connects to it. */
  static async start(options: QemuUbootOptions): Promise<UbootConsole> {
    // Own short directory: unix socket paths are limited to ~108 bytes.
    const socketDir = mkdtempSync(join(tmpdir(), 'signet-uboot-'));
    const sock = join(socketDir, 'console.sock');
    const args = [
      ...QEMU_VIRT_ARGS,
      '-bios', options.ubootBin ?? UBOOT_QEMU_ARM64,
      ...(options.dtb ? ['-dtb', options.dtb] : []),
      ...(options.loads ?? []).flatMap((l) => ['-device', `loader,file=${l.file},addr=0x${l.addr.toString(16)},force-raw=on`]),
      '-display', 'none',
      '-monitor', 'none',
      '-chardev', `socket,id=s0,path=${sock},server=on,wait=on`,
      '-serial', 'chardev:s0',
    ];
    const qemu = spawn(QEMU_AARCH64, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const exit = new Promise<number | null>((resolve) => {
      qemu.on('exit', (code) => resolve(code));
      qemu.on('error', () => resolve(null));
    });
    let exited = false;
    void exit.then(() => (exited = true));
    let stderr = '';
    qemu.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));

    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) {
        rmSync(socketDir, { recursive: true, force: true });
        throw new Error(`QEMU exited before opening its console socket: ${stderr.trim()}`);
      }
      if (existsSync(sock)) {
        const socket = await new Promise<net.Socket | undefined>((resolve) => {
          const s = net.createConnection(sock);
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(undefined));
        });
        if (socket) return new UbootConsole(qemu, socket, exit, socketDir);
      }
      if (Date.now() > deadline) {
        qemu.kill('SIGKILL');
        rmSync(socketDir, { recursive: true, force: true });
        throw new Error(`QEMU did not open ${sock} within 30 s: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Everything the console has printed so far. */
  get transcript(): string {
    return this.#text;
  }

  /**
   * Waits until `pattern` appears after the last match and returns the text
   * up to and including it. Rejects with the transcript tail if QEMU exits or
   * `timeoutMs` passes first (a liveness bound, not a timing assertion).
   */
  waitFor(pattern: string | RegExp, timeoutMs = 60_000): Promise<string> {
    const find = (): { end: number } | undefined => {
      const rest = this.#text.slice(this.#cursor);
      if (typeof pattern === 'string') {
        const i = rest.indexOf(pattern);
        return i < 0 ? undefined : { end: this.#cursor + i + pattern.length };
      }
      const m = new RegExp(pattern.source, pattern.flags.replace('g', '')).exec(rest);
      return m ? { end: this.#cursor + m.index + m[0].length } : undefined;
    };
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = find();
        if (hit) {
          done();
          const out = this.#text.slice(this.#cursor, hit.end);
          this.#cursor = hit.end;
          resolve(out);
        } else if (this.#exited) {
          done();
          reject(new Error(`QEMU exited while waiting for ${String(pattern)}; console tail:\n${this.#text.slice(-2000)}\n${this.#qemuStderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${String(pattern)}; console tail:\n${this.#text.slice(-2000)}`));
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

  /** Interrupts the autoboot countdown and waits for the `=> ` prompt. */
  async stopAutoboot(): Promise<string> {
    const banner = await this.waitFor('Hit any key to stop autoboot');
    this.send(' ');
    return banner + (await this.waitFor('=> '));
  }

  /**
   * Types a command and returns its output up to the first of `until`
   * (default: the next prompt).
   */
  async command(cmd: string, until: string | RegExp = '\n=> ', timeoutMs?: number): Promise<string> {
    this.send(`${cmd}\r`);
    return this.waitFor(until, timeoutMs);
  }

  async close(): Promise<void> {
    this.#socket.destroy();
    if (!this.#exited) this.#qemu.kill('SIGTERM');
    const killTimer = setTimeout(() => this.#qemu.kill('SIGKILL'), 5_000);
    await this.#exit;
    clearTimeout(killTimer);
    rmSync(this.#socketDir, { recursive: true, force: true });
  }
}

/** Writes QEMU's generated DTB for the U-Boot machine (`-bios` changes it). */
export async function dumpQemuVirtDtb(outFile: string, ubootBin = UBOOT_QEMU_ARM64): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const args = ['-M', `virt,dumpdtb=${outFile}`, ...QEMU_VIRT_ARGS.slice(2), '-bios', ubootBin, '-display', 'none'];
    const p = spawn(QEMU_AARCH64, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`qemu dumpdtb failed (${code}): ${err.trim()}`))));
  });
}

/**
 * A stand-in arm64 "kernel": writes `message` to the virt machine's PL011
 * UART (0x09000000, left set up by U-Boot) and spins. Proves that U-Boot
 * handed control to the verified image.
 */
export function dummyArm64Kernel(message: string): Uint8Array {
  const code = [
    0xd2a12001, // movz x1, #0x0900, lsl #16   ; x1 = 0x09000000 (UART data register)
    0x100000e2, // adr  x2, msg                ; msg at +0x1c from here = 0x20
    0x38401443, // loop: ldrb w3, [x2], #1
    0x34000063, // cbz  w3, done               ; +0x0c
    0x39000023, // strb w3, [x1]
    0x17fffffd, // b    loop                   ; -0x0c
    0x14000000, // done: b .
    0xd503201f, // nop (pad to 0x20)
  ];
  const msg = new TextEncoder().encode(message + '\0');
  const out = new Uint8Array(code.length * 4 + msg.length + ((4 - (msg.length % 4)) % 4));
  const view = new DataView(out.buffer);
  code.forEach((insn, i) => view.setUint32(i * 4, insn, true));
  out.set(msg, code.length * 4);
  return out;
}
