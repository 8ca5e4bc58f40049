// Boot image and disk image, without booting: our cpio, GPT and U-Boot environment writers
// against independent readers (GNU cpio, sfdisk, mkenvimage, dumpimage), kernel module
// resolution on Debian's real kernel, byte-identical rebuilds, and `signet disk` refusing
// images that would not boot before it writes anything.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readState } from '../bootloader/src/state';
import { PartitionDevice } from '../bootloader/src/block';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { loadBoard } from '../sdk/board';
import { checkLoadLayout } from '../sdk/disk/boot-image';
import { readCpio, writeCpio, type CpioEntry } from '../sdk/disk/cpio';
import { decodeGpt, encodeGpt, SIGNET_PARTITION_TYPES } from '../sdk/disk/gpt';
import { fetchDebianKernel, kernelConfigValue, kernelModules, KVM_BLOCK_MODULES } from '../sdk/disk/kernel';
import { readModinfo } from '../sdk/disk/kmod';
import { decodeUbootEnv, encodeUbootEnv } from '../sdk/disk/uboot-env';
import { decodeFdt, findNode, getProp, readString } from '../sdk/fit/fdt';
import { verifyFit, requiredConfKeys } from '../sdk/fit/fit-verify';
import { publicKeyDtb, readPublicKeysFromDtb } from '../sdk/fit/keydtb';
import { ForgeRsaSigner } from '../sdk/fit/rsa';
import { expectOneLineError, signet, ROOT } from './helpers/cli';
import { unpack, unpackRamdisk, ZSTD_MAGIC } from './helpers/unpack';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const board = loadBoard('qemu-virt-arm64');
const enc = new TextEncoder();

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-disk-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('cpio newc writer', () => {
  const entries: CpioEntry[] = [
    { type: 'file', path: 'signet/boot.js', data: enc.encode('print("x");\n') },
    { type: 'dir', path: 'signet' },
    { type: 'file', path: 'init', data: new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]), mode: 0o755 },
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { type: 'dir', path: 'dev' },
    { type: 'symlink', path: 'sbin', target: 'signet' },
    { type: 'file', path: 'signet/odd', data: enc.encode('abc') }, // 3 bytes: exercises data padding
  ];

  it('is read back by GNU cpio with the same names, types, modes and contents', () => {
    const archive = writeCpio(entries, { mtime: 1_700_000_000 });
    expect(archive.length % 512).toBe(0);
    const list = spawnSync('cpio', ['-itv', '--quiet'], { input: archive, encoding: 'utf8' });
    expect(list.status).toBe(0);
    const lines = list.stdout.trim().split('\n');
    // Sorted by path, so every folder comes before what it holds.
    expect(lines.map((l) => l.replace(/ -> .*$/, '').split(/\s+/).pop())).toEqual(['dev', 'dev/console', 'init', 'sbin', 'signet', 'signet/boot.js', 'signet/odd']);
    expect(lines[1]).toMatch(/^crw------- .* 5,\s+1 /);
    expect(lines[2]).toMatch(/^-rwxr-xr-x /);
    expect(lines.find((l) => l.includes('sbin'))).toMatch(/^lrwxrwxrwx .* sbin -> signet$/);

    const out = join(work, 'cpio-x');
    mkdirSync(out);
    const x = spawnSync('cpio', ['-id', '--quiet', '--no-absolute-filenames', 'signet/*', 'init'], { input: archive, cwd: out });
    expect(x.status).toBe(0);
    expect(readFileSync(join(out, 'signet/boot.js'), 'utf8')).toBe('print("x");\n');
    expect(readFileSync(join(out, 'signet/odd'), 'utf8')).toBe('abc');
    expect([...readFileSync(join(out, 'init'))]).toEqual([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]);
  });

  it('is deterministic: entry order, inode numbers and times come from the inputs only', () => {
    const a = writeCpio(entries, { mtime: 5 });
    const b = writeCpio([...entries].reverse(), { mtime: 5 });
    expect(Buffer.compare(a, b)).toBe(0);
    expect(Buffer.compare(a, writeCpio(entries, { mtime: 6 }))).not.toBe(0);
    const back = readCpio(a);
    expect(back.map((e) => e.ino)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(back.every((e) => e.mtime === 5)).toBe(true);
  });

  it('refuses duplicates, missing folders and paths that climb out', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as { code?: string }).code;
      }
      return 'none';
    };
    expect(code(() => writeCpio([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a' }]))).toBe('E_CPIO_ENTRY');
    expect(code(() => writeCpio([{ type: 'file', path: 'a/b', data: new Uint8Array() }]))).toBe('E_CPIO_ENTRY');
    expect(code(() => writeCpio([{ type: 'file', path: '../etc/passwd', data: new Uint8Array() }]))).toBe('E_CPIO_ENTRY');
  });
});

