// Real U-Boot (Debian's 2023.01 qemu_arm64 build) in QEMU checks FITs that
// buildFit made, against the public key mergePublicKeyIntoDtb put into
// QEMU's own device tree. One QEMU boot; the FITs sit side by side in RAM and
// `bootm` is run on each, the refused ones first (bootm returns), the good
// one last (it hands over to the kernel and never returns). The good one
// carries its kernel gzip'd (compression = "gzip", as signet fit stores
// Debian's arm64 vmlinuz): bootm inflates it to the load address. Another
// carries it lzma'd (compression = "lzma", as signet fit stores a kernel built
// from source): `bootm start` + `bootm loados` unpack it without starting it,
// and U-Boot's `cmp` compares the result with the raw kernel loaded beside it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFdt, encodeFdt, findNode, u32Value } from '../sdk/fit/fdt';
import { buildFit, type BuildFitInput } from '../sdk/fit/fit';
import { verifyFit } from '../sdk/fit/fit-verify';
import { mergePublicKeyIntoDtb } from '../sdk/fit/keydtb';
import { ForgeRsaSigner } from '../sdk/fit/rsa';
import { lzmaDeterministic } from '../sdk/disk/compress';
import { gzipDeterministic } from '../sdk/disk/gzip';
import { dummyArm64Kernel, dumpQemuVirtDtb, UBOOT_QEMU_ARM64, UbootConsole } from './helpers/uboot-console';
import { skipUnlessCi } from './helpers/tools';

const repo = fileURLToPath(new URL('..', import.meta.url));
const cacheRoot = process.env.SIGNET_CACHE ?? join(repo, '.cache', 'signet');
const available = existsSync(UBOOT_QEMU_ARM64) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;

const KERNEL_BANNER = 'SIGNET-DUMMY-KERNEL-OK';
const FIT_ADDRS = { flipped: 0x50000000, otherKey: 0x54000000, editedLoad: 0x58000000, unsigned: 0x5c000000, lzma: 0x64000000, good: 0x60000000 } as const;
/** The dummy kernel as it is, for `cmp` against what bootm unpacked from the lzma FIT. */
const RAW_KERNEL_ADDR = 0x68000000;
type Case = keyof typeof FIT_ADDRS;

