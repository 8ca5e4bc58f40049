// Test helper: real U-Boot (Debian's qemu_arm64 build) in QEMU, its serial
// console a GuestConsole from sdk/disk/qemu.ts (a unix socket, which applies
// back-pressure and never drops bytes, unlike a pty). Deliberately minimal —
// the real console driver for `signet flash` lives in sdk/flash.

import { spawn } from 'node:child_process';
import { GuestConsole } from '../../sdk/disk/qemu';

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

/** U-Boot's console: a GuestConsole (socket, waiting, shutdown) with U-Boot's prompt helpers. */
export class UbootConsole {
  readonly #guest: GuestConsole;

  private constructor(guest: GuestConsole) {
    this.#guest = guest;
  }

  /** Starts QEMU paused on the console socket, then connects to it. */
  static async start(options: QemuUbootOptions): Promise<UbootConsole> {
    const args = [
      ...QEMU_VIRT_ARGS,
      '-bios', options.ubootBin ?? UBOOT_QEMU_ARM64,
      ...(options.dtb ? ['-dtb', options.dtb] : []),
      ...(options.loads ?? []).flatMap((l) => ['-device', `loader,file=${l.file},addr=0x${l.addr.toString(16)},force-raw=on`]),
    ];
    return new UbootConsole(await GuestConsole.start({ system: QEMU_AARCH64, args }));
  }

  /** Everything the console has printed so far. */
  get transcript(): string {
    return this.#guest.transcript;
  }

  /** GuestConsole.waitFor, with a 60 s default bound. */
  waitFor(pattern: string | RegExp, timeoutMs = 60_000): Promise<string> {
    return this.#guest.waitFor(pattern, timeoutMs);
  }

  send(text: string): void {
    this.#guest.send(text);
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

  close(): Promise<void> {
    return this.#guest.close();
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
