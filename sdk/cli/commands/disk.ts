import { loadBoard, type Board } from '../../board';
import { buildBootImage } from '../../disk/boot-image';
import { buildDisk } from '../../disk/disk';
import { asSignetError } from '../../disk/errors';
import { FIT_KEY_NAME, loadFitSigner } from '../../disk/fit-key';
import { checkForwards, parseForward, type GuestNetwork } from '../../disk/network';
import { checkXenNetwork } from '../../disk/xen-net';
import { runDisk } from '../../disk/run';
import { publicKeyDtb } from '../../fit/keydtb';
import { MAX_KEY_DTB_FILE, readInputFile } from '../../util/files';
import { writeFileAtomic } from '../../util/fs-atomic';
import { join } from 'node:path';
import { MAX_ROOT_BYTES } from '../../ota/root-file';
import { SEMVER } from '../../image/manifest';

/** A FIT given to `--boot-b`: no larger than a boot partition may be (checked again against the board's). */
const MAX_FIT_FILE = 256 * 1024 * 1024;
import { intOption, JSON_OPTION, need, onePositional, UsageError, type Command } from '../command';

const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

/** A boot image's release fields from a version option and a counter option: both or neither. */
function bootRelease(ctx: Parameters<Command['run']>[0], versionOpt: string, counterOpt: string): { version: string; securityCounter: number } | undefined {
  const version = ctx.values[versionOpt] as string | undefined;
  const counter = intOption(ctx, counterOpt, 0, 0xffffffff);
  if (version === undefined && counter === undefined) return undefined;
  if (version === undefined || counter === undefined) throw new UsageError(`--${versionOpt} and --${counterOpt} go together`);
  if (!SEMVER.test(version)) throw new UsageError(`--${versionOpt} must be a semantic version like 2.0.0`);
  return { version, securityCounter: counter };
}

export const fit: Command = {
  path: ['fit'],
  summary: 'build the signed boot image (U-Boot FIT: kernel, initramfs with the boot stage, device tree) and the U-Boot key DTB',
  options: {
    board: { type: 'string', valueName: 'id', description: 'the board (see `signet boards`)' },
    keys: { type: 'string', valueName: 'folder', description: 'key folder: root.json is compiled in, fit.key signs' },
    key: { type: 'string', valueName: 'file|pkcs11:uri', description: 'the FIT signing key instead of <keys>/fit.key: a key file, or an RSA-2048 key in a PKCS#11 token' },
    out: { type: 'string', valueName: 'file', description: 'the FIT to write (.itb)' },
    'key-dtb': { type: 'string', valueName: 'file', description: 'also write the public-key DTB to bake into U-Boot' },
    'app-test-mode': { type: 'boolean', description: 'the guest powers off after the app (tests, CI)' },
    version: { type: 'string', valueName: 'semver', description: 'the boot image\'s release version (signed into it; needed to `signet publish` it)' },
    'security-counter': { type: 'string', valueName: 'n', description: 'the boot image\'s own anti-rollback counter (with --version)' },
    ...JSON_OPTION,
  },
  details: ['Deterministic: the FIT timestamp is SOURCE_DATE_EPOCH, else the kernel package build time.'],
  async run(ctx) {
    const board = loadBoard(need(ctx, 'board'));
    const out = need(ctx, 'out');
    const b = await buildBootImage({ board, keysDir: need(ctx, 'keys'), fitKey: ctx.values.key as string | undefined, testMode: ctx.values['app-test-mode'] === true,
      release: bootRelease(ctx, 'version', 'security-counter') });
    writeFileAtomic(out, b.fit);
    const keyDtb = ctx.values['key-dtb'] as string | undefined;
    if (keyDtb !== undefined) writeFileAtomic(keyDtb, b.keyDtb);
    if (ctx.json) {
      ctx.out(JSON.stringify({ out, bytes: b.fit.length, keyDtb: keyDtb ?? null, kernel: b.kernel.version, kernelPackage: b.kernel.package, kernelBytes: b.kernel.kernel.length,
        kernelCompression: b.fitKernel.compression, fitKernelBytes: b.fitKernel.data.length, initramfsBytes: b.initramfs.length, ramdiskBytes: b.ramdisk.length,
        dtbBytes: b.dtb.length, modules: b.modules, timestamp: b.timestamp, keyName: b.keyName }, null, 2));
      return;
    }
    ctx.out(`built ${out}: ${board.id} boot image, ${kib(b.fit.length)}, signed sha256,rsa2048 with key "${b.keyName}"`);
    const stored = (n: number, how: string) => (how === 'none' ? '' : `, stored ${how} ${kib(n)}`);
    ctx.out(`  kernel     Linux ${b.kernel.version} (${b.kernel.package}), ${kib(b.kernel.kernel.length)}${stored(b.fitKernel.data.length, b.fitKernel.compression)}`);
    ctx.out(`  initramfs  ${kib(b.initramfs.length)}${stored(b.ramdisk.length, b.ramdiskCompression)}: /init (signet-host), boot stage ${kib(b.bootJsBytes)}, modules ${b.modules.join(' ') || 'none'}`);
    ctx.out(`  fdt        ${kib(b.dtb.length)}   timestamp ${b.timestamp}`);
    if (keyDtb) ctx.out(`  U-Boot key ${keyDtb} (/signature/key-${b.keyName}, required = "conf")`);
  },
};