describe.skipIf(skipUnlessCi(available))('U-Boot 2023.01 (qemu_arm64) verifies Signet FITs', () => {
  let work: string;
  let uboot: UbootConsole;
  let bootLog = '';
  let rawKernelBytes = 0;
  const started = Date.now();

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'fit-uboot-'));
    const signer = ForgeRsaSigner.generate();
    const other = ForgeRsaSigner.generate();

    // U-Boot's control DTB is the tree QEMU generates for this very machine,
    // plus our /signature/key-dev (required = "conf").
    await dumpQemuVirtDtb(join(work, 'qemu.dtb'));
    const qemuDtb = new Uint8Array(readFileSync(join(work, 'qemu.dtb')));
    writeFileSync(join(work, 'u-boot-keys.dtb'), mergePublicKeyIntoDtb(qemuDtb, signer.publicKey(), 'dev'));

    const input: BuildFitInput = {
      description: 'Signet U-Boot test',
      arch: 'arm64',
      timestamp: 1_700_000_000,
      kernel: { data: dummyArm64Kernel(KERNEL_BANNER), loadAddress: 0x40400000, entryAddress: 0x40400000 },
      ramdisk: { data: new Uint8Array(4096).fill(0x5a) },
      // The kernel's device tree: QEMU's own, re-encoded compactly by our codec.
      fdt: { data: encodeFdt(decodeFdt(qemuDtb)), loadAddress: 0x48000000 },
      keyName: 'dev',
      signer,
    };
    const good = buildFit({ ...input, kernel: { ...input.kernel, data: await gzipDeterministic(input.kernel.data), compression: 'gzip' } });
    expect(verifyFit(good, [{ keyName: 'dev', publicKey: signer.publicKey() }]).configuration).toBe('conf-1');
    const plain = buildFit(input);

    const flipped = plain.slice();
    flipped[Buffer.from(plain).indexOf(Buffer.from(input.kernel.data)) + 9]! ^= 0x01;

    const edited = decodeFdt(plain);
    findNode(edited.root, '/images/kernel')!.properties.find((p) => p.name === 'load')!.value = u32Value(0x40480000);

    const unsigned = decodeFdt(plain);
    findNode(unsigned.root, '/configurations/conf-1')!.children = [];

    const fits: Record<Case, Uint8Array> = {
      flipped,
      otherKey: buildFit({ ...input, signer: other }),
      editedLoad: encodeFdt(edited),
      unsigned: encodeFdt(unsigned),
      lzma: buildFit({ ...input, kernel: { ...input.kernel, data: await lzmaDeterministic(input.kernel.data), compression: 'lzma' } }),
      good,
    };
    for (const [name, blob] of Object.entries(fits)) writeFileSync(join(work, `${name}.itb`), blob);
    writeFileSync(join(work, 'raw-kernel.bin'), input.kernel.data);
    rawKernelBytes = input.kernel.data.length;

    uboot = await UbootConsole.start({
      dtb: join(work, 'u-boot-keys.dtb'),
      loads: [
        ...(Object.keys(FIT_ADDRS) as Case[]).map((c) => ({ file: join(work, `${c}.itb`), addr: FIT_ADDRS[c] })),
        { file: join(work, 'raw-kernel.bin'), addr: RAW_KERNEL_ADDR },
      ],
    });
    bootLog = await uboot.stopAutoboot();
  });

  afterAll(async () => {
    await uboot?.close();
    if (!work) return;
    // Keep the console transcript for whoever debugs a failure.
    writeFileSync(join(cacheRoot, 'fit-uboot-console.log'), `${uboot?.transcript ?? ''}\n[total ${Date.now() - started} ms]\n`);
    rmSync(work, { recursive: true, force: true });
  });

  const bootm = (c: Case): Promise<string> => uboot.command(`bootm 0x${FIT_ADDRS[c].toString(16)}`);

  it('boots with our key, required for configurations, in its control DTB', async () => {
    expect(bootLog).toContain('U-Boot 2023.01');
    await uboot.command('fdt addr ${fdtcontroladdr}');
    await uboot.command('fdt get value req /signature/key-dev required');
    await uboot.command('fdt get value algo /signature/key-dev algo');
    const env = await uboot.command('printenv req algo');
    expect(env).toContain('req=conf');
    expect(env).toContain('algo=sha256,rsa2048');
  });

  it('refuses a FIT with one kernel byte flipped (signature fine, image hash bad)', async () => {
    const out = await bootm('flipped');
    expect(out).toContain('Verifying Hash Integrity ... sha256,rsa2048:dev+ OK');
    expect(out).toContain("Bad hash value for 'hash-1' hash node in 'kernel' image node");
    expect(out).toContain('Bad Data Hash');
    expect(out).toContain("ERROR: can't get kernel image!");
    expect(out).not.toContain('Starting kernel');
  });

  it('refuses a FIT signed by another RSA key', async () => {
    const out = await bootm('otherKey');
    expect(out).toMatch(/Verifying Hash Integrity \.\.\. sha256,rsa2048:dev-\s+error!/);
    expect(out).toContain("Verification failed for '<NULL>' hash node in 'conf-1' config node");
    expect(out).toContain("Failed to verify required signature 'key-dev'");
    expect(out).toContain("ERROR: can't get kernel image!");
    expect(out).not.toContain('Starting kernel');
  });

  it('refuses a FIT whose signed metadata (kernel load address) was edited', async () => {
    const out = await bootm('editedLoad');
    expect(out).toMatch(/sha256,rsa2048:dev-\s+error!/);
    expect(out).toContain("Failed to verify required signature 'key-dev'");
    expect(out).not.toContain('Starting kernel');
  });

  it('refuses an unsigned FIT because the key is required', async () => {
    const out = await bootm('unsigned');
    expect(out).toContain("No 'signature' subnode found");
    expect(out).toContain("Failed to verify required signature 'key-dev'");
    expect(out).not.toContain('Starting kernel');
  });

  it('verifies the FIT with an lzma kernel and unpacks it to the load address byte for byte', async () => {
    await uboot.command('mw.b 0x40400000 0 0x1000'); // nothing left over from an earlier load
    const start = await uboot.command(`bootm start 0x${FIT_ADDRS.lzma.toString(16)}`);
    expect(start).toContain('Verifying Hash Integrity ... sha256,rsa2048:dev+ OK');
    expect(start).toMatch(/Compression:\s+lzma compressed/);
    const loados = await uboot.command('bootm loados');
    expect(loados).toContain('Uncompressing Kernel Image');
    expect(loados).not.toMatch(/error|ERROR|must RESET/);
    const cmp = await uboot.command(`cmp.b 0x40400000 0x${RAW_KERNEL_ADDR.toString(16)} 0x${rawKernelBytes.toString(16)}`);
    expect(cmp).toContain(`Total of ${rawKernelBytes} byte(s) were the same`);
  });

  it('accepts the FIT signed with our key, inflates its gzip kernel and starts it', async () => {
    uboot.send(`bootm 0x${FIT_ADDRS.good.toString(16)}\r`);
    const out = await uboot.waitFor(KERNEL_BANNER);
    expect(out).toMatch(/Compression:\s+gzip compressed/);
    expect(out).toContain('Uncompressing Kernel Image');
    expect(out.match(/Verifying Hash Integrity \.\.\. sha256,rsa2048:dev\+ OK/g)).toHaveLength(3); // kernel, ramdisk, fdt loads
    expect(out.match(/Verifying Hash Integrity \.\.\. sha256\+ OK/g)).toHaveLength(3);
    expect(out).toContain('Loading fdt from');
    expect(out).toContain('Starting kernel ...');
    expect(out).not.toContain('ERROR');
  });
});
