/**
 * xen-arm32: Xen 4.17 (built from Debian's source with static memory, sdk/xen) boots dom0less under qemu-system-arm with
 * our guest as DomU 1, and the boot stage in that guest verifies the app from its flash: QEMU's
 * NOR bank backed by the disk image file, passed through by Xen, so its state persists.
 * Plus the device trees we hand Xen, decoded with our reader and cross-checked with dtc.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
import { buildPassthroughDtb, checkEraseLayout, DOMU_FLASH_GUEST_ADDRESS, passthroughFlash, QEMU_VIRT_PFLASH, writeFreshFlash } from '../sdk/disk/xen-flash';
import { checkQemuPlacement, dumpQemuDtb, qemuDtbAddress, xenQemuArgs } from '../sdk/disk/xen-qemu';
import { XenError } from '../sdk/disk/xen-errors';
import { fetchXen, guestForApp, prepareXenBoot, type XenBootPlan } from '../sdk/disk/xen';
import { readCpio } from '../sdk/disk/cpio';
import { fetchKernel } from '../sdk/disk/kernel';
import { flashLayout } from '../sdk/disk/disk';
import { PERSIST_APP, statePersisted, xenPersistScenario } from './helpers/xen-persist';
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
      ramdisk: { image: new Uint8Array(0x100000), address: 0x49000000, flashCopyBytes: 0 },
      passthrough: {
        partialDtb: { image: new Uint8Array(0x200), address: 0x49100000 },
        flash: { file: '/tmp/disk,1.img', pflashUnit: 1, hostAddress: 0x04000000, guestAddress: 0x08000000, size: 0x4000000 },
      },
      dtb: { image: new Uint8Array(0x4000), address: 0x48000000 },
      config: config(),
    } satisfies XenBootPlan;
    expect(() => checkQemuPlacement(plan, platform, board)).not.toThrow();
    expect(code(() => checkQemuPlacement({ ...plan, dtb: { ...plan.dtb, address: 0x45f00000 } }, platform, board))).toBe('E_XEN_ADDRESS');
    expect(code(() => checkQemuPlacement({ ...plan, ramdisk: { ...plan.ramdisk, address: 0x48004000 } }, platform, board))).toBe('E_XEN_ADDRESS');
    expect(code(() => checkQemuPlacement({ ...plan, passthrough: { ...plan.passthrough, partialDtb: { ...plan.passthrough.partialDtb, address: 0x490ff000 } } }, platform, board))).toBe('E_XEN_ADDRESS');
    // The flash file is QEMU's second NOR bank (a comma in its name doubled for QEMU's option parser).
    const args = xenQemuArgs(board, plan, { xen: 'x', dtb: 'd', kernel: 'k', ramdisk: 'r', partialDtb: 'p', qmpSocket: 'q' });
    expect(args).toContain('if=pflash,unit=1,format=raw,file=/tmp/disk,,1.img');
    expect(args).toContain('loader,file=p,addr=0x49100000,force-raw=on');
    // Without passthrough (a RAM copy), neither the bank nor the partial tree is given to QEMU.
    const { passthrough: _, ...ramCopy } = plan;
    expect(xenQemuArgs(board, ramCopy, { xen: 'x', dtb: 'd', kernel: 'k', ramdisk: 'r', partialDtb: 'p', qmpSocket: 'q' }).join(' ')).not.toMatch(/pflash|file=p,/);
  });
});

describe('the flash Xen passes through to the DomU', () => {
  let platform: Uint8Array;
  beforeAll(async () => {
    platform = await dumpQemuDtb(board);
  });

  test('is QEMU virt\'s second NOR bank, the whole board flash, seen by the guest at a free guest address', () => {
    const f = passthroughFlash(board, decodeFdt(platform));
    expect(f).toEqual({ hostAddress: 0x04000000, guestAddress: DOMU_FLASH_GUEST_ADDRESS, size: board.flash.size, bankWidth: 4, eraseBlock: 256 * 1024 });
    expect(board.flash.size).toBe(QEMU_VIRT_PFLASH.size); // a `signet disk` image is exactly the bank
    expect(board.flash.device).toBe('/dev/mtdblock0');
    // The partial tree, as Xen's docs/misc/arm/passthrough.txt wants it.
    const tree = decodeFdt(buildPassthroughDtb(f));
    const node = findNode(tree.root, '/passthrough/flash@8000000')!;
    expect(readStringList(getProp(findNode(tree.root, '/passthrough')!, 'compatible')!)).toEqual(['simple-bus']);
    expect(readStringList(getProp(node, 'compatible')!)).toEqual(['cfi-flash']);
    expect([...getProp(node, 'xen,reg')!]).toEqual([0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0]);
    expect([...getProp(node, 'reg')!]).toEqual([0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0]);
    expect(getProp(node, 'xen,force-assign-without-iommu')!.length).toBe(0);
    expect(getProp(node, 'xen,path')).toBeUndefined(); // no IOMMU, no interrupts: nothing for Xen to look up
  });

  test.skipIf(!hasTool('dtc'))('dtc reads the same partial tree', () => {
    const file = join(tempDir('signet-xen-pdt-'), 'partial.dtb');
    writeFileSync(file, buildPassthroughDtb(passthroughFlash(board, decodeFdt(platform))));
    const dts = execFileSync('dtc', ['-I', 'dtb', '-O', 'dts', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(dts).toContain('xen,reg = <0x00 0x4000000 0x00 0x4000000 0x00 0x8000000>;');
    expect(dts).toContain('bank-width = <0x04>;');
    expect(dts).toContain('xen,force-assign-without-iommu;');
  });

  test('refuses a board whose flash is not the bank, whose device is not the guest\'s mtdblock, or whose areas share an erase block', () => {
    const fdt = decodeFdt(platform);
    expect(code(() => passthroughFlash({ ...board, flash: { ...board.flash, size: 128 * 1024 * 1024 } }, fdt))).toBe('E_XEN_BOARD');
    expect(code(() => passthroughFlash({ ...board, flash: { ...board.flash, device: '/dev/xvda' } }, fdt))).toBe('E_XEN_BOARD');
    const st = flashLayout(board).state;
    const withState = (offset: number, size: number) => ({ ...board, flash: { ...board.flash, partitions: [...board.flash.partitions.filter((p) => p.name !== 'state'), { name: 'state', offset, size }] } });
    expect(() => checkEraseLayout(board, QEMU_VIRT_PFLASH.eraseBlock)).not.toThrow();
    expect(code(() => checkEraseLayout(withState(st.offset, 64 * 1024), QEMU_VIRT_PFLASH.eraseBlock))).toBe('E_XEN_BOARD');
    expect(code(() => checkEraseLayout(withState(st.offset + 64 * 1024, st.size), QEMU_VIRT_PFLASH.eraseBlock))).toBe('E_XEN_BOARD');
    // The 512 KiB state partition of before: each half's state copy, chain area and config copy in one erase block.
    expect(code(() => checkEraseLayout(withState(st.offset, 512 * 1024), QEMU_VIRT_PFLASH.eraseBlock))).toBe('E_XEN_BOARD');
    // A board that does not declare the bank's erase block gets the sector-atomic layout.
    expect(code(() => checkEraseLayout({ ...board, flash: { ...board.flash, eraseBlockSize: undefined } }, QEMU_VIRT_PFLASH.eraseBlock))).toBe('E_XEN_BOARD');
    // A slot sharing an erase block with its neighbour.
    const slotB = board.flash.partitions.find((p) => p.name === 'slot_b')!;
    const shifted = { ...board, flash: { ...board.flash, partitions: [...board.flash.partitions.filter((p) => p.name !== 'slot_b'), { ...slotB, offset: slotB.offset + 4096 }] } };
    expect(code(() => checkEraseLayout(shifted, QEMU_VIRT_PFLASH.eraseBlock))).toBe('E_XEN_BOARD');
    // A machine without NOR flash at the bank cannot give the guest its flash.
    const noFlash = decodeFdt(platform);
    noFlash.root.children = noFlash.root.children.filter((n) => !n.name.startsWith('flash@'));
    expect(code(() => passthroughFlash(board, noFlash))).toBe('E_XEN_DTB');
  });

  test('a fresh flash file is the whole bank, with the app image at the start of slot A', async () => {
    const ks = await makeKeySet(1, 1);
    const img = await makeImage({ board: board.id, signers: [ks.targets[0].signer] });
    const file = join(tempDir('signet-xen-flash-'), 'flash.img');
    writeFreshFlash(board, img, file);
    const bytes = new Uint8Array(readFileSync(file));
    expect(bytes.length).toBe(QEMU_VIRT_PFLASH.size);
    const a = partition(board, 'slot_a').offset;
    expect(sha256(bytes.subarray(a, a + img.length))).toBe(sha256(img));
    // Too large for slot A: refused, and no file left behind.
    const big = join(tempDir('signet-xen-flash-'), 'big.img');
    expect(code(() => writeFreshFlash(board, new Uint8Array(partition(board, 'slot_a').size + 1), big))).toBe('E_DISK_TOO_LARGE');
    expect(existsSync(big)).toBe(false);
  });
});

test('two preparations of the same inputs give byte-identical Xen boot files', async () => {
  const ks = await makeKeySet(1, 1);
  const img = await makeImage({ board: board.id, signers: [ks.targets[0].signer] });
  const rootJson = new TextDecoder().decode(ks.rootBytes);
  const xen = await fetchXen(board);
  const flashFile = join(tempDir('signet-xen-prep-'), 'flash.img');
  writeFreshFlash(board, img, flashFile);
  const once = async () =>
    prepareXenBoot({ board, guest: await guestForApp(board, rootJson), flashFile, halt: true, platformDtb: await dumpQemuDtb(board) }, xen);
  const [x, y] = [await once(), await once()];
  const files = (p: XenBootPlan) => [p.dtb.image, p.ramdisk.image, p.passthrough!.partialDtb.image, p.kernel.image, p.xen.image].map(sha256);
  expect(files(y)).toEqual(files(x));
  // The stage opens the board's flash device (the passed-through NOR), so only --halt follows "--".
  expect(x.kernel.bootargs).toBe('console=ttyAMA0 panic=-1 quiet -- --halt');
  // The ramdisk is the boot initramfs alone: the flash no longer travels in it.
  expect(readCpio(x.ramdisk.image).map((e) => e.path)).toContain('signet/boot.dukbc');
  expect(readCpio(x.ramdisk.image).map((e) => e.path)).not.toContain('signet/boot.js');
  expect(readCpio(x.ramdisk.image).map((e) => e.path)).not.toContain('signet/flash.img');
  // /chosen/domU1 names the partial tree as a module, after the ramdisk, and it is the one planned.
  const domU = readDom0less(decodeFdt(x.dtb.image)).domUs[0]!;
  const pt = x.passthrough!;
  expect(domU.deviceTree).toEqual({ address: pt.partialDtb.address, size: pt.partialDtb.image.length });
  expect(pt.partialDtb.address).toBeGreaterThanOrEqual(x.ramdisk.address + x.ramdisk.image.length);
  // The board's DomU is direct-mapped (Xen built from source with static memory): the bank is 1:1.
  expect(pt.flash).toMatchObject({ file: flashFile, pflashUnit: 1, hostAddress: 0x04000000, guestAddress: 0x04000000 });
  expect(domU.staticMemory).toEqual({ address: 0x60000000, size: 128 * 1024 * 1024 });
  expect(x.ramdisk.flashCopyBytes).toBe(0);
}, 300_000);

test('Debian\'s armmp kernel, which cannot drive the NOR bank, gets the head of the flash as a RAM copy in its ramdisk instead', async () => {
  const armmp = { ...board, kernel: { ...board.kernel, source: 'debian-binary' as const } };
  const ks = await makeKeySet(1, 1);
  const img = await makeImage({ board: board.id, signers: [ks.targets[0].signer] });
  const flashFile = join(tempDir('signet-xen-copy-'), 'flash.img');
  writeFreshFlash(board, img, flashFile);
  const guest = { kernel: new Uint8Array(0x100000), initramfs: new Uint8Array(0x80000), bootargs: 'console=ttyAMA0 panic=-1 quiet' };
  const p = prepareXenBoot({ board: armmp, guest, flashFile, halt: true, platformDtb: await dumpQemuDtb(board) }, new Uint8Array(900_000));
  expect(p.passthrough).toBeUndefined();
  expect(p.kernel.bootargs).toBe('console=ttyAMA0 panic=-1 quiet -- --disk /signet/flash.img --halt');
  expect(readDom0less(decodeFdt(p.dtb.image)).domUs[0]!.deviceTree).toBeUndefined();
  // The copy: the flash file from offset 0 to the end of the state partition, after the boot initramfs.
  const copy = readCpio(p.ramdisk.image.subarray(guest.initramfs.length));
  const head = copy.find((e) => e.path === 'signet/flash.img')!;
  const st = partition(board, 'state');
  expect(p.ramdisk.flashCopyBytes).toBe(p.ramdisk.image.length - guest.initramfs.length);
  expect(sha256(head.data!)).toBe(sha256(new Uint8Array(readFileSync(flashFile)).subarray(0, st.offset + st.size)));
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

  test('state persists across Xen reboots: a security floor raised by a confirmed update survives, and an older image is then refused', async () => {
    const r = await xenPersistScenario(board, tempDir('signet-xen-persist-'));
    // Boot 1: v2, staged in slot B by the install API, trial-boots and its app confirms.
    const trial = r.first.lines.indexOf('boot[TRIAL] slot=b version=2.0.0 tries=2');
    const confirmed = r.first.lines.indexOf('boot[CONFIRM] slot=b version=2.0.0 floor=2');
    expect(trial, r.first.rawLines.slice(-30).join('\n')).toBeGreaterThanOrEqual(0);
    expect(confirmed).toBeGreaterThan(trial);
    expect(r.first.exitCode).toBe(0);
    // Written through to the disk file by the guest (NOR bank → mtdblock → the boot stage).
    expect(r.stateAfterFirst).toMatchObject({ securityFloor: 2, active: 'b', slotB: 'good', lastResult: 'ok' });
    // Boot 2, Xen started again from the same file with v1 (validly signed, counter 1) back in slot B:
    // the floor is still 2, so neither slot boots.
    const refusedB = r.second.lines.indexOf('boot[FALLBACK] slot=b reason=E_ROLLBACK');
    const refusedA = r.second.lines.indexOf('boot[FALLBACK] slot=a reason=E_ROLLBACK');
    expect(refusedB, r.second.rawLines.slice(-30).join('\n')).toBeGreaterThanOrEqual(0);
    expect(refusedA).toBeGreaterThan(refusedB);
    expect(r.second.lines.some((l) => l.startsWith('boot[RECOVERY] reason=E_NO_BOOTABLE_SLOT'))).toBe(true);
    expect(r.second.lines.some((l) => l.startsWith('boot[OK]'))).toBe(false);
    expect(r.second.lines).not.toContain(`hello from ${PERSIST_APP}`);
    expect(r.second.exitCode).toBe(1);
    expect(r.stateAfterSecond?.securityFloor).toBe(2);
    expect(statePersisted(r)).toBe(true);
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
