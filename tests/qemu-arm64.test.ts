// qemu-virt-arm64 for real: Debian's cloud-arm64 kernel, our initramfs, the boot stage on the
// Duktape host as /init, in qemu-system-aarch64 — three guests booted concurrently:
//
//  1. U-Boot (Debian's qemu_arm64) as firmware with our key in its control DTB: a FIT with one
//     initramfs byte flipped and a FIT signed by another key are refused (U-Boot's console),
//     then U-Boot's bootcmd loads the real FIT from the disk made by `signet disk`, unpacks its
//     gzip'd kernel, and the example app's line appears after boot[OK].
//  2. `signet run --direct`: slot A tampered by one byte → the stage refuses A (E_DIGEST) and
//     falls back to the older valid image in slot B.
//  3. An app that stages updates: a lower security counter is refused (E_ROLLBACK), a higher
//     one is written to slot B and armed for a trial boot.
//
// Consoles are read through unix sockets. Timeouts are liveness bounds, not assertions.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionDevice } from '../bootloader/src/block';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { readState } from '../bootloader/src/state';
import { loadBoard } from '../sdk/board';
import { startArm64 } from '../sdk/disk/run-arm64';
import { decodeFdt, findNode, getProp } from '../sdk/fit/fdt';
import { decodeLayout } from '../sdk/image/format';
import { CLI, ROOT, signet } from './helpers/cli';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const part = (name: string) => board.flash.partitions.find((p) => p.name === name)!;
const BOOT_TIMEOUT = 600_000; // TCG on a loaded 2-core machine; a liveness bound only
const TEST_TIMEOUT = 1_200_000;

/** U-Boot RAM addresses for the two FITs it must refuse (well clear of the kernel and U-Boot). */
const BAD_FIT_ADDRS = { tampered: 0x60000000, otherKey: 0x68000000 } as const;