describe('GPT writer', () => {
  const seed = enc.encode('test seed');

  function writeDisk(name: string, mutate?: (primary: Uint8Array) => void): string {
    const g = encodeGpt({ diskBytes: board.flash.size, sectorSize: board.flash.blockSize, partitions: board.flash.partitions, seed });
    const file = join(work, name);
    writeFileSync(file, new Uint8Array(0));
    spawnSync('truncate', ['-s', String(board.flash.size), file]);
    const fd = new FileBlockDevice(file, 512);
    const primary = g.primary.bytes.slice();
    mutate?.(primary);
    fd.write(0, primary);
    fd.write(g.backup.offset / 512, g.backup.bytes);
    fd.close();
    return file;
  }

  it.skipIf(!has('sfdisk'))("lays out the board's partitions as sfdisk reads them, with no errors", () => {
    const file = writeDisk('gpt.img');
    const j = spawnSync('sfdisk', ['--json', file], { encoding: 'utf8' });
    expect(j.status).toBe(0);
    const t = JSON.parse(j.stdout).partitiontable;
    expect(t.label).toBe('gpt');
    expect(t.sectorsize).toBe(512);
    expect(t.partitions.map((p: { name: string; start: number; size: number; type: string }) => [p.name, p.start * 512, p.size * 512, p.type])).toEqual(
      board.flash.partitions.map((p) => [p.name, p.offset, p.size, SIGNET_PARTITION_TYPES[p.name]]),
    );
    const v = spawnSync('sfdisk', ['--verify', file], { encoding: 'utf8' });
    expect(v.status).toBe(0);
    expect(v.stdout).toContain('No errors detected');
    expect(v.stdout + v.stderr).not.toMatch(/corrupt|invalid|mismatch/i);
  });

  it('round-trips through our reader and fails closed on a corrupted header', () => {
    const read = (file: string) => {
      const fd = new FileBlockDevice(file, 512, false);
      try {
        return decodeGpt((off, len) => {
          const s = Math.floor(off / 512);
          const b = fd.read(s, Math.ceil((off + len) / 512) - s);
          return b.subarray(off - s * 512, off - s * 512 + len);
        });
      } finally {
        fd.close();
      }
    };
    const g = read(writeDisk('gpt2.img'));
    expect(g.partitions.map((p) => [p.name, p.offset, p.size])).toEqual(board.flash.partitions.map((p) => [p.name, p.offset, p.size]));
    // Same seed, same GUIDs; another seed, other GUIDs.
    const again = encodeGpt({ diskBytes: board.flash.size, sectorSize: 512, partitions: board.flash.partitions, seed }).layout;
    expect(again.diskGuid).toBe(g.diskGuid);
    expect(encodeGpt({ diskBytes: board.flash.size, sectorSize: 512, partitions: board.flash.partitions, seed: enc.encode('x') }).layout.diskGuid).not.toBe(g.diskGuid);

    const bad = writeDisk('gpt3.img', (p) => (p[512 + 40] ^= 1)); // first usable LBA, under the header CRC
    expect(() => read(bad)).toThrow(expect.objectContaining({ code: 'E_DISK_NOT_A_DISK' }));
  });

  it('refuses partitions over the GPT itself or past the backup table', () => {
    const parts = (first: number) => [{ name: 'boot', offset: first, size: 1 << 20 }];
    expect(() => encodeGpt({ diskBytes: board.flash.size, sectorSize: 512, partitions: parts(0), seed })).toThrow(expect.objectContaining({ code: 'E_DISK_LAYOUT' }));
    expect(() => encodeGpt({ diskBytes: board.flash.size, sectorSize: 512, partitions: parts(board.flash.size - (1 << 20)), seed })).toThrow(expect.objectContaining({ code: 'E_DISK_LAYOUT' }));
  });
});

