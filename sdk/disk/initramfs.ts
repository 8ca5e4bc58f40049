/**
 * The guest's initramfs: the static Duktape host as /init, the boot-stage bundle as
 * /signet/boot.dukbc (with the board layout and the trust anchor compiled in), the kernel modules
 * the stage needs to see its flash, and nothing else. Uncompressed cpio newc, deterministic.
 *
 *   /init                 signet-host for the board's arch (bootloader/native), mode 0755
 *   /signet/boot.dukbc    the boot stage (bootloader/build.ts) compiled to Duktape bytecode by
 *                         the build machine's signet-host (`--compile`): compiling the source at
 *                         boot took most of the boot stage's time under emulation
 *   /signet/boot.js       the boot stage's source, only instead of boot.dukbc (`bytecode: false`);
 *                         /init stops with E_BOOT_STAGE_MISSING when it has neither
 *   /signet/modules       load order: one initramfs path per line (absent when no modules)
 *   /signet/network       `<ifname> dhcp` or `<ifname> <address> <prefix> [gateway]`, then
 *                         `dns <address>` lines: /init brings that interface up (and lo), by
 *                         DHCP or statically (bootloader/native/net.c); absent: lo only
 *   /lib/modules/*.ko     kernel modules, loaded by /init before the boot stage runs
 *   /dev/console          char 5:1, so the kernel can give /init its console
 *   /dev /proc /sys       mount points
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNativeHost } from '../../bootloader/native/build';
import { writeCpio, normalizeCpioPath, type CpioEntry } from './cpio';
import { DiskError } from './errors';

export interface InitramfsInput {
  arch: 'arm64' | 'armhf';
  /** The boot-stage bundle (ES5 source). */
  bootJs: string;
  files?: { path: string; data: Uint8Array; mode?: number }[];
  /** Loaded by /init in this order (dependencies first), before the boot stage runs. */
  modules?: { path: string; data: Uint8Array }[];
  /** mtime of every entry (default 0). */
  mtime?: number;
  /** /signet/boot.dukbc, boot.js precompiled (default true); false: /signet/boot.js, the source. */
  bytecode?: boolean;
  /** The /signet/network text (sdk/disk/network.ts networkConfLine). */
  network?: string;
}

/**
 * Duktape bytecode for `source`, named as /init runs it (/signet/boot.js), made by the build
 * machine's signet-host: the dump format is byte-order neutral and every target embeds the same
 * duktape.c, so it loads on the board (tests run it on the arm64 and armhf builds). Same source,
 * same bytes.
 */
export async function compileBootJs(source: string): Promise<Uint8Array> {
  const host = await buildNativeHost('host');
  const dir = await mkdtemp(join(tmpdir(), 'signet-dukbc-'));
  try {
    const js = join(dir, 'boot.js');
    const out = join(dir, 'boot.dukbc');
    await writeFile(js, source);
    await new Promise<void>((resolve, reject) => {
      execFile(host, ['--compile', js, out, '/' + INITRAMFS_BOOT_JS], (error, _stdout, stderr) => {
        if (error) reject(new DiskError('E_BOOT_BYTECODE', `signet-host --compile failed on the boot stage: ${String(stderr).trim().split('\n')[0] || error.message}`, 'check that the boot stage is ES5 (it is built by bootloader/build.ts)', error));
        else resolve();
      });
    });
    return new Uint8Array(await readFile(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const INITRAMFS_INIT = 'init';
export const INITRAMFS_BOOT_JS = 'signet/boot.js';
export const INITRAMFS_BOOT_BYTECODE = 'signet/boot.dukbc';
/** Read by bootloader/native/host.c in PID 1 mode, into a buffer of this many bytes + NUL. */
export const INITRAMFS_MODULE_LIST = 'signet/modules';
export const MAX_MODULE_LIST_BYTES = 8191;
/** Read by host.c in PID 1 mode into a 256-byte buffer. */
export const INITRAMFS_NETWORK = 'signet/network';

/** The initramfs as entries (for tests and size reports); `buildInitramfs` archives them. */
export async function initramfsEntries(i: InitramfsInput): Promise<CpioEntry[]> {
  const host = new Uint8Array(await readFile(await buildNativeHost(i.arch)));
  const enc = new TextEncoder();
  const entries: CpioEntry[] = [
    { type: 'file', path: INITRAMFS_INIT, data: host, mode: 0o755 },
    // One form of the boot stage: /init runs the bytecode when it is there, so the source would be
    // unpacked by the kernel for nothing (~0.32 MB, ~70 KB of the FIT); without bytecode, the source.
    i.bytecode === false
      ? { type: 'file', path: INITRAMFS_BOOT_JS, data: enc.encode(i.bootJs) }
      : { type: 'file', path: INITRAMFS_BOOT_BYTECODE, data: await compileBootJs(i.bootJs) },
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
  ];
  for (const m of i.modules ?? []) entries.push({ type: 'file', path: m.path, data: m.data });
  if (i.modules?.length) {
    const list = enc.encode(i.modules.map((m) => '/' + normalizeCpioPath(m.path) + '\n').join(''));
    if (list.length > MAX_MODULE_LIST_BYTES) {
      throw new DiskError('E_CPIO_ENTRY', `the module list is ${list.length} bytes, /init reads at most ${MAX_MODULE_LIST_BYTES}`, 'load fewer modules or use shorter paths');
    }
    entries.push({ type: 'file', path: INITRAMFS_MODULE_LIST, data: list });
  }
  if (i.network !== undefined) {
    if (i.network.length > 511) throw new DiskError('E_CPIO_ENTRY', 'the network settings are longer than the 511 bytes /init reads', 'shorten board.network');
    entries.push({ type: 'file', path: INITRAMFS_NETWORK, data: enc.encode(i.network) });
  }
  for (const f of i.files ?? []) entries.push({ type: 'file', path: f.path, data: f.data, mode: f.mode });

  // Every folder a file sits in, plus the mount points.
  const dirs = new Set(['dev', 'proc', 'sys']);
  for (const e of entries) {
    const parts = normalizeCpioPath(e.path).split('/');
    for (let n = 1; n < parts.length; n++) dirs.add(parts.slice(0, n).join('/'));
  }
  for (const d of dirs) entries.push({ type: 'dir', path: d, mode: 0o755 });
  return entries;
}

export async function buildInitramfs(i: InitramfsInput): Promise<Uint8Array> {
  return writeCpio(await initramfsEntries(i), { mtime: i.mtime ?? 0 });
}