export const disk: Command = {
  path: ['disk'],
  summary: 'build a full flashable disk image: GPT, boot image, app image in slot A, empty slot B, boot state',
  args: '<app.simg>',
  options: {
    board: { type: 'string', valueName: 'id', description: 'the board (see `signet boards`)' },
    keys: { type: 'string', valueName: 'folder', description: 'key folder: root.json (verifies the app, compiled in), fit.key (signs the boot image)' },
    key: { type: 'string', valueName: 'file|pkcs11:uri', description: 'the FIT signing key instead of <keys>/fit.key: a key file, or an RSA-2048 key in a PKCS#11 token' },
    out: { type: 'string', valueName: 'file', description: 'the disk image to write' },
    'slot-b': { type: 'string', valueName: 'app.simg', description: 'put this image in slot B as a fallback instead of leaving it empty' },
    'boot-ab': { type: 'boolean', description: 'A/B boot slots: boot_a and boot_b (both this boot image) and a bootenv for U-Boot\'s boot counter' },
    'boot-b': { type: 'string', valueName: 'boot.itb', description: 'with --boot-ab: put this FIT (signed by the same key) in boot_b instead' },
    'key-dtb': { type: 'string', valueName: 'file', description: 'also write the public-key DTB to bake into U-Boot' },
    'app-test-mode': { type: 'boolean', description: 'the guest powers off after the app (tests, CI)' },
    'boot-version': { type: 'string', valueName: 'semver', description: 'the boot image\'s release version (signed into it; what the device reports and OTA compares)' },
    'boot-security-counter': { type: 'string', valueName: 'n', description: 'the boot image\'s own anti-rollback counter (with --boot-version)' },
    ...JSON_OPTION,
  },
  details: ['Every image is verified for the board with <keys>/root.json before anything is written.'],
  async run(ctx) {
    const app = onePositional(ctx, 'app image');
    const board = loadBoard(need(ctx, 'board'));
    const out = need(ctx, 'out');
    const bootB = ctx.values['boot-b'] as string | undefined;
    if (bootB !== undefined && ctx.values['boot-ab'] !== true) throw new UsageError('--boot-b needs --boot-ab');
    const r = await buildDisk({
      board,
      appImage: app,
      slotBImage: ctx.values['slot-b'] as string | undefined,
      keysDir: need(ctx, 'keys'),
      fitKey: ctx.values.key as string | undefined,
      out,
      testMode: ctx.values['app-test-mode'] === true,
      bootRelease: bootRelease(ctx, 'boot-version', 'boot-security-counter'),
      bootAb: ctx.values['boot-ab'] === true ? { fitB: bootB === undefined ? undefined : readInputFile(bootB, MAX_FIT_FILE, 'boot image') } : undefined,
    });
    const keyDtb = ctx.values['key-dtb'] as string | undefined;
    if (keyDtb !== undefined) writeFileAtomic(keyDtb, r.boot.keyDtb);
    if (ctx.json) {
      ctx.out(JSON.stringify({ out, bytes: r.bytes, board: board.id, diskGuid: r.gpt.diskGuid, partitions: r.gpt.partitions, bootImageBytes: r.boot.fit.length,
        slotA: { name: r.slotA.name, version: r.slotA.version, securityCounter: r.slotA.securityCounter },
        slotB: r.slotB ? { name: r.slotB.name, version: r.slotB.version, securityCounter: r.slotB.securityCounter } : null,
        securityFloor: r.securityFloor, keyDtb: keyDtb ?? null }, null, 2));
      return;
    }
    ctx.out(`built ${out}: ${board.id} disk, ${r.bytes} bytes, GPT ${r.gpt.diskGuid}`);
    for (const p of r.gpt.partitions) {
      const what = p.name === 'boot' || p.name === 'boot_a' || p.name === 'boot_b' ? `boot image ${kib(r.boot.fit.length)} (Linux ${r.boot.kernel.version})`
        : p.name === 'slot_a' ? `${r.slotA.name} ${r.slotA.version} (security counter ${r.slotA.securityCounter})`
        : p.name === 'slot_b' ? (r.slotB ? `${r.slotB.name} ${r.slotB.version} (security counter ${r.slotB.securityCounter})` : 'empty')
        : p.name === 'state' ? `boot state, security floor ${r.securityFloor}` : '';
      ctx.out(`  ${p.name.padEnd(7)} @ ${String(p.offset).padStart(10)}  ${kib(p.size).padStart(10)}  ${what}`);
    }
    ctx.out(`next: signet run ${out} --board ${board.id}${keyDtb ? ` --key-dtb ${keyDtb}` : ' --direct'}`);
  },
};

