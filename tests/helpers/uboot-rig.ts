/**
 * Test rig (tests and benches only): a dev board emulated for `signet flash`. Debian's real
 * U-Boot (qemu_arm64) runs as firmware in QEMU with
 *  - the vendor's FIT key in its control DTB (required = "conf"), as a vendor would bake it in,
 *  - an erased second pflash bank for its environment (saveenv),
 *  - a virtio disk the size of the board's flash: the storage `signet flash` writes,
 *  - its serial console on a unix socket, reached through a relay socket that records what the
 *    host sent (so a test can prove that nothing was sent) and can damage bytes both ways
 *    (seeded, like NoisyLineProxy) to play a bad cable.
 * QEMU starts the guest when the relay connects to its console, i.e. when the first client
 * connects: the flasher sees the board boot from its first line, like a board powered on with
 * the terminal attached. QEMU runs without -no-reboot, so `reset` reboots the board.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partition, type Board } from '../../sdk/board';
import { boardFirmware, checkQemuInstalled, dumpMachineDtb, machineArgs } from '../../sdk/disk/qemu';
import { UBOOT_ENV_SIZE, VIRT_PFLASH_BANK_BYTES } from '../../sdk/disk/run-arm64';
import { encodeUbootEnv } from '../../sdk/disk/uboot-env';
import { buildFit } from '../../sdk/fit/fit';
import { mergePublicKeyIntoDtb, readPublicKeysFromDtb } from '../../sdk/fit/keydtb';
import type { RsaSigner } from '../../sdk/fit/signer';
import { dummyArm64Kernel } from './uboot-console';
import { seededRandom, type LineNoise } from './noisy-proxy';

export interface UbootRigOptions {
  board: Board;
  /** Public-key DTB (`signet disk --key-dtb`): its keys go into U-Boot's control DTB. None: no keys (benches). */
  keyDtb?: Uint8Array;
  /** Regions written into the virtio disk before the board starts (a board flashed earlier). */
  preload?: { offset: number; bytes: Uint8Array }[];
  /**
   * U-Boot's environment in the second pflash bank at power-on (a board's factory environment);
   * default: erased, so U-Boot starts with its built-in one.
   */
  env?: Record<string, string>;
  /** Damage on the line: `toBoard` is what the host sends, `fromBoard` what the board prints. */
  noise?: { seed: number; toBoard?: LineNoise; fromBoard?: LineNoise };
}

export interface LineStats {
  bytes: number;
  corrupted: number;
  dropped: number;
}

class Direction {
  readonly stats: LineStats = { bytes: 0, corrupted: 0, dropped: 0 };

  constructor(
    private readonly random: () => number,
    public noise: LineNoise = {},
  ) {}

  apply(data: Buffer): Buffer {
    this.stats.bytes += data.length;
    const corrupt = this.noise.corruptRate ?? 0;
    const drop = this.noise.dropRate ?? 0;
    if (corrupt === 0 && drop === 0) return data;
    const out = Buffer.alloc(data.length);
    let n = 0;
    for (const byte of data) {
      if (this.random() < drop) {
        this.stats.dropped++;
        continue;
      }
      if (this.random() < corrupt) {
        this.stats.corrupted++;
        out[n++] = byte ^ (1 + Math.floor(this.random() * 255));
      } else {
        out[n++] = byte;
      }
    }
    return out.subarray(0, n);
  }
}

export class UbootRig {
  /** `unix:/…/board.sock`: what to pass to `signet flash --port`. */
  readonly address: string;
  readonly diskPath: string;
  readonly exited: Promise<number | null>;
  /** Bytes the host side sent into the relay, and client connections seen. */
  bytesFromHost = 0;
  connections = 0;
  private text = '';
  private cursor = 0;
  private qemuStderr = '';
  private hasExited = false;
  private readonly waiters = new Set<() => void>();
  private qemuSocket: net.Socket | undefined;
  private client: net.Socket | undefined;
  private cut: { afterBytes: number; armedAt: number | undefined; textFrom: number; done: () => void } | undefined;

  private constructor(
    private readonly dir: string,
    private readonly qemu: ChildProcess,
    private readonly qemuSockPath: string,
    private readonly server: net.Server,
    private readonly toBoard: Direction,
    private readonly fromBoard: Direction,
  ) {
    this.address = `unix:${join(dir, 'board.sock')}`;
    this.diskPath = join(dir, 'flash.img');
    qemu.stderr?.on('data', (d: Buffer) => (this.qemuStderr += d.toString()));
    this.exited = new Promise((resolve) => {
      qemu.on('exit', (code) => resolve(code));
      qemu.on('error', () => resolve(null));
    });
    void this.exited.then(() => {
      this.hasExited = true;
      this.client?.destroy();
      for (const w of this.waiters) w();
    });
    server.on('connection', (socket) => void this.accept(socket));
  }