describe('U-Boot environment image', () => {
  const vars = { bootdelay: '0', bootcmd: 'virtio scan; virtio read 0x50000000 0x800 0x1b7d; bootm 0x50000000', bootargs: 'console=ttyAMA0 -- --halt' };

  it.skipIf(!has('mkenvimage'))('is byte-identical to what mkenvimage writes from the same (sorted) variables', () => {
    const txt = join(work, 'env.txt');
    writeFileSync(txt, Object.keys(vars).sort().map((k) => `${k}=${vars[k as keyof typeof vars]}`).join('\n') + '\n');
    const out = join(work, 'env.bin');
    expect(spawnSync('mkenvimage', ['-s', '0x40000', '-o', out, txt]).status).toBe(0);
    expect(Buffer.compare(readFileSync(out), encodeUbootEnv(vars, 0x40000))).toBe(0);
  });

  it('reads back, and refuses values U-Boot would split or truncate', () => {
    expect(decodeUbootEnv(encodeUbootEnv(vars, 0x1000))).toEqual(vars);
    expect(() => encodeUbootEnv({ bootcmd: 'a\nb' }, 0x1000)).toThrow(expect.objectContaining({ code: 'E_UBOOT_ENV' }));
    expect(() => encodeUbootEnv({ x: 'y'.repeat(100) }, 64)).toThrow(expect.objectContaining({ code: 'E_UBOOT_ENV' }));
  });
});

describe('RAM layout of the boot image', () => {
  const MiB = 1024 * 1024;
  it("every board's load addresses leave room for the kernel as it runs, ramdisk, device tree and FIT", () => {
    // Sizes as signet fit makes them today, with room to grow: Debian's arm64 Image runs in 28 MiB;
    // the minimal one built from source in 5.3 MiB (its ramdisk 1.2 MiB), packed low so that
    // U-Boot verified boot works in 32 MiB of RAM (bench serve: min_ram_mb).
    for (const id of ['qemu-virt-arm64', 'bpi-r4-router', 'xen-arm32', 'tv-soc-armv7']) {
      const b = loadBoard(id);
      const minimal = b.kernel.source === 'debian-source' && b.arch === 'arm64';
      const sizes = minimal
        ? { kernel: 6 * MiB, ramdisk: 1.8 * MiB, fdt: 0x10000, fit: 16 * MiB }
        : { kernel: (b.arch === 'arm64' ? 40 : 8) * MiB, ramdisk: 4 * MiB, fdt: 0x20000, fit: 16 * MiB };
      expect(() => checkLoadLayout(b, sizes), id).not.toThrow();
    }
  });
  it('refuses addresses at which the inflated kernel would overwrite the device tree', () => {
    const e = (() => {
      try {
        checkLoadLayout(board, { kernel: 0x40600000 - 0x40000000 + 1, ramdisk: MiB, fdt: 0x10000, fit: MiB });
      } catch (x) {
        return x as { code: string; message: string };
      }
      return null;
    })();
    expect(e?.code).toBe('E_LOAD_OVERLAP');
    expect(e?.message).toContain('the kernel (as it runs) at 0x40000000..0x40600001 overlaps the device tree');
  });
});

describe("Debian's cloud-arm64 kernel", () => {
  it('needs its virtio block drivers loaded from the initramfs, dependencies first', async () => {
    const k = await fetchDebianKernel(board); // the board's kernel.source "debian-binary" path
    expect(k.version).toMatch(/^\d+\.\d+\.\d+-\d+-cloud-arm64$/);
    expect(new DataView(k.kernel.buffer, k.kernel.byteOffset).getUint32(56, true)).toBe(0x644d5241); // "ARM\x64" Image magic
    // Why the initramfs carries modules at all: these are =m in this kernel.
    expect(kernelConfigValue(k.config, 'CONFIG_VIRTIO_BLK')).toBe('m');
    expect(kernelConfigValue(k.config, 'CONFIG_VIRTIO_MMIO')).toBe('m');
    const mods = kernelModules(k, KVM_BLOCK_MODULES);
    const names = mods.map((m) => m.name);
    for (const n of ['virtio', 'virtio_ring', 'virtio_mmio', 'virtio_pci', 'virtio_blk']) expect(names).toContain(n);
    for (const m of mods) {
      const info = readModinfo(m.data);
      expect(info.get('vermagic')?.[0]).toContain(k.version);
      for (const dep of (info.get('depends')?.[0] ?? '').split(',').filter(Boolean)) {
        expect(names.indexOf(dep), `${dep} before ${m.name}`).toBeLessThan(names.indexOf(m.name));
      }
    }
  }, 600_000);
});

