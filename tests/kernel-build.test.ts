// `signet kernel build`: qemu-virt-arm64's minimal kernel, built for real from Debian's
// linux-source-6.1 with boards/qemu-virt-arm64/kernel.config (the test run's globalSetup
// builds it once; here it comes from the cache). A fragment option the source does not know, or
// one Kconfig drops, fails before compiling with E_KERNEL_CONFIG and leaves no cache entry. A
// second, cold build into another cache folder gives the same kernel bytes and the same boot
// image. A board that keeps "debian-binary" still gets Debian's kernel and its modules.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCpio } from '../sdk/disk/cpio';
import { decodeFdt, findNode, getProp } from '../sdk/fit/fdt';
import { parseDotConfig, parseFragment } from '../sdk/kernel/config';
import { expectOneLineError, ROOT, signet } from './helpers/cli';
import { unpack, unpackRamdisk } from './helpers/unpack';

const BOARD = 'qemu-virt-arm64';
const fragmentPath = join(ROOT, 'boards', BOARD, 'kernel.config');
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const SOURCE = { source: 'debian-source', version: '6.1' };
const COLD_BUILD = { timeout: 3_600_000 }; // a cold kernel build on a loaded 2-core machine: a liveness bound only

interface BuildJson {
  release: string;
  arch: string;
  image: string;
  bytes: number;
  configSha256: string;
  optionsSet: number;
  fragmentOptions: number;
  sourcePackage: string;
  sourceVersion: string;
  key: string;
  dir: string;
  cached: boolean;
}

let work: string;
let boardsDir: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-kernel-'));
  boardsDir = join(work, 'boards');
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A board folder (via SIGNET_BOARDS) like qemu-virt-arm64 under another id, with its own fragment. */
/** Debian's cloud kernel runs in 28 MiB: it needs the roomy layout, not the minimal kernel's 32 MiB one. */
const DEBIAN_KERNEL_LAYOUT = { kernel: '0x40400000', ramdisk: '0x48100000', fdt: '0x48000000', fit: '0x50000000' };

function tempBoard(id: string, kernel: Record<string, unknown>, fragment?: string): Record<string, string> {
  const dir = join(boardsDir, id);
  mkdirSync(dir, { recursive: true });
  const json = JSON.parse(readFileSync(join(ROOT, 'boards', BOARD, 'board.json'), 'utf8'));
  json.id = id;
  json.kernel = { ...json.kernel, ...kernel };
  for (const [k, v] of Object.entries(kernel)) if (v === undefined) delete json.kernel[k];
  if (json.kernel.source === 'debian-binary') json.loadAddresses = DEBIAN_KERNEL_LAYOUT;
  writeFileSync(join(dir, 'board.json'), JSON.stringify(json, null, 2));
  if (fragment !== undefined) writeFileSync(join(dir, 'kernel.config'), fragment);
  return { SIGNET_BOARDS: boardsDir };
}

function build(boardId: string, env: Record<string, string> = {}, timeout = 600_000): BuildJson {
  const r = signet(['kernel', 'build', '--board', boardId, '--json'], { env, timeout });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe(''); // quiet when stderr is not a terminal
  return JSON.parse(r.stdout) as BuildJson;
}

const cacheEntries = (cache: string) => (existsSync(join(cache, 'kernels')) ? readdirSync(join(cache, 'kernels')).sort() : []);

