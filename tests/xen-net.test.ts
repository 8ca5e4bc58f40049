// The Xen/arm32 DomU on the network (issue 14): examples/router-admin, built for xen-arm32, put on a
// disk by `signet disk`, given its TLS key and certificate by `signet device provision --issue`,
// booted with `signet run --board xen-arm32 --net user --forward H:443` on Xen 4.17 built from
// Debian's source (static memory, direct-mapped DomU) under qemu-system-arm, its NIC QEMU's
// virtio-net-device passed through by Xen. The host asks it over HTTPS through the forwarded port,
// verifying it against keys/vendor-ca.crt. One boot. Plus the refusals before QEMU starts.
//
// Timeouts are liveness bounds, not assertions.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest';
import { loadBoard } from '../sdk/board';
import { decodeFdt, findNode, getProp, readStringList, readU32 } from '../sdk/fit/fdt';
import { buildXenDtb, readDom0less } from '../sdk/disk/xen-dt';
import { buildPassthroughDtb, passthroughFlash, QEMU_VIRT_PFLASH } from '../sdk/disk/xen-flash';
import { checkQemuPlacement, dumpQemuDtb, xenQemuArgs } from '../sdk/disk/xen-qemu';
import { prepareXenBoot } from '../sdk/disk/xen';
import { checkXenNetwork, passthroughNic, PARTIAL_GIC_PHANDLE } from '../sdk/disk/xen-net';
import { checkPinned, xenSourcePin } from '../sdk/xen/source';
import { checkXenConfig } from '../sdk/xen/build';
import type { XenError } from '../sdk/disk/xen-errors';
import { HTTPS_CLIENT, httpsToGuest } from './helpers/https-client';
import { freePort } from './helpers/ports';
import { CLI, expectOneLineError, ROOT, signet } from './helpers/cli';

const board = loadBoard('xen-arm32');
const available = spawnSync('sh', ['-c', 'command -v qemu-system-arm']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 600_000; // TCG on a loaded 2-core machine; a liveness bound only

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as XenError).code;
  }
  return undefined;
}