export const run: Command = {
  path: ['run'],
  summary: 'boot a disk image in QEMU with the console on this terminal (kvm: U-Boot verified boot or --direct; xen: Xen dom0less)',
  args: '<disk.img>',
  options: {
    board: { type: 'string', valueName: 'id', description: 'the board the disk was built for' },
    'key-dtb': { type: 'string', valueName: 'file', description: "U-Boot's FIT public key (from `signet fit --key-dtb` or `signet disk --key-dtb`)" },
    keys: { type: 'string', valueName: 'folder', description: 'take the FIT public key from <folder>/fit.key instead' },
    direct: { type: 'boolean', description: 'QEMU loads kernel, initramfs and device tree from the FIT itself (no U-Boot)' },
    halt: { type: 'boolean', description: 'the guest powers off after the app (kernel args: -- --halt)' },
    timeout: { type: 'string', valueName: 'seconds', description: 'stop the guest after this long (exit status non-zero)' },
    net: { type: 'string', valueName: 'user', description: "give the guest a network card on QEMU's user-mode network (the host is 10.0.2.2; kvm boards, and xen boards whose Xen is built from source)" },
    forward: { type: 'string', multiple: true, valueName: '[udp:]HOST:GUEST', description: 'forward 127.0.0.1:HOST on this machine to the guest\'s port GUEST (TCP unless udp:; repeatable; needs --net user)' },
    engine: { type: 'string', valueName: 'qemu|node', description: 'node: verify the disk\'s image as the boot stage does (root from --keys), then run its app under Node on this machine' },
    memory: { type: 'string', valueName: 'MB', description: "guest memory (QEMU -m) instead of the board file's (U-Boot fixes up the device tree's memory node)" },
  },
  details: [
    'The disk is the device\'s flash: the boot stage writes its state to it.',
    'Without --key-dtb or --keys the boot is --direct (U-Boot needs the key in its control DTB).',
    'On a terminal, type Ctrl-A then x to stop the guest.',
    '--engine node: no QEMU; the app listens on this machine\'s loopback on its own ports (0.0.0.0:P is 127.0.0.1:P, so --net and --forward are not used), 10.0.2.2 is 127.0.0.1, config is the file SIGNET_CONFIG_FILE names. Ctrl-C stops it.',
  ],
  async run(ctx) {
    const diskPath = onePositional(ctx, 'disk image');
    const board = loadBoard(need(ctx, 'board'));
    const engine = (ctx.values.engine as string | undefined) ?? 'qemu';
    if (engine !== 'qemu' && engine !== 'node') throw new UsageError(`--engine ${engine} is not an engine signet run has`, 'use --engine qemu or --engine node');
    if (engine === 'node') return runOnNode(ctx, diskPath, board);
    const timeout = intOption(ctx, 'timeout', 1, 86400);
    const memoryMb = intOption(ctx, 'memory', 8, 65536);
    const keysDir = ctx.values.keys as string | undefined;
    let keyDtb: Uint8Array | undefined;
    if (ctx.values['key-dtb'] !== undefined) keyDtb = readInputFile(ctx.values['key-dtb'] as string, MAX_KEY_DTB_FILE, 'U-Boot key DTB (from `signet fit --key-dtb`)');
    else if (keysDir) {
      try {
        keyDtb = publicKeyDtb((await loadFitSigner(keysDir)).publicKey(), FIT_KEY_NAME);
      } catch (e) {
        throw asSignetError(e);
      }
    }
    const network = networkOption(ctx.values.net as string | undefined, ctx.values.forward as string[] | undefined, board);
    const direct = ctx.values.direct === true || keyDtb === undefined;
    const stdin = process.stdin;
    const raw = stdin.isTTY === true;
    const r = await runDisk({
      board: memoryMb === undefined || !board.qemu ? board : { ...board, qemu: { ...board.qemu, memoryMb } },
      disk: diskPath,
      halt: ctx.values.halt === true,
      direct,
      keyDtb,
      network,
      timeoutMs: timeout === undefined ? undefined : timeout * 1000,
      onStarted: (mode) => {
        if (board.hypervisor === 'kvm' && mode === 'direct' && ctx.values.direct !== true) ctx.err('note: no --key-dtb or --keys, booting --direct (no U-Boot verified boot)');
      },
      onOutput: (chunk) => process.stdout.write(Buffer.from(chunk, 'latin1')),
      input: raw
        ? (send, stop) => {
            stdin.setRawMode(true);
            stdin.resume();
            let ctrlA = false;
            stdin.on('data', (d: Buffer) => {
              for (const byte of d) {
                if (ctrlA && byte === 0x78) return stop(); // Ctrl-A x
                if (byte === 0x01 && !ctrlA) {
                  ctrlA = true;
                  continue;
                }
                ctrlA = false;
                send(String.fromCharCode(byte));
              }
            });
          }
        : undefined,
    }).finally(() => {
      if (raw) {
        stdin.setRawMode(false);
        stdin.pause();
      }
    });
    return r.exitCode === 0 ? 0 : 1;
  },
};