describe('the qemu-virt-arm64 kernel from Debian source', () => {
  it('builds (once per run, then cached) with every fragment option kept, no modules, the guest drivers built in', () => {
    const k = build(BOARD);
    expect(k).toMatchObject({ arch: 'arm64', image: 'Image', sourcePackage: 'linux-source-6.1' });
    expect(k.release).toMatch(/^6\.1\.\d+$/);
    const dpkg = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'linux-source-6.1'], { encoding: 'utf8' }).stdout;
    expect(k.sourceVersion).toBe(dpkg); // the package version is part of the key and the report
    const image = readFileSync(join(k.dir, 'Image'));
    expect(image.length).toBe(k.bytes);
    expect(image.subarray(56, 60).toString('latin1')).toBe('ARM\x64');

    // Read back independently of the build's own check: the final .config has every value.
    const config = parseDotConfig(readFileSync(join(k.dir, 'config'), 'utf8'));
    const fragment = parseFragment(readFileSync(fragmentPath, 'utf8'), fragmentPath);
    expect(k.fragmentOptions).toBe(fragment.length);
    for (const o of fragment) expect(config.get(o.name) ?? 'n', o.name).toBe(o.value);
    expect(config.get('CONFIG_MODULES') ?? 'n').toBe('n');
    for (const o of ['CONFIG_VIRTIO_BLK', 'CONFIG_VIRTIO_MMIO', 'CONFIG_VIRTIO_PCI', 'CONFIG_VIRTIO_NET', 'CONFIG_SERIAL_AMBA_PL011_CONSOLE', 'CONFIG_STACKPROTECTOR_STRONG', 'CONFIG_HARDENED_USERCOPY',
      'CONFIG_WATCHDOG', 'CONFIG_WATCHDOG_CORE', 'CONFIG_I6300ESB_WDT']) { // the watchdog the A/B boot fallback relies on (QEMU's i6300esb)
      expect(config.get(o), o).toBe('y');
    }
    // The kernel never feeds a watchdog the firmware left running: a hang before /dev/watchdog is opened resets.
    expect(config.get('CONFIG_WATCHDOG_HANDLE_BOOT_ENABLED') ?? 'n').toBe('n');
    // No partition-table parser (MSDOS and EFI are on by default): the guest reads its flash by
    // offset and never opens /dev/vdaN, so the kernel neither reads nor parses a table at boot.
    expect([...config].filter(([name, v]) => /^CONFIG_\w+_PARTITION$/.test(name) && v !== 'n').map(([name]) => name)).toEqual([]);
    expect(k.optionsSet).toBe([...config.values()].filter((v) => v !== 'n').length);
    expect(k.optionsSet).toBeLessThan(700); // tinyconfig + the fragment, not a distribution's thousands

    // A second call is a cache hit with the same answer.
    const again = build(BOARD);
    expect(again.cached).toBe(true);
    expect(again).toMatchObject({ key: k.key, configSha256: k.configSha256, bytes: k.bytes });
  }, COLD_BUILD.timeout);

  it('signet fit puts it in the boot image with an initramfs that loads no modules', () => {
    const keys = join(work, 'keys');
    expect(signet(['keys', 'init', '--dir', keys]).code).toBe(0);
    const r = signet(['fit', '--board', BOARD, '--keys', keys, '--out', join(work, 'min.itb'), '--json'], { timeout: 600_000 });
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    const k = build(BOARD);
    expect(info).toMatchObject({ kernel: k.release, kernelPackage: `linux-source-6.1 ${k.sourceVersion}`, kernelBytes: k.bytes, modules: [] });
    const root = decodeFdt(new Uint8Array(readFileSync(join(work, 'min.itb')))).root;
    const kernel = unpack('gzip', getProp(findNode(root, '/images/kernel')!, 'data')!);
    expect(kernel.equals(readFileSync(join(k.dir, 'Image')))).toBe(true);
    const files = readCpio(new Uint8Array(unpackRamdisk(getProp(findNode(root, '/images/ramdisk')!, 'data')!)));
    expect(files.some((f) => f.path === 'signet/modules' || f.path.startsWith('lib/modules'))).toBe(false);
  }, 600_000);
});

