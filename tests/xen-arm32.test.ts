/**
 * xen-arm32: Xen 4.17 (Debian's armhf hypervisor) boots dom0less under qemu-system-arm with
 * our guest as DomU 1, and the boot stage in that guest verifies the app from its flash.
 * Plus the device tree we hand Xen, decoded with our reader and cross-checked with dtc.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadBoard, partition } from '../sdk/board';
import { scaffoldProject } from '../sdk/build/scaffold';
import { decodeFdt, encodeFdt, findNode, getProp, readStringList } from '../sdk/fit/fdt';
import { decodeLayout } from '../sdk/image/format';
import { buildRelease } from '../sdk/image/release';
import { initKeys } from '../sdk/keys/keyset';
import { buildDisk } from '../sdk/disk/disk';
import { domULine, runXen, startXen } from '../sdk/disk/run-xen';
import { addDom0less, buildXenDtb, readDom0less, type Dom0lessConfig } from '../sdk/disk/xen-dt';
import { domUFlashBytes, domUFlashFromApp, domUFlashFromDiskFile } from '../sdk/disk/xen-flash';
import { checkQemuPlacement, dumpQemuDtb, qemuDtbAddress } from '../sdk/disk/xen-qemu';
import { XenError } from '../sdk/disk/xen-errors';
import { fetchXen, guestForApp, prepareXenBoot, type XenBootPlan } from '../sdk/disk/xen';
import { readCpio } from '../sdk/disk/cpio';
import { fetchKernel } from '../sdk/disk/kernel';
import { makeImage, makeKeySet } from './helpers/fixtures';
import { tempDir } from './helpers/boot';

const board = loadBoard('xen-arm32');

function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function config(over: Partial<Dom0lessConfig['domUs'][0]> = {}): Dom0lessConfig {
  return {
    xenBootargs: 'console=dtuart',
    domUs: [{
      name: 'domU1',
      memoryKb: 131072,
      cpus: 1,
      vpl011: true,
      kernel: { address: 0x42000000, size: 0x532200, bootargs: 'console=ttyAMA0 -- --halt' },
      ramdisk: { address: 0x49000000, size: 0x1234567 },
      ...over,
    }],
  };
}

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as XenError).code;
  }
  return undefined;
}

describe('the dom0less device tree', () => {
  let platform: Uint8Array;
  beforeAll(async () => {
    platform = await dumpQemuDtb(board);
  });

  test('extends QEMU\'s tree with /chosen dom0less nodes that read back as given', () => {
    const dtb = buildXenDtb(platform, config());
    const fdt = decodeFdt(dtb);
    expect(readDom0less(fdt)).toEqual(config());
    const chosen = findNode(fdt.root, '/chosen')!;
    expect(getProp(chosen, 'rng-seed')).toBeUndefined(); // dropped: it changes on every QEMU run
    const domU = findNode(fdt.root, '/chosen/domU1')!;
    expect(readStringList(getProp(domU, 'compatible')!)).toEqual(['xen,domain']);
    expect(getProp(domU, 'vpl011')!.length).toBe(0);
    const kernel = findNode(fdt.root, '/chosen/domU1/module@42000000')!;
    expect(readStringList(getProp(kernel, 'compatible')!)).toEqual(['multiboot,kernel', 'multiboot,module']);
    expect([...getProp(kernel, 'reg')!]).toEqual([0x42, 0, 0, 0, 0, 0x53, 0x22, 0]);
    // The rest of QEMU's tree is untouched: Xen needs its GIC, timer and UART.
    const orig = decodeFdt(platform);
    expect(findNode(fdt.root, '/intc@8000000')).toEqual(findNode(orig.root, '/intc@8000000'));
    expect(findNode(fdt.root, '/pl011@9000000')).toEqual(findNode(orig.root, '/pl011@9000000'));
    // Deterministic, and re-encoding our own output is the identity.
    expect(buildXenDtb(platform, config())).toEqual(dtb);
    expect(encodeFdt(decodeFdt(dtb))).toEqual(dtb);
  });

  test.skipIf(!hasTool('dtc'))('dtc reads the same tree', () => {
    const dir = tempDir('signet-xen-dtc-');
    const file = join(dir, 'xen.dtb');
    writeFileSync(file, buildXenDtb(platform, config()));
    const dts = execFileSync('dtc', ['-I', 'dtb', '-O', 'dts', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const domU = dts.slice(dts.indexOf('domU1 {'));
    expect(domU).toContain('compatible = "xen,domain";');
    expect(domU).toContain('memory = <0x00 0x20000>;');
    expect(domU).toContain('cpus = <0x01>;');
    expect(domU).toContain('vpl011;');
    expect(domU).toContain('compatible = "multiboot,kernel\\0multiboot,module";');
    expect(domU).toContain('reg = <0x42000000 0x532200>;');
    expect(domU).toContain('bootargs = "console=ttyAMA0 -- --halt";');
    expect(domU).toContain('compatible = "multiboot,ramdisk\\0multiboot,module";');
    expect(domU).toContain('reg = <0x49000000 0x1234567>;');
    expect(dts).toContain('xen,xen-bootargs = "console=dtuart";');
  });

  test('refuses modules outside RAM or on top of each other, and a tree that already has Xen nodes', () => {
    expect(code(() => buildXenDtb(platform, config({ ramdisk: { address: 0x42100000, size: 0x100000 } })))).toBe('E_XEN_ADDRESS');
    expect(code(() => buildXenDtb(platform, config({ ramdisk: { address: 0x7ff00000, size: 0x200000 } })))).toBe('E_XEN_ADDRESS');
    expect(code(() => buildXenDtb(platform, config({ kernel: { address: 0x1000, size: 0x100, bootargs: '' } })))).toBe('E_XEN_ADDRESS');
    const twice = decodeFdt(buildXenDtb(platform, config()));
    expect(code(() => addDom0less(twice, config()))).toBe('E_XEN_DTB');
  });

  test('the board\'s fdt address is where QEMU\'s direct boot puts the tree', () => {
    expect(qemuDtbAddress(platform)).toBe(Number.parseInt(board.loadAddresses.fdt, 16));
    const plan = {
      xen: { image: new Uint8Array(900_000) },
      kernel: { image: new Uint8Array(0x532200), address: 0x42000000, bootargs: '' },
      ramdisk: { image: new Uint8Array(0x100000), address: 0x49000000, bootBytes: 0, flashBytes: 0 },
      dtb: { image: new Uint8Array(0x4000), address: 0x48000000 },
      config: config(),
    } satisfies XenBootPlan;
    expect(() => checkQemuPlacement(plan, platform, board)).not.toThrow();
    expect(code(() => checkQemuPlacement({ ...plan, dtb: { ...plan.dtb, address: 0x45f00000 } }, platform, board))).toBe('E_XEN_ADDRESS');
    expect(code(() => checkQemuPlacement({ ...plan, ramdisk: { ...plan.ramdisk, address: 0x48004000 } }, platform, board))).toBe('E_XEN_ADDRESS');
  });
});

test('two preparations of the same inputs give byte-identical Xen boot files', async () => {
  const ks = await makeKeySet(1, 1);
  const img = await makeImage({ board: board.id, signers: [ks.targets[0].signer] });
  const rootJson = new TextDecoder().decode(ks.rootBytes);
  const xen = await fetchXen(board);
  const once = async () =>
    prepareXenBoot({ board, guest: await guestForApp(board, rootJson), flash: domUFlashFromApp(board, img), halt: true, platformDtb: await dumpQemuDtb(board) }, xen);
  const [x, y] = [await once(), await once()];
  // Digests, not element-wise compares: the ramdisk is tens of MiB.
  const files = (p: XenBootPlan) => [p.dtb.image, p.ramdisk.image, p.kernel.image, p.xen.image].map(sha256);
  expect(files(y)).toEqual(files(x));
  expect(x.kernel.bootargs).toBe('console=ttyAMA0 panic=-1 quiet -- --disk /signet/flash.img --halt');
  // The ramdisk is the boot initramfs followed by the flash archive, both whole cpio archives.
  expect(readCpio(x.ramdisk.image.subarray(x.ramdisk.bootBytes)).map((e) => e.path)).toEqual(['signet', 'signet/flash.img']);
  expect(readCpio(x.ramdisk.image.subarray(0, x.ramdisk.bootBytes)).map((e) => e.path)).toContain('signet/boot.js');
}, 300_000);

describe('the DomU flash file', () => {
  test('is the head of the board\'s flash up to the end of the state partition', () => {
    const st = partition(board, 'state');
    expect(domUFlashBytes(board)).toBe(st.offset + st.size);
    expect(partition(board, 'boot').offset).toBeGreaterThanOrEqual(st.offset + st.size); // boot comes last
    const bootFirst = { ...board, flash: { ...board.flash, partitions: [...board.flash.partitions.filter((p) => p.name !== 'state'), { name: 'state', offset: 100 * 1024 * 1024, size: 65536 }] } };
    expect(code(() => domUFlashBytes(bootFirst))).toBe('E_XEN_BOARD');
  });

  test('a fresh flash holds the app image at the start of slot A; a disk file gives its head', async () => {
    const ks = await makeKeySet(1, 1);
    const img = await makeImage({ board: board.id, signers: [ks.targets[0].signer] });
    const flash = domUFlashFromApp(board, img);
    const a = partition(board, 'slot_a').offset;
    expect(sha256(flash.subarray(a, a + img.length))).toBe(sha256(img));

    const file = join(tempDir('signet-xen-flash-'), 'disk.img');
    const disk = new Uint8Array(domUFlashBytes(board) + 4096);
    disk[0] = 7;
    disk[domUFlashBytes(board) - 1] = 9;
    writeFileSync(file, disk);
    const head = domUFlashFromDiskFile(board, file);
    expect(head.length).toBe(domUFlashBytes(board));
    expect([head[0], head[head.length - 1]]).toEqual([7, 9]);
    writeFileSync(file, disk.subarray(0, 1000));
    expect(code(() => domUFlashFromDiskFile(board, file))).toBe('E_DISK_NOT_A_DISK');
  });
});

describe.concurrent('Xen dom0less boots the guest (real Xen 4.17, real QEMU)', () => {
  test('the service built for xen-arm32 runs after boot[OK], its lines printed by Xen for DOM1', async () => {
    const dir = tempDir('signet-xen-run-');
    const keysDir = join(dir, 'keys');
    await initKeys({ dir: keysDir });
    const projectDir = join(dir, 'svc');
    await scaffoldProject(projectDir, { name: 'xen-svc', board: board.id });
    const out = join(dir, 'app.simg');
    await buildRelease({ projectDir, version: '1.4.0', securityCounter: 2, keysDir, out, typecheck: false });

    const r = await runXen({ board, appImage: new Uint8Array(readFileSync(out)), keysDir, halt: true });
    // The DomU ran the board's minimal kernel, built from Debian's source with boards/xen-arm32/kernel.config.
    const kernel = await fetchKernel(board);
    expect(kernel.source).toBe('debian-source');
    expect(r.plan.kernelBytes).toBe(kernel.kernel.length);
    expect(kernel.config).toMatch(/^# CONFIG_MODULES is not set$/m);
    const ok = r.lines.indexOf('boot[OK] slot=a version=1.4.0');
    const app = r.lines.indexOf('hello from xen-svc');
    expect(ok, r.rawLines.slice(-30).join('\n')).toBeGreaterThanOrEqual(0);
    expect(app).toBeGreaterThan(ok);
    expect(r.lines.indexOf('boot[HALT]')).toBeGreaterThan(app);
    expect(r.exitCode).toBe(0);
    // It really was Xen, with no dom0, and the guest's console went through Xen's vpl011.
    expect(r.rawLines.some((l) => l.startsWith('(XEN) Xen version 4.17'))).toBe(true);
    expect(r.rawLines).toContain('(XEN) *** LOADING DOMU cpus=1 memory=20000KB ***'); // 0x20000 KiB
    expect(r.rawLines.some((l) => l.includes('LOADING DOMAIN 0'))).toBe(false);
    expect(r.rawLines).toContain('(XEN) DOM1: hello from xen-svc');
    expect(domULine('(XEN) DOM1: boot[HALT]')).toEqual({ domain: 1, text: 'boot[HALT]' });
    expect(r.appLineMs).toBeGreaterThan(0);
    console.log(`xen-arm32: app line ${Math.round(r.appLineMs!)} ms after QEMU start, shut down after ${Math.round(r.ms)} ms`);
  }, 600_000);

  test('signet disk → signet run: a tampered slot A is refused inside the DomU, which falls back to slot B', async () => {
    const dir = tempDir('signet-xen-disk-');
    const keysDir = join(dir, 'keys');
    await initKeys({ dir: keysDir });
    const projectDir = join(dir, 'svc');
    await scaffoldProject(projectDir, { name: 'xen-disk-svc', board: board.id });
    const older = join(dir, 'v1.simg');
    const newer = join(dir, 'v2.simg');
    await buildRelease({ projectDir, version: '1.0.0', securityCounter: 1, keysDir, out: older, typecheck: false });
    await buildRelease({ projectDir, version: '2.0.0', securityCounter: 2, keysDir, out: newer, typecheck: false });
    const diskPath = join(dir, 'disk.img');
    const made = await buildDisk({ board, appImage: newer, slotBImage: older, keysDir, out: diskPath });

    // One byte of slot A's payload, on the disk itself.
    const newerBytes = new Uint8Array(readFileSync(newer));
    const diskBytes = new Uint8Array(readFileSync(diskPath));
    diskBytes[partition(board, 'slot_a').offset + decodeLayout(newerBytes).signedBytes.length + 4]! ^= 0x01;
    writeFileSync(diskPath, diskBytes);

    // The CLI's path: the FIT checked with the vendor's key, QEMU quit (status 0) once the DomU is done.
    const started = await startXen({ board, disk: diskPath, halt: true, keyDtb: made.boot.keyDtb });
    let exit: number | null;
    try {
      exit = await started.guest.waitExit(600_000);
    } finally {
      started.cleanup();
    }
    const lines = started.guest.transcript.split('\n').map((l) => l.replace(/\r/g, '')).map((l) => domULine(l)?.text ?? l);
    const refused = lines.indexOf('boot[FALLBACK] slot=a reason=E_DIGEST');
    const ok = lines.indexOf('boot[OK] slot=b version=1.0.0');
    expect(refused, lines.slice(-30).join('\n')).toBeGreaterThanOrEqual(0);
    expect(ok).toBeGreaterThan(refused);
    expect(lines.indexOf('hello from xen-disk-svc')).toBeGreaterThan(ok);
    expect(exit).toBe(0);
  }, 600_000);
});