/** `signet run --engine node`: the boot stage's checks on the disk, then the app under this Node. */
async function runOnNode(ctx: Parameters<Command['run']>[0], diskPath: string, board: Board): Promise<number> {
  for (const o of ['net', 'forward', 'key-dtb', 'direct']) {
    if (ctx.values[o] !== undefined) throw new UsageError(`--${o} is for a QEMU guest; --engine node listens on this machine's loopback on the app's own ports`, `drop --${o}`);
  }
  const keysDir = ctx.values.keys as string | undefined;
  if (keysDir === undefined) throw new UsageError('--engine node needs --keys (its root.json is the trust anchor the boot stage checks the image against)', 'add --keys <folder>');
  readInputFile(join(keysDir, 'root.json'), MAX_ROOT_BYTES, 'root metadata file (root.json)');
  const timeout = intOption(ctx, 'timeout', 1, 86400);
  const { runImageOnNode } = await import('../../disk/run-node');
  const r = runImageOnNode({ board, disk: diskPath, keysDir, log: (line) => process.stdout.write(line + '\n') });
  if (r.status !== 'serving') return 1;
  // The app's sockets keep this process alive; it ends with the app (exit(), a throw) or here.
  process.once('SIGINT', () => process.exit(0));
  process.once('SIGTERM', () => process.exit(0));
  if (timeout !== undefined) setTimeout(() => process.exit(1), timeout * 1000).unref();
  return 0;
}

/** --net user [--forward ...]: the guest's network card, or none. */
function networkOption(net: string | undefined, forwards: string[] | undefined, board: Board): GuestNetwork | undefined {
  if (net === undefined) {
    if (forwards && forwards.length > 0) throw new UsageError('--forward needs --net user', 'add --net user');
    return undefined;
  }
  if (net !== 'user') throw new UsageError(`--net ${net} is not a network Signet can give a guest`, 'use --net user');
  if (board.hypervisor === 'xen') checkXenNetwork(board);
  else if (board.hypervisor !== 'kvm') throw new UsageError(`--net is for kvm and xen boards; ${board.id} is a ${board.hypervisor} board`, 'boot without --net');
  const list = (forwards ?? []).map(parseForward);
  checkForwards(list);
  return { mode: 'user', forwards: list };
}