describe('the DomU network: placement and passthrough, refused before QEMU starts', () => {
  let platform: Uint8Array;
  beforeAll(async () => {
    platform = await dumpQemuDtb(board);
  });
  const guest = { kernel: new Uint8Array(0x100000), initramfs: new Uint8Array(0x80000), bootargs: 'console=ttyAMA0 panic=-1 quiet' };
  const net = { mode: 'user' as const, forwards: [{ proto: 'tcp' as const, host: 18443, guest: 443 }] };
  const prep = (b = board) => prepareXenBoot({ board: b, guest, flashFile: '/nonexistent-flash.img', halt: true, platformDtb: platform, network: net }, new Uint8Array(900_000));

  test('a direct-mapped DomU with static memory, the NOR bank 1:1 and the NIC passed through', () => {
    const p = prep();
    const domU = readDom0less(decodeFdt(p.dtb.image)).domUs[0]!;
    expect(domU.staticMemory).toEqual({ address: 0x60000000, size: 128 * 1024 * 1024 });
    expect(domU.directMap).toBe(true);
    expect(p.passthrough!.flash).toMatchObject({ hostAddress: QEMU_VIRT_PFLASH.address, guestAddress: QEMU_VIRT_PFLASH.address });
    const tree = decodeFdt(p.passthrough!.partialDtb.image);
    expect(findNode(tree.root, '/passthrough/flash@4000000')).toBeDefined();
    const nic = findNode(tree.root, '/passthrough/virtio_mmio@a003e00')!;
    expect(readStringList(getProp(nic, 'compatible')!)).toEqual(['virtio,mmio']);
    expect(readStringList(getProp(nic, 'xen,path')!)).toEqual(['/virtio_mmio@a003e00']);
    expect([...getProp(nic, 'xen,reg')!]).toEqual([0, 0, 0, 0, 0x0a, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x0a, 0, 0x30, 0]);
    expect(getProp(nic, 'xen,force-assign-without-iommu')).toBeDefined();
    expect(readU32(getProp(nic, 'interrupt-parent')!)).toBe(PARTIAL_GIC_PHANDLE);
    expect(readU32(getProp(findNode(tree.root, '/gic')!, 'phandle')!)).toBe(PARTIAL_GIC_PHANDLE);
    // QEMU gets the NIC on the user network, forwards on 127.0.0.1 only.
    const args = xenQemuArgs(board, p, { xen: 'x', dtb: 'd', kernel: 'k', ramdisk: 'r', partialDtb: 'p', qmpSocket: 'q' });
    expect(args).toContain('user,id=n0,hostfwd=tcp:127.0.0.1:18443-:443');
    expect(args).toContain('virtio-net-device,netdev=n0');
    expect(() => checkQemuPlacement(p, platform, board)).not.toThrow();
    // Without a network: no NIC node, no QEMU NIC, still direct-mapped.
    const quiet = prepareXenBoot({ board, guest, flashFile: '/nonexistent-flash.img', halt: true, platformDtb: platform }, new Uint8Array(900_000));
    expect(findNode(decodeFdt(quiet.passthrough!.partialDtb.image).root, '/passthrough/virtio_mmio@a003e00')).toBeUndefined();
    expect(xenQemuArgs(board, quiet, { xen: 'x', dtb: 'd', kernel: 'k', ramdisk: 'r', partialDtb: 'p', qmpSocket: 'q' }).join(' ')).not.toContain('netdev');
  });

  test('static memory on a boot module, on Xen as QEMU loads it, outside RAM or unaligned: E_XEN_ADDRESS', () => {
    const at = (addr: string) => ({ ...board, xen: { ...board.xen!, staticMemory: addr } });
    expect(code(() => prep(at('0x48000000')))).toBe('E_XEN_ADDRESS'); // the device tree and ramdisk
    expect(code(() => prep(at('0x42000000')))).toBe('E_XEN_ADDRESS'); // the DomU kernel
    expect(code(() => prep(at('0x7c000000')))).toBe('E_XEN_ADDRESS'); // runs past the end of RAM
    expect(code(() => prep(at('0x60100000')))).toBe('E_XEN_ADDRESS'); // not on 2 MiB
    // Xen itself, as QEMU loads it at RAM base + 0x10000.
    const low = prepareXenBoot({ board: at('0x5e000000'), guest, flashFile: '/x', halt: true, platformDtb: platform, network: net }, new Uint8Array(900_000));
    expect(() => checkQemuPlacement(low, platform, board)).not.toThrow();
    expect(code(() => checkQemuPlacement({ ...low, staticMemory: { address: 0x40000000, size: 0x8000000 } }, platform, board))).toBe('E_XEN_ADDRESS');
    // The tree Xen gets: xen,static-mem sits right beside the modules it must not overlap.
    const dtb = buildXenDtb(platform, { xenBootargs: 'console=dtuart', domUs: [{ ...readDom0less(decodeFdt(low.dtb.image)).domUs[0]! }] });
    expect(readDom0less(decodeFdt(dtb)).domUs[0]!.staticMemory).toEqual({ address: 0x5e000000, size: 0x8000000 });
  });

  test('a NIC the host tree does not have (no transport, wrong SPI) is E_XEN_DTB; a network on Debian\'s binary Xen or kernel is E_XEN_NET', () => {
    const noNic = decodeFdt(platform);
    noNic.root.children = noNic.root.children.filter((n) => n.name !== 'virtio_mmio@a003e00');
    expect(code(() => passthroughNic(noNic))).toBe('E_XEN_DTB');
    const wrongIrq = decodeFdt(platform);
    const node = wrongIrq.root.children.find((n) => n.name === 'virtio_mmio@a003e00')!;
    node.properties = node.properties.map((p) => (p.name === 'interrupts' ? { ...p, value: new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0x2e, 0, 0, 0, 1]) } : p));
    expect(code(() => passthroughNic(wrongIrq))).toBe('E_XEN_DTB');
    expect(code(() => checkXenNetwork({ ...board, xen: { ...board.xen!, source: 'debian-binary' } }))).toBe('E_XEN_NET');
    expect(code(() => checkXenNetwork({ ...board, kernel: { ...board.kernel, source: 'debian-binary' } }))).toBe('E_XEN_NET');
    expect(code(() => prep({ ...board, xen: { ...board.xen!, source: 'debian-binary' } }))).toBe('E_XEN_NET');
    // The flash of a DomU that is not direct-mapped stays at the free guest address.
    expect(passthroughFlash(board, decodeFdt(platform)).guestAddress).toBe(0x08000000);
    expect(buildPassthroughDtb(passthroughFlash(board, decodeFdt(platform), true)).length).toBeGreaterThan(0);
  });

  test('the Xen source is pinned: bytes that are not the pinned ones are E_XEN_SOURCE, an unknown version too', () => {
    const pin = xenSourcePin(board.xen!.version!);
    expect(code(() => checkPinned(pin.files[1]!, new Uint8Array([1, 2, 3]), 'a test'))).toBe('E_XEN_SOURCE');
    expect(code(() => xenSourcePin('4.17.0-1'))).toBe('E_XEN_SOURCE');
    // An option of boards/<id>/xen.config that Kconfig drops (STATIC_MEMORY without UNSUPPORTED) is refused.
    expect(code(() => checkXenConfig('CONFIG_STATIC_MEMORY=y\n', 'xen.config', 'CONFIG_ARM=y\n'))).toBe('E_XEN_CONFIG');
    expect(() => checkXenConfig('CONFIG_STATIC_MEMORY=y\n', 'xen.config', 'CONFIG_STATIC_MEMORY=y\n')).not.toThrow();
  });

  test('`signet run --net user` on a board with Debian\'s binary Xen: one-line E_XEN_NET before QEMU starts', () => {
    const dir = mkdtempSync(join(cacheRoot, 'xen-net-refuse-'));
    try {
      const boards = join(dir, 'boards');
      mkdirSync(join(boards, 'xen-bin'), { recursive: true });
      const b = JSON.parse(readFileSync(join(ROOT, 'boards', 'xen-arm32', 'board.json'), 'utf8'));
      b.id = 'xen-bin';
      b.xen = { package: b.xen.package, domUMemoryMb: b.xen.domUMemoryMb, bootargs: b.xen.bootargs };
      writeFileSync(join(boards, 'xen-bin', 'board.json'), JSON.stringify(b));
      const disk = join(dir, 'disk.img');
      writeFileSync(disk, '');
      const r = signet(['run', disk, '--board', 'xen-bin', '--net', 'user', '--forward', '18443:443'], { env: { SIGNET_BOARDS: boards } });
      expectOneLineError(r, 'E_XEN_NET');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!available)('examples/router-admin on xen-arm32: HTTPS from the DomU through a forwarded port', () => {
  let work: string;
  let run: ChildProcess | undefined;
  let console_ = '';
  let port: number;
  let ca: string;

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'xen-net-'));
    const keys = join(work, 'keys');
    ca = join(keys, 'vendor-ca.crt');
    const ok = (r: { code: number; stderr: string; stdout: string }) => {
      expect(r.code, r.stderr + r.stdout).toBe(0);
      return r.stdout;
    };
    ok(signet(['keys', 'init', '--dir', keys]));
    // The examples folder whole (router-admin imports from http-hello), router-admin's board set to
    // xen-arm32; type-checked by the arm64 test, where its tsconfig's paths resolve.
    cpSync(join(ROOT, 'examples'), join(work, 'examples'), { recursive: true, filter: (s) => !s.includes('node_modules') });
    const project = join(work, 'examples', 'router-admin');
    const pj = JSON.parse(readFileSync(join(project, 'signet.json'), 'utf8'));
    writeFileSync(join(project, 'signet.json'), JSON.stringify({ ...pj, board: board.id }, null, 2));
    const app = join(work, 'router-admin.simg');
    ok(signet(['build', '--project', project, '--version', '3.1.4', '--security-counter', '2', '--keys', keys, '--out', app, '--no-typecheck']));
    const disk = join(work, 'disk.img');
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', disk, '--key-dtb', join(work, 'pub.dtb')], { timeout: 300_000 }));
    ok(signet(['device', 'provision', '--disk', disk, '--id', 'router-x001', '--board', board.id, '--ca-dir', keys, '--issue', '--host', 'localhost']));
    port = await freePort();
    run = spawn(process.execPath, [CLI, 'run', disk, '--board', board.id, '--key-dtb', join(work, 'pub.dtb'), '--net', 'user', '--forward', `${port}:443`], { stdio: ['ignore', 'pipe', 'pipe'] });
    run.stdout!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    run.stderr!.on('data', (d: Buffer) => (console_ += d.toString('latin1')));
    const deadline = Date.now() + BOOT_TIMEOUT;
    while (!/app\[SERVING\]/.test(console_) && !/app\[NO-TLS\]|boot\[RECOVERY\]|host\[ERROR\]/.test(console_)) {
      if (Date.now() > deadline || run.exitCode !== null) throw new Error('the guest did not start serving; console:\n' + console_.slice(-3000));
      await new Promise((r) => setTimeout(r, 250));
    }
  }, BOOT_TIMEOUT + 300_000);

  afterAll(async () => {
    if (run && run.exitCode === null && run.signalCode === null) {
      const qemu = spawnSync('pgrep', ['-P', String(run.pid), '-f', 'qemu-system'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      for (const pid of qemu) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      const exited = new Promise((r) => run!.once('exit', r));
      if (run.exitCode === null) run.kill('SIGTERM');
      await exited;
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('boots on Xen built from source, direct-mapped, and gets its address by DHCP from QEMU', () => {
    expect(console_).toMatch(/\(XEN\) Xen version 4\.17/);
    expect(console_).toContain('boot[OK] slot=a version=3.1.4');
    expect(console_).toMatch(/host\[NET\] eth0 10\.0\.2\.15\/24.* dhcp/);
    expect(console_).toContain('app[SERVING] https=443');
    expect(console_).not.toMatch(/host\[(WARN|ERROR)\]|app\[(FAILED|NO-TLS)\]/);
  });

  it(`answers GET /api/status over HTTPS verified against keys/vendor-ca.crt (${HTTPS_CLIENT}) with its board and version`, async () => {
    const r = await httpsToGuest(port, ca, '/api/status');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ service: 'router-admin', version: '3.1.4', board: 'xen-arm32' });
    const path = '/api/config/wifi-name';
    expect((await httpsToGuest(port, ca, path, 'PUT', 'xen-net')).status).toBe(200);
    expect(JSON.parse((await httpsToGuest(port, ca, path)).body)).toEqual({ 'wifi-name': 'xen-net' });
  });
});
