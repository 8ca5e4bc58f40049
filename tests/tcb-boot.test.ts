// The boot image's TCB: signet-host's bytes by library from its link map (unit tests on map
// text and a small ELF), the record in the signed FIT, and `signet tcb` on real boot images
// for qemu-virt-arm64 and xen-arm32 (a FIT, and a disk made by `signet disk`). The numbers are
// checked against what binutils and the Debian kernel package say, not against themselves.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffBootTcb } from '../sdk/build/tcb-boot';
import { attributeNative, elfSections, loadableSections, parseLinkMap, signetHostClassifier, toolchainLibrary, type NativeTcb } from '../sdk/build/tcb-native';
import { BOOT_TCB_PROPERTY, decodeBootTcb, kernelOptions, type BootTcbRecord } from '../sdk/disk/boot-tcb';
import { isZstd } from '../sdk/disk/compress';
import { readCpio } from '../sdk/disk/cpio';
import { decodeFdt, encodeFdt, fdtProp, findNode, getProp } from '../sdk/fit/fdt';
import { buildFit } from '../sdk/fit/fit';
import { requiredConfKeys, verifyFit } from '../sdk/fit/fit-verify';
import { readPublicKeysFromDtb } from '../sdk/fit/keydtb';
import { ForgeRsaSigner } from '../sdk/fit/rsa';
import { expectOneLineError, ROOT, signet } from './helpers/cli';
import { unpackRamdisk } from './helpers/unpack';

// ---------------------------------------------------------------------------------------------
// Unit: link map and ELF

/** A little-endian ELF64 with the given sections (section headers and .shstrtab only). */
function fakeElf(sections: { name: string; type: number; flags: number; size: number }[]): Uint8Array {
  const all = [{ name: '', type: 0, flags: 0, size: 0 }, ...sections];
  const names = ['', ...sections.map((s) => s.name), '.shstrtab'];
  const strtab = Buffer.from(names.join('\0') + '\0');
  const offsets = names.map((_, i) => names.slice(0, i).reduce((s, n) => s + n.length + 1, 0));
  const shoff = 64 + strtab.length + ((8 - (strtab.length % 8)) % 8);
  const shnum = all.length + 1;
  const b = Buffer.alloc(shoff + shnum * 64);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeBigUInt64LE(BigInt(shoff), 0x28);
  b.writeUInt16LE(64, 0x3a);
  b.writeUInt16LE(shnum, 0x3c);
  b.writeUInt16LE(shnum - 1, 0x3e);
  strtab.copy(b, 64);
  [...all, { name: '.shstrtab', type: 3, flags: 0, size: strtab.length }].forEach((s, i) => {
    const o = shoff + i * 64;
    b.writeUInt32LE(offsets[i]!, o);
    b.writeUInt32LE(s.type, o + 4);
    b.writeBigUInt64LE(BigInt(s.flags), o + 8);
    b.writeBigUInt64LE(BigInt(s.name === '.shstrtab' ? 64 : 0), o + 0x18);
    b.writeBigUInt64LE(BigInt(s.size), o + 0x20);
  });
  return new Uint8Array(b);
}

const PROGBITS = 1;
const NOBITS = 8;
const ALLOC = 2;

// Shaped like aarch64-linux-gnu-ld 2.40 output: wrapped long names, "size before relaxing",
// symbol lines, fill, linker stubs, and merged string pools that run into what follows them.
const MAP = `Archive member included to satisfy reference by file (symbol)

/c/libuv_a.a(core.c.o)       /o/host.o (uv_run)

Memory Configuration

Name             Origin             Length             Attributes
*default*        0x0000000000000000 0xffffffffffffffff

Linker script and memory map

LOAD /x/crt1.o
LOAD /o/host.o
START GROUP
LOAD /usr/lib/gcc-cross/aarch64-linux-gnu/12/libgcc.a
END GROUP

.note.gnu.build-id
                0x00000000004000e8       0x18
 *(.note.gnu.build-id)
 .note.gnu.build-id
                0x00000000004000e8       0x18 /x/crt1.o

.text           0x0000000000400100      0x140
 *(.text.unlikely .text.*_unlikely .text.unlikely.*)
 .text          0x0000000000400100       0x40 /x/crt1.o
                0x0000000000400100                _start
 .text.a_very_long_function_name_that_wraps
                0x0000000000400140       0x60 /o/host.o
                0x0000000000400140                a_very_long_function_name_that_wraps
 *fill*         0x00000000004001a0       0x10 1f2003d5
 .text.stub     0x00000000004001b0       0x10 linker stubs
 .text          0x00000000004001c0       0x80 /c/libuv_a.a(core.c.o)
                0x00000000004001c0                uv_run

.rodata         0x0000000000400240       0x30
 *(.rodata .rodata.* .gnu.linkonce.r.*)
 .rodata.str1.8
                0x0000000000400240       0x20 /o/host.o
                                         0x28 (size before relaxing)
 .rodata.str1.8
                0x0000000000400250       0x18 /c/libmbedcrypto.a(aes.o)
 .rodata.str1.8
                0x0000000000400250       0x18 /c/libmbedx509.a(x509.o)
 .rodata        0x0000000000400260       0x10 /usr/lib/x/libc.a(printf.o)

.bss            0x0000000000410000      0x100
 .bss           0x0000000000410000      0x100 /o/host.o

.comment        0x0000000000000000       0x1f
 .comment       0x0000000000000000       0x1f /usr/lib/x/libc.a(printf.o)
OUTPUT(signet-host elf64-littleaarch64)
LOAD linker stubs
`;