  static async start(o: UbootRigOptions): Promise<UbootRig> {
    const system = checkQemuInstalled(o.board);
    const firmware = boardFirmware(o.board);
    const dir = mkdtempSync(join(tmpdir(), 'signet-rig-'));
    try {
      let control = await dumpMachineDtb(o.board);
      for (const k of o.keyDtb ? readPublicKeysFromDtb(o.keyDtb) : []) control = mergePublicKeyIntoDtb(control, k.publicKey, k.keyName);
      writeFileSync(join(dir, 'u-boot.dtb'), control);
      const pflash = new Uint8Array(VIRT_PFLASH_BANK_BYTES).fill(0xff);
      if (o.env) pflash.set(encodeUbootEnv(o.env, UBOOT_ENV_SIZE), 0);
      writeFileSync(join(dir, 'pflash1.img'), pflash);
      const fd = openSync(join(dir, 'flash.img'), 'w');
      try {
        ftruncateSync(fd, o.board.flash.size);
        for (const p of o.preload ?? []) writeSync(fd, p.bytes, 0, p.bytes.length, p.offset);
      } finally {
        closeSync(fd);
      }
      const qemuSock = join(dir, 'console.sock');
      const qemu = spawn(
        system,
        [
          ...machineArgs(o.board),
          '-bios', firmware,
          '-dtb', join(dir, 'u-boot.dtb'),
          '-drive', `if=pflash,unit=1,format=raw,file=${join(dir, 'pflash1.img')}`,
          '-drive', `if=none,id=flash,format=raw,file=${join(dir, 'flash.img')}`,
          '-device', 'virtio-blk-device,drive=flash',
          '-display', 'none',
          '-monitor', 'none',
          '-chardev', `socket,id=con0,path=${qemuSock},server=on,wait=on`,
          '-serial', 'chardev:con0',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(join(dir, 'board.sock'), () => resolve());
      });
      const random = seededRandom(o.noise?.seed ?? 1);
      return new UbootRig(dir, qemu, qemuSock, server, new Direction(random, o.noise?.toBoard), new Direction(random, o.noise?.fromBoard));
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private async accept(socket: net.Socket): Promise<void> {
    this.connections++;
    this.client?.destroy();
    this.client = socket;
    socket.on('data', (d: Buffer) => {
      this.bytesFromHost += d.length;
      if (this.cut?.armedAt !== undefined && this.bytesFromHost - this.cut.armedAt >= this.cut.afterBytes && this.inLoady(this.cut.textFrom)) {
        // The cable is pulled: what was on its way is lost, the board stays where it was.
        const done = this.cut.done;
        this.cut = undefined;
        socket.destroy();
        done();
        return;
      }
      const out = this.toBoard.apply(d);
      if (out.length > 0) this.qemuSocket?.write(out);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.client === socket) this.client = undefined;
    });
    if (!this.qemuSocket) {
      socket.pause();
      this.qemuSocket = await this.connectQemu();
      socket.resume();
    }
  }

  private async connectQemu(): Promise<net.Socket> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (this.hasExited) throw new Error(`QEMU exited: ${this.qemuStderr.trim()}`);
      if (existsSync(this.qemuSockPath)) {
        const s = await new Promise<net.Socket | undefined>((resolve) => {
          const c = net.createConnection(this.qemuSockPath);
          c.once('connect', () => resolve(c));
          c.once('error', () => resolve(undefined));
        });
        if (s) {
          s.on('data', (d: Buffer) => {
            this.text += d.toString('latin1');
            if (this.cut && this.cut.armedAt === undefined && this.text.includes('Ready for binary (ymodem) download', this.cut.textFrom)) this.cut.armedAt = this.bytesFromHost;
            for (const w of this.waiters) w();
            const out = this.fromBoard.apply(d);
            if (out.length > 0) this.client?.write(out);
          });
          s.on('error', () => undefined);
          return s;
        }
      }
      if (Date.now() > deadline) throw new Error('QEMU did not open its console socket within 30 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Pulls the cable in the middle of the next `loady`: once the board said it is ready for a
   * YMODEM download and the host then sent `afterBytes` more, the host's connection is dropped
   * (the board is left inside loady, waiting for the rest of a frame). Resolves when it happened.
   */
  cutDuringTransfer(afterBytes: number): Promise<void> {
    return new Promise((resolve) => {
      this.cut = { afterBytes, armedAt: undefined, textFrom: this.text.length, done: resolve };
    });
  }

  /** The board said it is ready for a YMODEM download (after `from` in its transcript) and has not reported the end of it. */
  private inLoady(from: number): boolean {
    const ready = this.text.lastIndexOf('Ready for binary (ymodem) download');
    return ready >= from && this.text.indexOf('## Total Size', ready) < 0 && this.text.indexOf('=> ', ready) < 0;
  }

  /** Changes the damage on the line from now on (the same seeded sequence goes on). */
  setNoise(noise: { toBoard?: LineNoise; fromBoard?: LineNoise }): void {
    this.toBoard.noise = noise.toBoard ?? {};
    this.fromBoard.noise = noise.fromBoard ?? {};
  }

  /** What the line did to the bytes, per direction. */
  get lineStats(): { toBoard: LineStats; fromBoard: LineStats } {
    return { toBoard: { ...this.toBoard.stats }, fromBoard: { ...this.fromBoard.stats } };
  }

  /** Everything the board printed (undamaged: the relay records before the noise). */
  get transcript(): string {
    return this.text;
  }

  /** Connects to the console itself (e.g. to watch the board boot after the flasher left). */
  async attachObserver(): Promise<void> {
    if (!this.qemuSocket) this.qemuSocket = await this.connectQemu();
  }

  /** Waits until `pattern` appears after the previous match; rejects with the tail on exit or timeout. */
  waitFor(pattern: string | RegExp, timeoutMs = 300_000): Promise<string> {
    const find = (): number | undefined => {
      const rest = this.text.slice(this.cursor);
      if (typeof pattern === 'string') {
        const i = rest.indexOf(pattern);
        return i < 0 ? undefined : this.cursor + i + pattern.length;
      }
      const m = new RegExp(pattern.source, pattern.flags.replace('g', '')).exec(rest);
      return m ? this.cursor + m.index + m[0].length : undefined;
    };
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const end = find();
        if (end !== undefined) {
          done();
          const out = this.text.slice(this.cursor, end);
          this.cursor = end;
          resolve(out);
        } else if (this.hasExited) {
          done();
          reject(new Error(`QEMU exited while waiting for ${String(pattern)}; console tail:\n${this.text.slice(-3000)}\n${this.qemuStderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${String(pattern)}; console tail:\n${this.text.slice(-3000)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Reads the emulated flash (after `stop`, so every write has landed). */
  readDisk(offset: number, length: number): Uint8Array {
    const fd = openSync(this.diskPath, 'r');
    try {
      const out = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, out, got, length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return out;
    } finally {
      closeSync(fd);
    }
  }

  /** Stops QEMU (if it has not powered off by itself) and closes the sockets; keeps the files. */
  async stop(): Promise<number | null> {
    this.client?.destroy();
    this.qemuSocket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (!this.hasExited) this.qemu.kill('SIGTERM');
    const kill = setTimeout(() => this.qemu.kill('SIGKILL'), 5_000);
    const code = await this.exited;
    clearTimeout(kill);
    return code;
  }

  /** Removes the rig's folder (disk, DTB, environment). */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A copy of a `signet disk` image whose boot partition holds a small stand-in FIT instead of the
 * real one: same GPT, slots and state, a FIT signed with the same key for the same board (load
 * addresses, arch, the machine's device tree), whose "kernel" only prints `banner` on the UART.
 * A real 28 MB kernel needs minutes on a serial line; this needs seconds, and still shows U-Boot
 * verifying and starting exactly what was flashed.
 */
export async function standInBootDisk(disk: Uint8Array, board: Board, signer: RsaSigner, banner: string, keyName = 'fit'): Promise<Uint8Array> {
  const a = board.loadAddresses;
  const fit = buildFit({
    description: `stand-in boot image for ${board.id}`,
    arch: board.arch === 'arm64' ? 'arm64' : 'arm',
    timestamp: 1_700_000_000,
    kernel: { data: dummyArm64Kernel(banner), loadAddress: BigInt(a.kernel), entryAddress: BigInt(a.kernel) },
    ramdisk: { data: new Uint8Array(4096).fill(0x5a), loadAddress: BigInt(a.ramdisk) },
    fdt: { data: await dumpMachineDtb(board), loadAddress: BigInt(a.fdt) },
    keyName,
    signer,
  });
  const boot = partition(board, 'boot');
  const out = disk.slice();
  out.fill(0, boot.offset, boot.offset + boot.size);
  out.set(fit, boot.offset);
  return out;
}