describe('E_KERNEL_CONFIG: the fragment is checked against the final config before compiling', () => {
  const base = () => readFileSync(fragmentPath, 'utf8');

  it('a line that is not kernel config syntax, or sets an option twice differently, is refused with its line', () => {
    const bad = (text: string) => {
      try {
        parseFragment(text, 'k.config');
      } catch (e) {
        return e as { code: string; message: string };
      }
      return undefined;
    };
    expect(bad('CONFIG_A=y\nCONFIG_B y\n')).toMatchObject({ code: 'E_KERNEL_CONFIG', message: expect.stringContaining('k.config:2: "CONFIG_B y"') });
    expect(bad('CONFIG_A=y\n# CONFIG_A is not set\n')).toMatchObject({ code: 'E_KERNEL_CONFIG', message: 'k.config:2: CONFIG_A is set to n here and to y on line 1' });
    expect(bad('CONFIG_A=yes\n')?.code).toBe('E_KERNEL_CONFIG');
    expect(parseFragment('# c\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x y"\nCONFIG_D=0x10\n', 'k')).toEqual([
      { name: 'CONFIG_A', value: 'y', line: 2 },
      { name: 'CONFIG_B', value: 'n', line: 3 },
      { name: 'CONFIG_C', value: '"x y"', line: 4 },
      { name: 'CONFIG_D', value: '0x10', line: 5 },
    ]);
  });

  it('an option the source does not know fails with its name and line, and leaves nothing in the cache', () => {
    const before = cacheEntries(cacheRoot);
    const env = tempBoard('kcfg-unknown', SOURCE, base() + 'CONFIG_SIGNET_NO_SUCH_OPTION=y\n');
    const r = signet(['kernel', 'build', '--board', 'kcfg-unknown'], { env, timeout: 600_000 });
    expectOneLineError(r, 'E_KERNEL_CONFIG');
    const line = base().split('\n').length;
    expect(r.stderr).toContain(`kernel.config:${line}: CONFIG_SIGNET_NO_SUCH_OPTION is not an option Linux 6.1`);
    expect(cacheEntries(cacheRoot)).toEqual(before); // no entry, no build folder, no lock
  }, 600_000);

  it('an option Kconfig drops for an unmet dependency fails with its name; so does signet fit', () => {
    const before = cacheEntries(cacheRoot);
    // Kernel BTI: a hardening option Linux 6.1 refuses with GCC ("depends on !CC_IS_GCC", GCC bug 106671).
    const env = tempBoard('kcfg-dropped', SOURCE, base() + '# a hardening option whose dependency is not met\nCONFIG_ARM64_BTI_KERNEL=y\n');
    const r = signet(['kernel', 'build', '--board', 'kcfg-dropped'], { env, timeout: 600_000 });
    expectOneLineError(r, 'E_KERNEL_CONFIG');
    expect(r.stderr).toContain('CONFIG_ARM64_BTI_KERNEL=y was dropped by Kconfig (final value: not set): a dependency is not met (see its "depends on" in arch/arm64/Kconfig)');
    const keys = join(work, 'keys-dropped');
    expect(signet(['keys', 'init', '--dir', keys]).code).toBe(0);
    const fit = signet(['fit', '--board', 'kcfg-dropped', '--keys', keys, '--out', join(work, 'dropped.itb')], { env, timeout: 600_000 });
    expectOneLineError(fit, 'E_KERNEL_CONFIG');
    expect(existsSync(join(work, 'dropped.itb'))).toBe(false);
    expect(cacheEntries(cacheRoot)).toEqual(before);
  }, 600_000);

  it('an option set as a module (=m) fails: modules are off', () => {
    const env = tempBoard('kcfg-module', SOURCE, base().replace('CONFIG_VIRTIO_NET=y', 'CONFIG_VIRTIO_NET=m'));
    const r = signet(['kernel', 'build', '--board', 'kcfg-module'], { env, timeout: 600_000 });
    expectOneLineError(r, 'E_KERNEL_CONFIG');
    expect(r.stderr).toContain('CONFIG_VIRTIO_NET=m was dropped by Kconfig');
    expect(r.stderr).toContain('modules are off');
  }, 600_000);
});