describe.skipIf(!available)('qemu-virt-arm64 boots signet disk images', () => {
  let work: string;
  let keys: string;
  const ok = (r: { code: number; stderr: string; stdout: string }) => expect(r.code, r.stderr + r.stdout).toBe(0);

  function build(name: string, version: string, counter: number, project = join(ROOT, 'examples', 'hello')): string {
    const out = join(work, `${name}.simg`);
    ok(signet(['build', '--project', project, '--version', version, '--security-counter', String(counter), '--keys', keys, '--out', out, '--no-typecheck']));
    return out;
  }

  beforeAll(() => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'qemu-arm64-'));
    keys = join(work, 'keys');
    ok(signet(['keys', 'init', '--dir', keys]));
    const t = { timeout: 300_000 };

    // 1. the example app, a disk for U-Boot, and two FITs U-Boot must refuse.
    const app = build('hello-1.2.0', '1.2.0', 3);
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', join(work, 'uboot.img'), '--key-dtb', join(work, 'pub.dtb')], t));
    const fit = readFileSync(join(work, 'uboot.img')).subarray(part('boot').offset);
    const fitBytes = fit.subarray(0, fit.readUInt32BE(4));
    const tampered = Buffer.from(fitBytes);
    // One byte in the middle of the (zstd'd) initramfs, which holds the boot stage and the trust anchor.
    const ramdisk = getProp(findNode(decodeFdt(new Uint8Array(fitBytes)).root, '/images/ramdisk')!, 'data')!;
    const ramdiskAt = tampered.indexOf(Buffer.from(ramdisk.subarray(0, 64)));
    expect(ramdiskAt).toBeGreaterThan(0);
    tampered[ramdiskAt + (ramdisk.length >> 1)] ^= 0x01;
    writeFileSync(join(work, 'tampered.itb'), tampered);
    ok(signet(['keys', 'init', '--dir', join(work, 'other-keys')]));
    ok(signet(['fit', '--board', board.id, '--keys', join(work, 'other-keys'), '--out', join(work, 'other-key.itb')], t));

    // 2. slot A tampered by one byte of its payload, an older valid image in slot B.
    const older = build('hello-1.1.0', '1.1.0', 2);
    ok(signet(['disk', app, '--slot-b', older, '--board', board.id, '--keys', keys, '--out', join(work, 'fallback.img')], t));
    const simg = readFileSync(app);
    const layout = decodeLayout(new Uint8Array(simg));
    const disk = readFileSync(join(work, 'fallback.img'));
    disk[part('slot_a').offset + 32 + layout.header.manifestSize + 10] ^= 0x01;
    writeFileSync(join(work, 'fallback.img'), disk);

    // 3. an app that stages two updates it carries: counter 1 (below the floor) and counter 5.
    const low = readFileSync(build('hello-1.0.0', '1.0.0', 1)).toString('hex');
    const high = readFileSync(build('hello-1.4.0', '1.4.0', 5)).toString('hex');
    const proj = join(work, 'stager');
    mkdirSync(join(proj, 'src'), { recursive: true });
    writeFileSync(join(proj, 'signet.json'), JSON.stringify({ name: 'stager', board: board.id, entry: 'src/main.ts', assets: [] }));
    writeFileSync(
      join(proj, 'src', 'main.ts'),
      `declare const __signet_host: { log(l: string): void; stage(b: Uint8Array): string; confirm(): void };
function bytes(hex: string): Uint8Array {
  var b = new Uint8Array(hex.length / 2);
  for (var i = 0; i < b.length; i++) b[i] = parseInt(hex.substr(2 * i, 2), 16);
  return b;
}
var updates = [{ version: '1.0.0', hex: '${low}' }, { version: '1.4.0', hex: '${high}' }];
__signet_host.confirm();
for (var i = 0; i < updates.length; i++) {
  try {
    __signet_host.log('app[update] staged version=' + __signet_host.stage(bytes(updates[i].hex)));
  } catch (e) {
    __signet_host.log('app[update] refused version=' + updates[i].version + ' code=' + (e as { code?: string }).code);
  }
}
`,
    );
    const stager = build('stager-1.3.0', '1.3.0', 4, proj);
    ok(signet(['disk', stager, '--board', board.id, '--keys', keys, '--out', join(work, 'stage.img')], t));
  }, 900_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.concurrent('U-Boot refuses a tampered FIT and one signed by another key, then boots ours from the disk', async () => {
    const fitLoads = Object.entries({ tampered: 'tampered.itb', otherKey: 'other-key.itb' }).flatMap(([k, f]) => [
      '-device', `loader,file=${join(work, f)},addr=0x${BAD_FIT_ADDRS[k as keyof typeof BAD_FIT_ADDRS].toString(16)},force-raw=on`,
    ]);
    const { guest, mode, cleanup } = await startArm64({
      board, disk: join(work, 'uboot.img'), halt: true, keyDtb: new Uint8Array(readFileSync(join(work, 'pub.dtb'))), bootdelay: 5, extraArgs: fitLoads,
    });
    try {
      expect(mode).toBe('uboot');
      const banner = await guest.waitFor('Hit any key to stop autoboot', BOOT_TIMEOUT);
      guest.send(' ');
      await guest.waitFor('=> ', BOOT_TIMEOUT);
      expect(banner).toContain('Loading Environment from Flash... OK'); // our environment image, CRC accepted
      // U-Boot's control DTB has no NOR flash node (bootControlDtb): no CFI probe, and no flash
      // driver to rewrite its environment or itself with.
      expect(banner).toContain('Flash: 0 Bytes');
      expect(await guest.command('saveenv')).toContain('Failed (1)');

      // U-Boot reads the GPT `signet disk` wrote.
      await guest.command('virtio scan');
      const parts = await guest.command('part list virtio 0');
      for (const p of board.flash.partitions) {
        const lba = (n: number) => '0x' + n.toString(16).padStart(8, '0');
        expect(parts).toMatch(new RegExp(`${lba(p.offset / 512)}\\s+${lba((p.offset + p.size) / 512 - 1)}\\s+"${p.name}"`));
      }

      const tampered = await guest.command(`bootm 0x${BAD_FIT_ADDRS.tampered.toString(16)}`, '\n=> ', BOOT_TIMEOUT);
      expect(tampered).toContain('sha256,rsa2048:fit+ OK'); // the configuration is still signed...
      expect(tampered).toContain("Bad hash value for 'hash-1' hash node in 'ramdisk' image node"); // ...but the initramfs is not what was signed
      expect(tampered).not.toContain('Starting kernel');

      const otherKey = await guest.command(`bootm 0x${BAD_FIT_ADDRS.otherKey.toString(16)}`, '\n=> ', BOOT_TIMEOUT);
      expect(otherKey).toMatch(/sha256,rsa2048:fit-\s+error!/);
      expect(otherKey).toContain("Failed to verify required signature 'key-fit'");
      expect(otherKey).not.toContain('Starting kernel');

      guest.send('boot\r'); // the environment's bootcmd: virtio read of the boot partition, bootm
      const booted = await guest.waitFor('boot[HALT]', BOOT_TIMEOUT);
      expect(booted).toMatch(/virtio read: device 0 block # 2048, count \d+ \.\.\. \d+ blocks read: OK/);
      expect(booted.match(/sha256,rsa2048:fit\+ OK/g)?.length).toBe(3);
      expect(booted).toMatch(/Compression:\s+gzip compressed/); // the FIT's kernel, unpacked by bootm
      expect(booted).toContain('Uncompressing Kernel Image');
      expect(booted).toContain('Starting kernel ...');
      const lines = booted.split(/\r?\n/);
      const okAt = lines.findIndex((l) => l === 'boot[OK] slot=a version=1.2.0');
      const appAt = lines.findIndex((l) => l === 'hello from signet');
      expect(okAt).toBeGreaterThan(lines.findIndex((l) => l.includes('Starting kernel')));
      expect(appAt).toBeGreaterThan(okAt);
      expect(booted).not.toMatch(/host\[(WARN|ERROR)\]|boot\[(FALLBACK|RECOVERY|APP-ERROR)\]/);
      expect(await guest.waitExit(BOOT_TIMEOUT)).toBe(0); // the guest powered itself off
    } finally {
      await guest.close();
      cleanup();
    }
  }, TEST_TIMEOUT);

  it.concurrent('signet run: slot A with one byte flipped is refused, the older image in slot B boots', async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'run', join(work, 'fallback.img'), '--board', board.id, '--direct', '--halt', '--timeout', '600'], {
        env: { ...process.env, SIGNET_PASSPHRASE: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    const lines = r.stdout.split(/\r?\n/).filter((l) => /^(boot|app|hello)/.test(l));
    expect(lines).toEqual(['boot[FALLBACK] slot=a reason=E_DIGEST', 'boot[OK] slot=b version=1.1.0', 'hello from signet', 'boot[HALT]']);
    // The decision is on the flash: A marked bad with its code, B active.
    const dev = new FileBlockDevice(join(work, 'fallback.img'), 512, false);
    const st = readState(new PartitionDevice(dev, part('state').offset, part('state').size)).state;
    dev.close();
    expect(st).toMatchObject({ active: 'b', slotA: 'bad', slotB: 'good', lastError: 'E_DIGEST', lastResult: 'fallback' });
  }, TEST_TIMEOUT);

  it.concurrent('an update with a lower security counter is refused; a higher one is staged for a trial boot', async () => {
    const { guest, cleanup } = await startArm64({ board, disk: join(work, 'stage.img'), direct: true, halt: true });
    try {
      const out = await guest.waitFor('boot[HALT]', BOOT_TIMEOUT);
      const lines = out.split(/\r?\n/).filter((l) => /^(boot|app)\[/.test(l));
      expect(lines).toEqual([
        'boot[OK] slot=a version=1.3.0',
        'app[update] refused version=1.0.0 code=E_ROLLBACK',
        expect.stringMatching(/^boot\[STAGE-WRITE\] slot=b bytes=\d+$/), // 1.4.0 is written; the refused 1.0.0 wrote nothing
        'boot[STAGED] slot=b version=1.4.0 tries=3',
        'app[update] staged version=1.4.0',
        'boot[HALT]',
      ]);
      expect(await guest.waitExit(BOOT_TIMEOUT)).toBe(0);
    } finally {
      await guest.close();
      cleanup();
    }
    const dev = new FileBlockDevice(join(work, 'stage.img'), 512, false);
    const st = readState(new PartitionDevice(dev, part('state').offset, part('state').size)).state;
    dev.close();
    expect(st).toMatchObject({ active: 'a', slotA: 'good', slotB: 'trial', securityFloor: 4 });
  }, TEST_TIMEOUT);
});