describe('signet fit / signet disk', () => {
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  let keys: string;
  let app: string;

  beforeAll(() => {
    keys = join(work, 'keys');
    expect(signet(['keys', 'init', '--dir', keys]).code).toBe(0);
    app = join(work, 'app.simg');
    const b = signet(['build', '--project', join(ROOT, 'examples', 'hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', keys, '--out', app, '--no-typecheck']);
    expect(b.code, b.stderr).toBe(0);
  });

  it('two builds of the same inputs give byte-identical boot images (FIT, initramfs, key DTB)', () => {
    const run = (n: string) => {
      const r = signet(['fit', '--board', board.id, '--keys', keys, '--out', join(work, `${n}.itb`), '--key-dtb', join(work, `${n}.dtb`), '--json'], { env, timeout: 300_000 });
      expect(r.code, r.stderr).toBe(0);
      return { fit: readFileSync(join(work, `${n}.itb`)), dtb: readFileSync(join(work, `${n}.dtb`)), info: JSON.parse(r.stdout) };
    };
    const one = run('one');
    const two = run('two');
    expect(one.fit.equals(two.fit)).toBe(true);
    expect(one.dtb.equals(two.dtb)).toBe(true);
    expect(one.info.timestamp).toBe(1_700_000_000);

    // Our FIT verifies with the key DTB we wrote, as U-Boot would check it.
    const v = verifyFit(new Uint8Array(one.fit), requiredConfKeys(readPublicKeysFromDtb(new Uint8Array(one.dtb))));
    expect(v.images.map((i) => i.role).sort()).toEqual(['fdt', 'kernel', 'ramdisk']);
    const ramdisk = v.images.find((i) => i.role === 'ramdisk')!.data;
    // mkimage's reader extracts the same initramfs bytes; rebuilt, the initramfs is identical too.
    const extracted = join(work, 'initramfs.cpio');
    expect(spawnSync('dumpimage', ['-T', 'flat_dt', '-p', '1', '-o', extracted, join(work, 'one.itb')]).status).toBe(0);
    expect(Buffer.compare(readFileSync(extracted), ramdisk)).toBe(0);
    expect(Buffer.compare(ramdisk, verifyFit(new Uint8Array(two.fit), requiredConfKeys(readPublicKeysFromDtb(new Uint8Array(two.dtb)))).images.find((i) => i.role === 'ramdisk')!.data)).toBe(0);
    // arm64 (kernel built from source, CONFIG_RD_ZSTD): the initramfs is stored zstd'd with no
    // checksum (the FIT's signed sha256 covers it), its size in a one-segment frame (the kernel's
    // window is then the initramfs's size, not the CLI's 128 MiB for -22), a multiple of
    // 4 bytes; the kernel gzip'd (libdeflate), declared so, unpacking to the board's Image.
    expect([...ramdisk.subarray(0, 4)]).toEqual([...ZSTD_MAGIC]);
    // Frame header descriptor: single segment (bit 5), no checksum (bit 2), and 4 bytes of content size (FCS flag 2: 65,792 to 4 GiB).
    expect(ramdisk[4]! & 0x24).toBe(0x20);
    expect(ramdisk[4]! >> 6).toBe(2);
    expect(Buffer.from(ramdisk).readUInt32LE(5)).toBe(one.info.initramfsBytes);
    expect(ramdisk.length % 4).toBe(0);
    expect(one.info.initramfsBytes).toBeGreaterThan(ramdisk.length);
    const files = readCpio(new Uint8Array(unpackRamdisk(ramdisk)));
    const kernelNode = decodeFdt(new Uint8Array(one.fit)).root;
    const kimg = findNode(kernelNode, '/images/kernel')!;
    expect(readString(getProp(kimg, 'compression')!)).toBe('gzip');
    expect(readString(getProp(findNode(kernelNode, '/images/ramdisk')!, 'compression')!)).toBe('none');
    const image = unpack('gzip', getProp(kimg, 'data')!);
    expect(image.length).toBe(one.info.kernelBytes);
    expect(image.subarray(56, 60).toString('latin1')).toBe('ARM\x64'); // arm64 Image magic
    expect(one.info).toMatchObject({ kernelCompression: 'gzip', fitKernelBytes: getProp(kimg, 'data')!.length });
    const init = files.find((f) => f.path === 'init')!;
    expect(new DataView(init.data.buffer, init.data.byteOffset).getUint16(18, true)).toBe(183); // EM_AARCH64
    expect(init.mode & 0o777).toBe(0o755);
    const rootKeyId = Object.keys(JSON.parse(readFileSync(join(keys, 'root.json'), 'utf8')).signed.keys)[0]!;
    // The boot stage precompiled, which /init runs (Duktape bytecode, marker 0xBF), with the trust
    // anchor compiled in; its source is not carried beside it (the kernel would unpack it for nothing).
    const bytecode = files.find((f) => f.path === 'signet/boot.dukbc')!.data;
    expect(bytecode[0]).toBe(0xbf);
    expect(Buffer.from(bytecode).includes(rootKeyId)).toBe(true);
    expect(files.some((f) => f.path === 'signet/boot.js')).toBe(false);
    // The board's minimal kernel has its drivers built in: no modules, no module list
    // (Debian's kernel and its module order: tests/kernel-build.test.ts, "debian-binary").
    expect(one.info.modules).toEqual([]);
    expect(files.some((f) => f.path === 'signet/modules' || f.path.startsWith('lib/modules/'))).toBe(false);
    // /init asks for eth0's address by DHCP.
    expect(new TextDecoder().decode(files.find((f) => f.path === 'signet/network')!.data)).toBe('eth0 dhcp\n');

    // The signed device tree carries the kernel command line, without QEMU's per-run seeds.
    const dtc = spawnSync('sh', ['-c', `dumpimage -T flat_dt -p 2 -o ${work}/k.dtb ${work}/one.itb >/dev/null && dtc -I dtb -O dts ${work}/k.dtb`], { encoding: 'utf8' });
    expect(dtc.stdout).toContain(`bootargs = "${board.kernel.cmdline}"`);
    expect(dtc.stdout).not.toMatch(/rng-seed|kaslr-seed/);
  }, 900_000);

  it('signet disk writes GPT, boot image, slot A and the boot state; the boot image is the same FIT', () => {
    const out = join(work, 'disk.img');
    const r = signet(['disk', app, '--board', board.id, '--keys', keys, '--out', out, '--json'], { env, timeout: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.slotA).toEqual({ name: 'hello', version: '1.2.0', securityCounter: 3 });
    expect(info.slotB).toBeNull();
    const disk = readFileSync(out);
    expect(disk.length).toBe(board.flash.size);
    const at = (name: string) => board.flash.partitions.find((p) => p.name === name)!;
    const fit = readFileSync(join(work, 'one.itb'));
    expect(disk.subarray(at('boot').offset, at('boot').offset + fit.length).equals(fit)).toBe(true);
    const simg = readFileSync(app);
    expect(disk.subarray(at('slot_a').offset, at('slot_a').offset + simg.length).equals(simg)).toBe(true);
    expect(disk.subarray(at('slot_b').offset, at('slot_b').offset + 512).every((b) => b === 0xff)).toBe(true);
    const dev = new FileBlockDevice(out, 512, false);
    const st = readState(new PartitionDevice(dev, at('state').offset, at('state').size));
    dev.close();
    expect(st.valid).toEqual([true, true]);
    expect(st.state).toMatchObject({ active: 'a', slotA: 'good', slotB: 'empty', securityFloor: 3 });
    if (has('sfdisk')) expect(spawnSync('sfdisk', ['--verify', out], { encoding: 'utf8' }).stdout).toContain('No errors detected');

    // signet run checks the FIT against the key it is given before QEMU starts, even --direct.
    const wrongKey = join(work, 'wrong-key.dtb');
    writeFileSync(wrongKey, publicKeyDtb(ForgeRsaSigner.generate().publicKey(), 'fit'));
    expectOneLineError(signet(['run', out, '--board', board.id, '--direct', '--key-dtb', wrongKey]), 'E_FIT_SIGNATURE_INVALID');
    expectOneLineError(signet(['run', app, '--board', board.id, '--direct']), 'E_DISK_NOT_A_DISK');
  }, 600_000);

  it('refuses an app image that would not boot on the board, before writing anything', () => {
    const tampered = join(work, 'tampered.simg');
    const b = readFileSync(app);
    b[b.length - 200] ^= 0x01; // inside the payload: its digest no longer matches
    writeFileSync(tampered, b);
    const out = join(work, 'never.img');
    expectOneLineError(signet(['disk', tampered, '--board', board.id, '--keys', keys, '--out', out]), 'E_DIGEST');
    expectOneLineError(signet(['disk', app, '--board', 'xen-arm32', '--keys', keys, '--out', out]), 'E_BOARD');
    const other = join(work, 'other-keys');
    expect(signet(['keys', 'init', '--dir', other]).code).toBe(0);
    expectOneLineError(signet(['disk', app, '--board', board.id, '--keys', other, '--out', out]), 'E_UNKNOWN_KEY');
    expect(existsSync(out)).toBe(false);
    expectOneLineError(signet(['fit', '--board', board.id, '--keys', join(work, 'nowhere'), '--out', out]), 'E_FILE_NOT_FOUND');
  }, 600_000);
});
