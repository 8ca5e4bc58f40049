/**
 * `signet flash` refuses a disk that would not verify on the board before any byte is sent:
 * an app image signed by a key the vendor's root does not trust, an app image built for another
 * board, a boot image signed by another FIT key. A live board (real U-Boot in QEMU behind a
 * recording relay) sits on the port; the relay proves that nobody even connected.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { UbootRig } from './helpers/uboot-rig';
import { ROOT, expectOneLineError, signet } from './helpers/cli';
import { runSignetAsync as runSignet } from './helpers/flash';
import { skipUnlessCi } from './helpers/tools';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const part = (name: string) => board.flash.partitions.find((p) => p.name === name)!;

describe.skipIf(skipUnlessCi(available))('signet flash refuses a disk that does not verify, before sending anything', () => {
  let work: string;
  let keys: string;
  let good: Buffer;
  let rig: UbootRig;
  const ok = (r: { code: number | null; stderr: string; stdout: string }) => expect(r.code, r.stderr + r.stdout).toBe(0);
  const variant = (name: string, patch: (disk: Buffer) => void): string => {
    const d = Buffer.from(good);
    patch(d);
    const path = join(work, `${name}.img`);
    writeFileSync(path, d);
    return path;
  };

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'flash-refuse-'));
    keys = join(work, 'keys');
    const otherKeys = join(work, 'other-keys');
    ok(signet(['keys', 'init', '--dir', keys]));
    ok(signet(['keys', 'init', '--dir', otherKeys]));
    const build = (project: string, k: string, out: string) =>
      ok(signet(['build', '--project', project, '--version', '1.2.0', '--security-counter', '3', '--keys', k, '--out', out, '--no-typecheck']));
    const hello = join(ROOT, 'examples', 'hello');
    build(hello, keys, join(work, 'app.simg'));
    build(hello, otherKeys, join(work, 'app-other-key.simg'));
    const xen = join(work, 'hello-xen');
    cpSync(hello, xen, { recursive: true });
    writeFileSync(join(xen, 'signet.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(hello, 'signet.json'), 'utf8')), board: 'xen-arm32' }));
    build(xen, keys, join(work, 'app-xen.simg'));
    ok(signet(['disk', join(work, 'app.simg'), '--board', board.id, '--keys', keys, '--out', join(work, 'good.img'), '--key-dtb', join(work, 'key.dtb')], { timeout: 600_000 }));
    ok(signet(['fit', '--board', board.id, '--keys', otherKeys, '--out', join(work, 'other-key.itb')], { timeout: 600_000 }));
    good = readFileSync(join(work, 'good.img'));
    rig = await UbootRig.start({ board, keyDtb: new Uint8Array(readFileSync(join(work, 'key.dtb'))) });
  }, 900_000);

  afterAll(async () => {
    await rig?.stop();
    rig?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const refused = async (disk: string, reason: RegExp, what: string) => {
    const r = await runSignet(['flash', disk, '--board', board.id, '--port', rig.address, '--keys', keys]);
    expectOneLineError(r, 'E_FLASH_REFUSED');
    expect(r.stderr).toContain(what);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toContain('nothing was sent to the board');
    expect(rig.connections).toBe(0);
    expect(rig.bytesFromHost).toBe(0);
  };

  it('slot A signed by a key the root does not trust', async () => {
    const app = readFileSync(join(work, 'app-other-key.simg'));
    const disk = variant('other-key-app', (d) => app.copy(d, part('slot_a').offset));
    await refused(disk, /\(E_(UNKNOWN_KEY|THRESHOLD): /, 'slot A');
  });

  it('slot A built for another board', async () => {
    const app = readFileSync(join(work, 'app-xen.simg'));
    const disk = variant('xen-app', (d) => app.copy(d, part('slot_a').offset));
    await refused(disk, /\(E_BOARD: /, 'slot A');
  });

  it('a boot image signed by another FIT key', async () => {
    const fit = readFileSync(join(work, 'other-key.itb'));
    const boot = part('boot');
    const disk = variant('other-key-fit', (d) => {
      d.fill(0, boot.offset, boot.offset + boot.size);
      fit.copy(d, boot.offset);
    });
    await refused(disk, /\(E_FIT_[A-Z_]+: /, 'boot image');
  });

  it('the same refusals with --root and --key-dtb (no private key needed)', async () => {
    const app = readFileSync(join(work, 'app-xen.simg'));
    const disk = variant('xen-app-2', (d) => app.copy(d, part('slot_a').offset));
    const r = await runSignet(['flash', disk, '--board', board.id, '--port', rig.address, '--root', join(keys, 'root.json'), '--key-dtb', join(work, 'key.dtb')]);
    expectOneLineError(r, 'E_FLASH_REFUSED');
    expect(rig.bytesFromHost).toBe(0);
  });

  it('a good disk passes verification and only then is the port opened', async () => {
    const r = await runSignet(['flash', join(work, 'good.img'), '--board', board.id, '--port', `unix:${join(work, 'no-such.sock')}`, '--keys', keys]);
    expectOneLineError(r, 'E_TRANSPORT_OPEN');
  });

  it('usage: trust material is required, one way or the other', async () => {
    const none = await runSignet(['flash', join(work, 'good.img'), '--board', board.id, '--port', rig.address]);
    expectOneLineError(none, 'E_USAGE');
    expect(none.code).toBe(2);
    const both = await runSignet(['flash', join(work, 'good.img'), '--board', board.id, '--port', rig.address, '--keys', keys, '--root', join(keys, 'root.json')]);
    expectOneLineError(both, 'E_USAGE');
    expect(rig.connections).toBe(0);
  });
});