const ELF = fakeElf([
  { name: '.note.gnu.build-id', type: 7, flags: ALLOC, size: 0x18 },
  { name: '.text', type: PROGBITS, flags: ALLOC | 4, size: 0x140 },
  { name: '.rodata', type: PROGBITS, flags: ALLOC, size: 0x30 },
  { name: '.bss', type: NOBITS, flags: ALLOC | 1, size: 0x100 },
  { name: '.comment', type: PROGBITS, flags: 0x30, size: 0x1f },
]);

const classify = signetHostClassifier({ ownDir: '/o', engineObject: '/e/duktape-arm64-1.o', archives: [
  { path: '/c/libuv_a.a', pkg: 'libuv1-dev' },
  { path: '/c/libmbedcrypto.a', pkg: 'libmbedtls-dev' },
  { path: '/c/libmbedx509.a', pkg: 'libmbedtls-dev' },
] });

describe('link map → bytes by library (unit)', () => {
  it('reads output and input sections, wrapped names, and skips symbol, pattern and relaxing lines', () => {
    const map = parseLinkMap(MAP);
    expect(map.outputs.map((o) => [o.name, o.size])).toEqual([['.note.gnu.build-id', 0x18], ['.text', 0x140], ['.rodata', 0x30], ['.bss', 0x100], ['.comment', 0x1f]]);
    expect(map.inputs.filter((i) => i.output === '.text').map((i) => [i.section, i.size, i.origin])).toEqual([
      ['.text', 0x40, '/x/crt1.o'],
      ['.text.a_very_long_function_name_that_wraps', 0x60, '/o/host.o'],
      ['*fill*', 0x10, ''],
      ['.text.stub', 0x10, ''],
      ['.text', 0x80, '/c/libuv_a.a(core.c.o)'],
    ]);
    expect(map.inputs.find((i) => i.origin === '/o/host.o' && i.output === '.rodata')!.size).toBe(0x20);
  });

  it('attributes every loadable byte once: .bss and .comment are left out, merged pools do not count twice', () => {
    const t = attributeNative(parseLinkMap(MAP), ELF, classify);
    expect(t.loadableBytes).toBe(0x18 + 0x140 + 0x30);
    const of = (lib: string) => t.parts.find((p) => p.library === lib);
    expect(of('signet')).toEqual({ library: 'signet', bytes: 0x60 + 0x10, members: { 'host.c': 0x70 } });
    expect(of('libuv')!.bytes).toBe(0x80);
    // Two pools at one address: the first listed gets the bytes, up to where libc's begins.
    expect(of('mbedtls')).toEqual({ library: 'mbedtls', bytes: 0x10, members: { 'libmbedcrypto.a': 0x10 } });
    expect(of('libc')!.members).toEqual({ 'crt1.o': 0x18 + 0x40, 'libc.a': 0x10 });
    expect(of('other')!.members).toEqual({ alignment: 0x10, linker: 0x10 });
    expect(t.parts.reduce((s, p) => s + p.bytes, 0)).toBe(t.loadableBytes);
    expect(t.parts[t.parts.length - 1]!.library).toBe('other');
  });

  it('leaves what the map does not explain as other/unattributed, never on a library', () => {
    const gap = MAP.replace(' *fill*         0x00000000004001a0       0x10 1f2003d5\n', '');
    const t = attributeNative(parseLinkMap(gap), ELF, classify);
    expect(t.parts.find((p) => p.library === 'other')!.members).toEqual({ linker: 0x10, unattributed: 0x10 });
  });

  it('refuses a map that is not from this link, a file without a memory map, and a non-ELF binary', () => {
    const other = fakeElf([{ name: '.text', type: PROGBITS, flags: ALLOC, size: 0x150 }]);
    expect(() => attributeNative(parseLinkMap(MAP), other, classify)).toThrow(expect.objectContaining({ code: 'E_TCB_LINK_MAP' }));
    expect(() => parseLinkMap('LOAD x.o\n')).toThrow(expect.objectContaining({ code: 'E_TCB_LINK_MAP' }));
    expect(() => elfSections(new Uint8Array(100))).toThrow(expect.objectContaining({ code: 'E_TCB_ELF' }));
    expect(loadableSections(elfSections(ELF)).map((s) => s.name)).toEqual(['.note.gnu.build-id', '.text', '.rodata']);
    // glibc's pieces as each compiler links them statically, libgcc's, and nothing else.
    expect(['/l/libc.a', '/l/libm-2.36.a', '/l/libmvec.a', '/l/crt1.o', '/l/libgcc_eh.a', '/l/crtbeginT.o', '/l/libfoo.a'].map(toolchainLibrary)).toEqual(['libc', 'libc', 'libc', 'libc', 'libgcc', 'libgcc', undefined]);
  });
});