describe('reproducible', () => {
  it('a cold build in another cache folder gives the same kernel bytes and the same boot image', () => {
    const k = build(BOARD);
    // Another cache at another path, with no kernels: the kernel is configured and compiled again
    // from nothing, from a source tree unpacked at another path. That tree is kept between runs
    // (unpacking takes ~25 s, deleting its ~80,000 files minutes on this disk), the kernels are
    // not; the rest of the cache (Debian packages, the C host) is shared, it is not under test.
    const cold = join(cacheRoot, 'kernel-repro-cache');
    rmSync(join(cold, 'kernels'), { recursive: true, force: true });
    mkdirSync(cold, { recursive: true });
    for (const d of ['debs', 'native', 'gzip']) {
      if (existsSync(join(cacheRoot, d)) && !existsSync(join(cold, d))) symlinkSync(join(cacheRoot, d), join(cold, d));
    }
    const env = { SIGNET_CACHE: cold };
    const k2 = build(BOARD, env, COLD_BUILD.timeout);
    expect(k2.cached).toBe(false);
    expect(k2.dir.startsWith(cold)).toBe(true);
    expect(k2.key).toBe(k.key);
    expect(readFileSync(join(k2.dir, 'Image')).equals(readFileSync(join(k.dir, 'Image')))).toBe(true);
    expect(readFileSync(join(k2.dir, 'config'), 'utf8')).toBe(readFileSync(join(k.dir, 'config'), 'utf8'));

    const keys = join(work, 'keys-repro');
    expect(signet(['keys', 'init', '--dir', keys]).code).toBe(0);
    const fit = (name: string, extra: Record<string, string>) => {
      const r = signet(['fit', '--board', BOARD, '--keys', keys, '--out', join(work, name)], { env: { SOURCE_DATE_EPOCH: '1700000000', ...extra }, timeout: 600_000 });
      expect(r.code, r.stderr).toBe(0);
      return readFileSync(join(work, name));
    };
    expect(fit('warm.itb', {}).equals(fit('cold.itb', env))).toBe(true);
    rmSync(join(cold, 'kernels'), { recursive: true, force: true });
  }, COLD_BUILD.timeout);
});

describe('kernel.source "debian-binary"', () => {
  it("keeps Debian's cloud kernel and loads its virtio modules from the initramfs; there is nothing to build", () => {
    const env = tempBoard('kbin-arm64', { source: 'debian-binary', version: undefined });
    const keys = join(work, 'keys-bin');
    expect(signet(['keys', 'init', '--dir', keys]).code).toBe(0);
    const r = signet(['fit', '--board', 'kbin-arm64', '--keys', keys, '--out', join(work, 'bin.itb'), '--json'], { env, timeout: 600_000 });
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.kernel).toMatch(/^6\.1\.\d+-\d+-cloud-arm64$/);
    expect(info.kernelPackage).toMatch(/^linux-image-.*-cloud-arm64/);
    expect(info.modules).toEqual(expect.arrayContaining(['virtio_blk', 'virtio_mmio', 'virtio_net']));
    // /init's load order in the initramfs: dependencies first, the network driver last.
    const root = decodeFdt(new Uint8Array(readFileSync(join(work, 'bin.itb')))).root;
    const files = readCpio(new Uint8Array(unpackRamdisk(getProp(findNode(root, '/images/ramdisk')!, 'data')!)));
    const order = new TextDecoder().decode(files.find((f) => f.path === 'signet/modules')!.data).trim().split('\n');
    expect(order).toContain('/lib/modules/virtio_blk.ko');
    expect(order[order.length - 1]).toBe('/lib/modules/virtio_net.ko');
    expect(order.indexOf('/lib/modules/net_failover.ko')).toBeGreaterThan(order.indexOf('/lib/modules/virtio_blk.ko'));
    expect(order.every((p) => files.some((f) => '/' + f.path === p))).toBe(true);
    expectOneLineError(signet(['kernel', 'build', '--board', 'kbin-arm64'], { env }), 'E_KERNEL_SOURCE');
  }, 600_000);
});