// ---------------------------------------------------------------------------------------------
// Unit: kernel options and the record

describe('boot TCB record (unit)', () => {
  it('kernel options: CONFIG_X=value lines, not "is not set" comments', () => {
    const cfg = '#\n# Automatically generated\nCONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"\nCONFIG_64BIT=y\n# CONFIG_EXPERT is not set\nCONFIG_NR_CPUS=256\nCONFIG_VIRTIO_NET=m\n';
    expect(kernelOptions(cfg)).toEqual({ CC_VERSION_TEXT: '"gcc (Debian 12.2.0-14) 12.2.0"', '64BIT': 'y', NR_CPUS: '256', VIRTIO_NET: 'm' });
  });

  const native = (parts: [string, number][]): NativeTcb => ({ format: 'signet-native-tcb', version: 1, loadableBytes: parts.reduce((s, p) => s + p[1], 0), fileBytes: 1,
    parts: parts.map(([library, bytes]) => ({ library, bytes, members: {} })) });
  const rec = (opts: Record<string, string>, parts: [string, number][]): BootTcbRecord => ({
    format: 'signet-boot-tcb', version: 1, board: 'b', arch: 'arm64',
    kernel: { version: 'v', source: 'debian-binary', package: 'p', configSha256: '0'.repeat(64), optionsSet: Object.keys(opts).length, bytes: 10, fitBytes: 10, compression: 'none' },
    kernelOptions: opts, native: native(parts), initramfs: { bytes: 0, fitBytes: 0, parts: [] }, dtbBytes: 0,
  });

  it('decoding reads a good record back and refuses another version, counts that do not add up, and non-gzip bytes', () => {
    const good = rec({ A: 'y' }, [['libc', 10]]);
    expect(decodeBootTcb(new Uint8Array(gzipJson(good)))).toEqual(good);
    const refuse = (r: unknown) => expect(() => decodeBootTcb(new Uint8Array(gzipJson(r)))).toThrow(expect.objectContaining({ code: 'E_TCB_RECORD' }));
    refuse({ ...good, version: 2 });
    refuse({ ...good, format: 'other' });
    refuse({ ...good, kernel: { ...good.kernel, optionsSet: 2 } });
    refuse({ ...good, native: { ...good.native, loadableBytes: 11 } });
    refuse({ ...good, initramfs: { ...good.initramfs, bytes: 1 } });
    refuse({ ...good, kernel: { ...good.kernel, configSha256: 'x' } });
    expect(() => decodeBootTcb(new TextEncoder().encode(JSON.stringify(good)))).toThrow(expect.objectContaining({ code: 'E_TCB_RECORD' }));
  });

  it('the FIT builder signs extra root properties with the configuration, and refuses names that are not "vendor,name" or taken', () => {
    const signer = ForgeRsaSigner.generate();
    const input = { description: 'd', arch: 'arm64' as const, timestamp: 1, keyName: 'dev', signer,
      kernel: { data: new Uint8Array(64), loadAddress: 0x40000000, entryAddress: 0x40000000 }, ramdisk: { data: new Uint8Array(32) }, fdt: { data: new Uint8Array(16) } };
    const key = [{ keyName: 'dev', publicKey: signer.publicKey() }];
    const fit = buildFit({ ...input, rootProperties: [{ name: 'signet,tcb', value: new Uint8Array([1, 2, 3]) }] });
    expect(getProp(decodeFdt(fit).root, 'signet,tcb')).toEqual(new Uint8Array([1, 2, 3]));
    expect(() => verifyFit(fit, key)).not.toThrow();
    const tree = decodeFdt(fit);
    tree.root.properties = tree.root.properties.map((p) => (p.name === 'signet,tcb' ? fdtProp(p.name, new Uint8Array([1, 2, 4])) : p));
    expect(() => verifyFit(encodeFdt(tree), key)).toThrow(expect.objectContaining({ code: 'E_FIT_SIGNATURE_INVALID' }));
    for (const name of ['timestamp', 'tcb', 'Signet,TCB', 'signet,']) {
      expect(() => buildFit({ ...input, rootProperties: [{ name, value: new Uint8Array(1) }] }), name).toThrow(expect.objectContaining({ code: 'E_FIT_BAD_INPUT' }));
    }
    expect(() => buildFit({ ...input, rootProperties: [{ name: 'a,b', value: new Uint8Array(1) }, { name: 'a,b', value: new Uint8Array(1) }] })).toThrow(expect.objectContaining({ code: 'E_FIT_BAD_INPUT' }));
  });

  it('diff: options added, removed, changed; sizes per library, with libraries only on one side', () => {
    const d = diffBootTcb(rec({ A: 'y', B: 'm', C: '1' }, [['libc', 10], ['libsodium', 5]]), rec({ A: 'y', B: 'y', D: 'y' }, [['libc', 12], ['libuv', 7]]));
    expect(d.options).toEqual({ added: [{ name: 'D', value: 'y' }], removed: [{ name: 'C', value: '1' }], changed: [{ name: 'B', before: 'm', after: 'y' }] });
    expect(d.native).toEqual([
      { name: 'libc', before: 10, after: 12, delta: 2 },
      { name: 'libuv', before: 0, after: 7, delta: 7 },
      { name: 'libsodium', before: 5, after: 0, delta: -5 },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Real boot images

const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const tool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const available = tool('aarch64-linux-gnu-gcc') && tool('arm-linux-gnueabihf-gcc') && tool('aarch64-linux-gnu-readelf') && tool('dtc');

interface TcbJson {
  kind: string;
  input: string;
  verified: boolean;
  report: BootTcbRecord;
  diff?: ReturnType<typeof diffBootTcb>;
}

describe.skipIf(!available)('signet tcb on real boot images', () => {
  let work: string;
  let keys: string;
  const ok = (r: { code: number; stderr: string; stdout: string }) => {
    expect(r.code, r.stderr + r.stdout).toBe(0);
    return r;
  };
  const tcbJson = (args: string[]): TcbJson => JSON.parse(ok(signet(['tcb', ...args, '--json'])).stdout) as TcbJson;
  const at = (f: string) => join(work, f);

  beforeAll(() => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'tcb-boot-'));
    keys = at('keys');
    ok(signet(['keys', 'init', '--dir', keys]));
    const t = { timeout: 600_000 };
    ok(signet(['fit', '--board', 'qemu-virt-arm64', '--keys', keys, '--out', at('arm64.itb'), '--key-dtb', at('pub.dtb')], t));
    ok(signet(['fit', '--board', 'xen-arm32', '--keys', keys, '--out', at('xen.itb')], t));
    ok(signet(['build', '--project', join(ROOT, 'examples', 'hello'), '--version', '1.0.0', '--security-counter', '1', '--keys', keys, '--out', at('hello.simg'), '--no-typecheck'], t));
    ok(signet(['disk', at('hello.simg'), '--board', 'qemu-virt-arm64', '--keys', keys, '--out', at('arm64.img')], t));
  }, 1_200_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * The kernel's .config and image as its source left them: Debian's package in the deb cache,
   * or the entry `signet kernel build` reports (sdk/kernel) for a kernel built from source.
   */
  function kernelFiles(r: BootTcbRecord): { config: string; image: string; built?: { configSha256: string; optionsSet: number; bytes: number; release: string } } {
    if (r.kernel.source === 'debian-binary') {
      const root = join(cacheRoot, 'debs', `${r.kernel.package}_${r.arch}`, 'boot');
      return { config: join(root, `config-${r.kernel.version}`), image: join(root, `vmlinuz-${r.kernel.version}`) };
    }
    const built = JSON.parse(ok(signet(['kernel', 'build', '--board', r.board, '--json'], { timeout: 3_000_000 })).stdout) as { dir: string; image: string; configSha256: string; optionsSet: number; bytes: number; release: string };
    return { config: join(built.dir, 'config'), image: join(built.dir, built.image), built };
  }

  /** /init as the FIT carries it: the ramdisk, unpacked (zstd, xz or gzip), its cpio entry. */
  function initOf(fit: string): Buffer {
    const ramdisk = getProp(findNode(decodeFdt(new Uint8Array(readFileSync(fit))).root, '/images/ramdisk')!, 'data')!;
    const cpio = unpackRamdisk(ramdisk);
    return Buffer.from(readCpio(new Uint8Array(cpio)).find((e) => e.path === 'init')!.data);
  }

  /** Loadable bytes by binutils' readelf: allocated sections that are not NOBITS. */
  function readelfLoadable(readelf: string, file: string): number {
    const out = spawnSync(readelf, ['-S', '-W', file], { encoding: 'utf8' }).stdout;
    let sum = 0;
    for (const line of out.split('\n')) {
      const m = /^\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+[0-9a-f]+\s+(\S*)/.exec(line);
      if (m && m[2] !== 'NOBITS' && m[2] !== 'NULL' && m[4]!.includes('A')) sum += parseInt(m[3]!, 16);
    }
    return sum;
  }

  /**
   * text + data of every member of the device's source-built archive (bootloader/native/device.ts, the newest build of
   * it in the cache), by binutils' size: an upper bound for what a link takes from it.
   */
  function deviceArchiveBytes(size: string, library: string, arch: string, archive: string): number {
    const lib = join(cacheRoot, 'native', 'lib');
    const dirs = readdirSync(lib).filter((d) => d.startsWith(`${library}-${arch}-`) && existsSync(join(lib, d, archive)));
    const newest = dirs.sort((a, b) => statSync(join(lib, b, archive)).mtimeMs - statSync(join(lib, a, archive)).mtimeMs)[0]!;
    const out = spawnSync(size, ['-t', join(lib, newest, archive)], { encoding: 'utf8' }).stdout.trim().split('\n');
    const total = out[out.length - 1]!.trim().split(/\s+/);
    return Number(total[0]) + Number(total[1]);
  }

  for (const [board, fit, readelf, size, arch] of [
    ['qemu-virt-arm64', 'arm64.itb', 'aarch64-linux-gnu-readelf', 'aarch64-linux-gnu-size', 'arm64'],
    ['xen-arm32', 'xen.itb', 'arm-linux-gnueabihf-readelf', 'arm-linux-gnueabihf-size', 'armhf'],
  ] as const) {
    it(`${board}: /init by library adds up to its loadable bytes, each library within what its archive holds`, () => {
      const j = tcbJson([at(fit)]);
      expect(j.kind).toBe('boot');
      expect(j.input).toBe('fit');
      const n = j.report.native;
      const init = initOf(at(fit));
      writeFileSync(at(`${board}-init`), init);
      expect(n.fileBytes).toBe(init.length);
      expect(n.loadableBytes).toBe(readelfLoadable(readelf, at(`${board}-init`)));
      const lib = (name: string) => n.parts.find((p) => p.library === name)?.bytes ?? 0;
      for (const name of ['musl', 'mbedtls', 'duktape', 'libuv', 'libsodium', 'signet', 'libgcc']) expect(lib(name), name).toBeGreaterThan(0);
      expect(n.parts.reduce((s, p) => s + p.bytes, 0)).toBe(n.loadableBytes);
      // Fill, stubs and unexplained bytes stay small: the attribution explains > 98 % of /init.
      expect(lib('other')).toBeLessThan(n.loadableBytes * 0.02);
      // The device's /init: musl and the libraries built from source (one mbed TLS archive).
      expect(lib('libuv')).toBeLessThanOrEqual(deviceArchiveBytes(size, 'libuv', arch, 'libuv.a'));
      const mbed = n.parts.find((p) => p.library === 'mbedtls')!;
      expect(Object.keys(mbed.members)).toEqual(['libmbedtls.a']);
      expect(mbed.members['libmbedtls.a']!).toBeLessThanOrEqual(deviceArchiveBytes(size, 'mbedtls', arch, 'libmbedtls.a'));
      expect(lib('libc')).toBe(0);
      // The initramfs parts: /init is the host binary itself.
      expect(j.report.initramfs.parts.find((p) => p.name === 'signet-host (/init)')!.bytes).toBe(init.length);
      expect(j.report.initramfs.parts.reduce((s, p) => s + p.bytes, 0)).toBe(j.report.initramfs.bytes);
    });

    it(`${board}: the kernel fields are those of the kernel's config and image (Debian's package, or the build from source)`, () => {
      const r = tcbJson([at(fit)]).report;
      const k = r.kernel;
      expect(r.arch).toBe(arch);
      const files = kernelFiles(r);
      expect(k.configSha256).toBe(createHash('sha256').update(readFileSync(files.config)).digest('hex'));
      const grep = spawnSync('grep', ['-c', '-E', '^CONFIG_[A-Za-z0-9_]+=', files.config], { encoding: 'utf8' });
      expect(k.optionsSet).toBe(Number(grep.stdout.trim()));
      expect(k.bytes).toBe(statSync(files.image).size);
      if (files.built) expect([k.version, k.configSha256, k.optionsSet, k.bytes]).toEqual([files.built.release, files.built.configSha256, files.built.optionsSet, files.built.bytes]);
      expect(k.source).toBe(JSON.parse(readFileSync(join(ROOT, 'boards', board, 'board.json'), 'utf8')).kernel.source ?? 'debian-binary');
      const stored = getProp(findNode(decodeFdt(new Uint8Array(readFileSync(at(fit)))).root, '/images/kernel')!, 'data')!;
      expect(k.fitBytes).toBe(stored.length);
    });
  }

  it('a disk image: the record of the FIT in its boot partition, verified with the U-Boot key', () => {
    const d = tcbJson([at('arm64.img'), '--key-dtb', at('pub.dtb')]);
    expect(d.input).toBe('disk');
    expect(d.verified).toBe(true);
    const f = tcbJson([at('arm64.itb')]);
    expect(d.report.kernel).toEqual(f.report.kernel);
    expect(d.report.native).toEqual(f.report.native);
    const text = ok(signet(['tcb', at('arm64.img'), '--key-dtb', at('pub.dtb')])).stdout;
    expect(text).toMatch(new RegExp(`^kernel {5}Linux \\S+, ${d.report.kernel.source} `, 'm'));
    expect(text).toMatch(/^ {2}mbedtls +[\d ]+ +[\d.]+%/m);
    expect(text).toMatch(/^ {2}musl +[\d ]+ +[\d.]+% +libc\.a/m);
    expect(text).toContain('record signed');
  });

  it('--vs: kernel options added, removed and changed are exactly those between the two configs; sizes per library', () => {
    const arm = tcbJson([at('arm64.itb')]).report;
    const xen = tcbJson([at('xen.itb')]).report;
    const j = tcbJson([at('xen.itb'), '--vs', at('arm64.itb')]);
    const options = (r: BootTcbRecord) => {
      const cfg = readFileSync(kernelFiles(r).config, 'utf8');
      return new Map(cfg.split('\n').filter((l) => l.startsWith('CONFIG_')).map((l) => [l.slice(7, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    };
    const older = options(arm);
    const newer = options(xen);
    const added = [...newer.keys()].filter((k) => !older.has(k)).sort();
    const removed = [...older.keys()].filter((k) => !newer.has(k)).sort();
    const changed = [...newer.keys()].filter((k) => older.has(k) && older.get(k) !== newer.get(k)).sort();
    expect(added.length + removed.length + changed.length).toBeGreaterThan(0);
    expect(j.diff!.options.added.map((o) => o.name)).toEqual(added);
    expect(j.diff!.options.removed.map((o) => o.name)).toEqual(removed);
    expect(j.diff!.options.changed.map((o) => `${o.name}:${o.before}:${o.after}`)).toEqual(changed.map((k) => `${k}:${older.get(k)}:${newer.get(k)}`));
    expect(j.diff!.kernel.bytes.delta).toBe(xen.kernel.bytes - arm.kernel.bytes);
    const libc = j.diff!.native.find((c) => c.name === 'musl')!;
    expect(libc.delta).toBe(xen.native.parts.find((p) => p.library === 'musl')!.bytes - arm.native.parts.find((p) => p.library === 'musl')!.bytes);
    const text = ok(signet(['tcb', at('xen.itb'), '--vs', at('arm64.itb')])).stdout;
    expect(text).toContain(`${added.length} added, ${removed.length} removed, ${changed.length} changed`);
    expect(text).toContain(`  - CONFIG_${removed[0]}=${older.get(removed[0]!)}`);
  });

  it('the record is covered by the FIT signature: an altered record fails verification', () => {
    const fit = new Uint8Array(readFileSync(at('arm64.itb')));
    const keysOf = requiredConfKeys(readPublicKeysFromDtb(new Uint8Array(readFileSync(at('pub.dtb')))));
    const tree = decodeFdt(fit);
    // Control: re-encoding the tree as it is keeps a FIT that verifies.
    expect(() => verifyFit(encodeFdt(tree), keysOf)).not.toThrow();
    const i = tree.root.properties.findIndex((p) => p.name === BOOT_TCB_PROPERTY);
    const rec = decodeBootTcb(tree.root.properties[i]!.value);
    const forged = { ...rec, native: { ...rec.native, parts: rec.native.parts.map((p) => (p.library === 'mbedtls' ? { ...p, library: 'wolfssl' } : p)) } };
    tree.root.properties[i] = fdtProp(BOOT_TCB_PROPERTY, new Uint8Array(gzipJson(forged)));
    writeFileSync(at('forged.itb'), encodeFdt(tree));
    // Unchecked, the forged record reads; checked, the signature refuses it.
    expect(tcbJson([at('forged.itb')]).report.native.parts.some((p) => p.library === 'wolfssl')).toBe(true);
    expectOneLineError(signet(['tcb', at('forged.itb'), '--key-dtb', at('pub.dtb')]), 'E_FIT_SIGNATURE_INVALID');
    expect(() => verifyFit(new Uint8Array(readFileSync(at('forged.itb'))), keysOf)).toThrow(expect.objectContaining({ code: 'E_FIT_SIGNATURE_INVALID' }));
  });

  it('bad input: one-line errors with stable codes', () => {
    // A boot image from before records: the same FIT without the property.
    const tree = decodeFdt(new Uint8Array(readFileSync(at('arm64.itb'))));
    tree.root.properties = tree.root.properties.filter((p) => p.name !== BOOT_TCB_PROPERTY);
    writeFileSync(at('old.itb'), encodeFdt(tree));
    expectOneLineError(signet(['tcb', at('old.itb')]), 'E_TCB_NO_RECORD');
    expect(signet(['tcb', at('old.itb')]).stderr).toContain('signet fit');
    expectOneLineError(signet(['tcb', at('arm64.itb'), '--vs', at('old.itb')]), 'E_TCB_NO_RECORD');
    expectOneLineError(signet(['tcb', join(ROOT, 'package.json')]), 'E_TCB_INPUT_KIND');
    expectOneLineError(signet(['tcb', at('arm64.itb'), '--vs', at('hello.simg')]), 'E_TCB_VS_KIND');
    expectOneLineError(signet(['tcb', at('hello.simg'), '--vs', at('arm64.itb')]), 'E_TCB_VS_KIND');
    expectOneLineError(signet(['tcb', at('missing.itb')]), 'E_FILE_NOT_FOUND');
    expectOneLineError(signet(['tcb', at('arm64.itb'), '--html', at('x.html')]), 'E_USAGE');
    expect(existsSync(at('x.html'))).toBe(false);
    // A record that is not gzip'd JSON.
    const bad = decodeFdt(new Uint8Array(readFileSync(at('arm64.itb'))));
    bad.root.properties = bad.root.properties.map((p) => (p.name === BOOT_TCB_PROPERTY ? fdtProp(p.name, new TextEncoder().encode('{}')) : p));
    writeFileSync(at('bad.itb'), encodeFdt(bad));
    expectOneLineError(signet(['tcb', at('bad.itb')]), 'E_TCB_RECORD');
  });
});

// The same board with its kernel built from Debian's source (sdk/kernel, kernel.source
// "debian-source") against Debian's binary kernel: a board copy in SIGNET_BOARDS with the same
// fragment, so the kernel cache entry is the one tests/kernel-build makes (its key has no board id).
describe.skipIf(!available)('signet tcb --vs: Debian binary kernel vs the minimal kernel built from source', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  const ok = (r: { code: number; stderr: string; stdout: string }) => {
    expect(r.code, r.stderr + r.stdout).toBe(0);
    return r;
  };
  const at = (f: string) => join(work, f);
  const BUILD = { timeout: 3_000_000 }; // a cold kernel build on a loaded 2-core machine; a liveness bound only

  beforeAll(() => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'tcb-kernel-'));
    const boards = at('boards');
    const base = join(ROOT, 'boards', 'qemu-virt-arm64');
    const json = JSON.parse(readFileSync(join(base, 'board.json'), 'utf8'));
    for (const [id, source] of [['tcb-binary', 'debian-binary'], ['tcb-source', 'debian-source']] as const) {
      mkdirSync(join(boards, id), { recursive: true });
      // Debian's cloud kernel runs in 28 MiB: it needs the roomy layout, not the minimal kernel's 32 MiB one.
      const loadAddresses = source === 'debian-binary' ? { kernel: '0x40400000', ramdisk: '0x48100000', fdt: '0x48000000', fit: '0x50000000' } : json.loadAddresses;
      writeFileSync(join(boards, id, 'board.json'), JSON.stringify({ ...json, id, loadAddresses, kernel: { ...json.kernel, source, version: '6.1' } }, null, 2));
      writeFileSync(join(boards, id, 'kernel.config'), readFileSync(join(base, 'kernel.config')));
    }
    env = { SIGNET_BOARDS: boards };
    ok(signet(['keys', 'init', '--dir', at('keys')], { env }));
    for (const id of ['tcb-binary', 'tcb-source']) ok(signet(['fit', '--board', id, '--keys', at('keys'), '--out', at(`${id}.itb`), '--key-dtb', at('pub.dtb')], { env, ...BUILD }));
  }, 3_600_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the source-built kernel is reported as sdk/kernel built it, and --vs names every option that differs', () => {
    const built = JSON.parse(ok(signet(['kernel', 'build', '--board', 'tcb-source', '--json'], { env, ...BUILD })).stdout) as { release: string; bytes: number; configSha256: string; optionsSet: number; sourcePackage: string; sourceVersion: string };
    const j = JSON.parse(ok(signet(['tcb', at('tcb-source.itb'), '--vs', at('tcb-binary.itb'), '--key-dtb', at('pub.dtb'), '--json'], { env })).stdout) as TcbJson;
    const k = j.report.kernel;
    expect(j.verified).toBe(true);
    expect(k.source).toBe('debian-source');
    expect(k.version).toBe(built.release);
    expect(k.configSha256).toBe(built.configSha256);
    expect(k.optionsSet).toBe(built.optionsSet);
    expect(k.bytes).toBe(built.bytes);
    expect(k.package).toContain(built.sourcePackage);
    const d = j.diff!;
    expect(d.kernel.sourceBefore).toBe('debian-binary');
    expect(d.kernel.sourceAfter).toBe('debian-source');
    expect(d.kernel.bytes.delta).toBeLessThan(0);
    // Every option of the two records is accounted for: unchanged + changed + added = newer, unchanged + changed + removed = older.
    const older = tcbOptions(at('tcb-binary.itb'), env);
    const newer = k.optionsSet;
    const same = Object.keys(j.report.kernelOptions).filter((o) => older[o] === j.report.kernelOptions[o]).length;
    expect(same + d.options.changed.length + d.options.added.length).toBe(newer);
    expect(same + d.options.changed.length + d.options.removed.length).toBe(Object.keys(older).length);
    // Hardening the minimal kernel turns on, and modules it turns off, show up by name.
    expect(d.options.removed.map((o) => o.name)).toContain('MODULES');
    // The initramfs of the source-built kernel carries no modules.
    expect(j.report.initramfs.parts.some((p) => p.name === 'kernel modules')).toBe(false);
    expect(d.initramfs.find((c) => c.name === 'kernel modules')!.after).toBe(0);
  });

  it('the source-built kernel is stored gzip (U-Boot inflates it), its initramfs zstd (CONFIG_RD_ZSTD), and the report says so', async () => {
    const built = JSON.parse(ok(signet(['kernel', 'build', '--board', 'tcb-source', '--json'], { env, ...BUILD })).stdout) as { dir: string; image: string };
    const report = (fit: string) => (JSON.parse(ok(signet(['tcb', fit, '--json'], { env })).stdout) as TcbJson).report;
    const root = decodeFdt(new Uint8Array(readFileSync(at('tcb-source.itb')))).root;
    const kernelNode = findNode(root, '/images/kernel')!;
    const stored = getProp(kernelNode, 'data')!;
    expect(new TextDecoder().decode(getProp(kernelNode, 'compression')!)).toBe('gzip\0');
    const image = gunzipSync(stored);
    expect(Buffer.from(image).equals(readFileSync(join(built.dir, built.image)))).toBe(true);
    expect(isZstd(getProp(findNode(root, '/images/ramdisk')!, 'data')!)).toBe(true);
    const r = report(at('tcb-source.itb'));
    expect([r.kernel.compression, r.kernel.fitBytes]).toEqual(['gzip', stored.length]);
    expect(r.kernel.fitBytes).toBeLessThan(r.kernel.bytes);
    const text = ok(signet(['tcb', at('tcb-source.itb'), '--key-dtb', at('pub.dtb')], { env })).stdout;
    expect(text).toMatch(/bytes, stored gzip [\d,]+/);
    // libdeflate's strongest level, smaller than zlib's -9 (what GNU gzip -9 makes).
    expect(stored.length).toBeLessThan(gzipSync(image, { level: 9 }).length);
    // Debian's binary kernel keeps its own gzip'd vmlinuz.
    expect(report(at('tcb-binary.itb')).kernel.compression).toBe('gzip');
  });
});

function tcbOptions(fit: string, env: NodeJS.ProcessEnv): Record<string, string> {
  const r = signet(['tcb', fit, '--json'], { env });
  return (JSON.parse(r.stdout) as TcbJson).report.kernelOptions;
}

function gzipJson(v: unknown): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(v)));
}
