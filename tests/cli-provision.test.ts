/**
 * `signet device provision` through the real CLI into a real `signet disk` image: the device's
 * TLS key, certificate and settings land in the config store of the state partition (read
 * back here with the store's own decoder, the boot state untouched), and every refusal is one
 * coded line that leaves the disk as it was.
 */
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PartitionDevice } from '../bootloader/src/block';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { ConfigStore } from '../bootloader/src/configstore';
import { readState } from '../bootloader/src/state';
import { loadBoard, partition } from '../sdk/board';
import { provisionDevice } from '../sdk/disk/provision-device';
import { expectOneLineError, ROOT, signet } from './helpers/cli';
import { initSoftHsm } from './helpers/softhsm';

const board = loadBoard('qemu-virt-arm64');
const work = mkdtempSync(join(tmpdir(), 'signet-provision-'));
let keys: string;
let app: string;
let pristine: string;

function readRange(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** Hash of everything provisioning could touch: the state partition and slot A's head. */
function fingerprint(path: string): string {
  const st = partition(board, 'state');
  const a = partition(board, 'slot_a');
  return createHash('sha256').update(readRange(path, st.offset, st.size)).update(readRange(path, a.offset, 65536)).digest('hex');
}

function openStore(path: string): { store: ConfigStore; dev: FileBlockDevice; state: PartitionDevice } {
  const dev = new FileBlockDevice(path, board.flash.blockSize, false);
  const st = partition(board, 'state');
  const state = new PartitionDevice(dev, st.offset, st.size);
  return { store: ConfigStore.inStatePartition(state), dev, state };
}

function freshDisk(name: string): string {
  const p = join(work, name);
  copyFileSync(pristine, p);
  return p;
}

beforeAll(() => {
  keys = join(work, 'keys');
  expect(signet(['keys', 'init', '--dir', keys]).code).toBe(0);
  app = join(work, 'app.simg');
  const b = signet(['build', '--project', join(ROOT, 'examples', 'hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', keys, '--out', app, '--no-typecheck']);
  expect(b.code, b.stderr).toBe(0);
  pristine = join(work, 'disk.img');
  const d = signet(['disk', app, '--board', board.id, '--keys', keys, '--out', pristine], { env: { SOURCE_DATE_EPOCH: '1700000000' }, timeout: 300_000 });
  expect(d.code, d.stderr).toBe(0);
}, 600_000);

describe('signet device provision', () => {
  it('issues a key and certificate from the vendor CA and writes them with the settings into the config store', () => {
    const disk = freshDisk('one.img');
    const stateBefore = readState(openStore(disk).state);
    const r = signet(['device', 'provision', '--disk', disk, '--id', 'router-0001', '--board', board.id, '--ca-dir', keys, '--issue',
      '--set', 'wifi-name=attic', '--set', 'region=eu', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.written.map((w: { kind: string; name: string }) => w.kind + ':' + w.name).sort()).toEqual(
      ['file:admin.crt', 'file:device-id', 'file:vendor-ca.crt', 'secret:admin.key', 'setting:region', 'setting:wifi-name']);
    expect(r.stdout).not.toContain('PRIVATE KEY');

    const { store, dev, state } = openStore(disk);
    try {
      expect(store.get('wifi-name')).toBe('attic');
      expect(store.keys()).toEqual(['region', 'wifi-name']);
      expect(store.text('file', 'device-id')).toBe('router-0001');
      const cert = new X509Certificate(store.text('file', 'admin.crt'));
      const ca = new X509Certificate(store.text('file', 'vendor-ca.crt'));
      expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subject).toContain('CN=router-0001');
      expect(cert.subjectAltName).toContain('DNS:router-0001');
      const key = createPrivateKey(store.text('secret', 'admin.key'));
      expect(createPublicKey(key).export({ format: 'der', type: 'spki' })).toEqual(cert.publicKey.export({ format: 'der', type: 'spki' }));
      // The boot state is what `signet disk` wrote, both copies.
      const after = readState(state);
      expect(after).toEqual(stateBefore);
      expect(store.damaged()).toEqual([false, false]);
    } finally {
      dev.close();
    }

    // Provisioning again keeps what is there and replaces what it writes (one more store write).
    const again = signet(['device', 'provision', '--disk', disk, '--id', 'router-0001', '--board', board.id, '--set', 'wifi-name=garden']);
    expect(again.code, again.stderr).toBe(0);
    const s2 = openStore(disk);
    expect(s2.store.get('wifi-name')).toBe('garden');
    expect(s2.store.get('region')).toBe('eu');
    expect(s2.store.text('secret', 'admin.key')).toContain('PRIVATE KEY');
    s2.dev.close();
  }, 120_000);

  it('installs a given certificate and key after checking them against the CA and each other', () => {
    const disk = freshDisk('given.img');
    const other = join(work, 'other-keys');
    expect(signet(['keys', 'init', '--dir', other]).code).toBe(0);
    // A certificate and key from `device enroll` (vendor CA) and from another CA.
    const idDir = join(work, 'id-good');
    expect(signet(['device', 'enroll', '--id', 'router-0002', '--board', board.id, '--keys', keys, '--out', idDir]).code).toBe(0);
    const badDir = join(work, 'id-other');
    expect(signet(['device', 'enroll', '--id', 'router-0002', '--board', board.id, '--keys', other, '--out', badDir]).code).toBe(0);
    const before = fingerprint(disk);
    const base = ['device', 'provision', '--disk', disk, '--id', 'router-0002', '--board', board.id, '--ca-dir', keys];
    expectOneLineError(signet([...base, '--cert', join(badDir, 'client.crt'), '--key', join(badDir, 'client.key')]), 'E_PROVISION_CERT');
    expectOneLineError(signet([...base, '--cert', join(idDir, 'client.crt'), '--key', join(badDir, 'client.key')]), 'E_PROVISION_KEY');
    expect(fingerprint(disk)).toBe(before);
    const ok = signet([...base, '--cert', join(idDir, 'client.crt'), '--key', join(idDir, 'client.key')]);
    expect(ok.code, ok.stderr).toBe(0);
    const { store, dev } = openStore(disk);
    expect(store.text('file', 'admin.crt')).toBe(readFileSync(join(idDir, 'client.crt'), 'utf8'));
    expect(store.text('secret', 'admin.key')).toBe(readFileSync(join(idDir, 'client.key'), 'utf8'));
    expect(store.text('secret', 'admin.key')).toContain('PRIVATE KEY');
    dev.close();
  }, 120_000);

  it('refuses bad disks, wrong boards, bad options and a full store with one coded line, writing nothing', () => {
    const disk = freshDisk('refuse.img');
    const before = fingerprint(disk);
    const base = (extra: string[], d = disk, b = board.id) => signet(['device', 'provision', '--disk', d, '--id', 'router-0003', '--board', b, ...extra]);
    expectOneLineError(base([], app), 'E_DISK_NOT_A_DISK'); // an app image, not a disk
    expectOneLineError(base([], join(work, 'nowhere.img')), 'E_DISK_NOT_A_DISK');
    // A FIFO or a device as the disk is refused at once, not waited on (a FIFO blocked forever).
    const fifo = join(work, 'disk.fifo');
    spawnSync('mkfifo', [fifo]);
    expectOneLineError(base([], fifo), 'E_DISK_NOT_A_DISK');
    expectOneLineError(base([], '/dev/zero'), 'E_DISK_NOT_A_DISK');
    expectOneLineError(base([], disk, 'bpi-r4-router'), 'E_DISK_NOT_A_DISK'); // another board's layout
    expectOneLineError(base([], disk, 'no-such-board'), 'E_BOARD_UNKNOWN');
    // The right layout but no boot state: a disk whose state partition was wiped.
    const wiped = freshDisk('wiped.img');
    const st = partition(board, 'state');
    const fd = openSync(wiped, 'r+');
    const zeros = Buffer.alloc(st.size);
    writeSync(fd, zeros, 0, zeros.length, st.offset);
    closeSync(fd);
    expectOneLineError(base([], wiped), 'E_DISK_NOT_A_DISK');
    expectOneLineError(signet(['device', 'provision', '--disk', disk, '--id', 'bad id!', '--board', board.id]), 'E_PROVISION_ID');
    expectOneLineError(base(['--issue']), 'E_PROVISION_TLS'); // no --ca-dir
    expectOneLineError(base(['--cert', join(keys, 'vendor-ca.crt')]), 'E_PROVISION_TLS');
    expectOneLineError(base(['--set', 'Wifi=x']), 'E_PROVISION_SETTING');
    expectOneLineError(base(['--set', 'novalue']), 'E_PROVISION_SETTING');
    expectOneLineError(base(['--set', 'wifi-name=' + 'x'.repeat(1025)]), 'E_CONFIG_TOO_LARGE');
    const fill = Array.from({ length: 8 }, (_, i) => ['--set', `fill-${i}=` + 'y'.repeat(1024)]).flat();
    expectOneLineError(base(fill), 'E_CONFIG_FULL');
    expect(fingerprint(disk)).toBe(before);
  }, 120_000);

  it('--issue --ca-key pkcs11:… signs the device certificate with a CA key held in a token (SoftHSM); --ca-key without --issue is refused', () => {
    const hsm = initSoftHsm(join(work, 'hsm'));
    const cakeys = join(work, 'cakeys');
    mkdirSync(cakeys);
    const made = signet(['keys', 'new', '--role', 'ca', '--out', hsm.uri('ca-hsm'), '--pub', join(cakeys, 'vendor-ca.crt'), '--name', 'HSM provisioning CA'], { env: hsm.env });
    expect(made.code, made.stderr).toBe(0);
    expect(readdirSync(cakeys)).toEqual(['vendor-ca.crt']); // the CA's private key never leaves the token
    const disk = freshDisk('hsm.img');
    const r = signet(['device', 'provision', '--disk', disk, '--id', 'router-0005', '--board', board.id, '--ca-dir', cakeys, '--ca-key', hsm.uri('ca-hsm'), '--issue', '--json'], { env: hsm.env });
    expect(r.code, r.stderr).toBe(0);
    const { store, dev } = openStore(disk);
    const cert = new X509Certificate(store.text('file', 'admin.crt'));
    dev.close();
    expect(cert.subject).toContain('CN=router-0005');
    expect(cert.checkIssued(new X509Certificate(readFileSync(join(cakeys, 'vendor-ca.crt'))))).toBe(true);
    expect(cert.verify(new X509Certificate(readFileSync(join(cakeys, 'vendor-ca.crt'))).publicKey)).toBe(true);
    expect(cert.checkIssued(new X509Certificate(readFileSync(join(keys, 'vendor-ca.crt'))))).toBe(false); // not the file CA's
    const other = freshDisk('hsm-refused.img');
    const before = fingerprint(other);
    expectOneLineError(signet(['device', 'provision', '--disk', other, '--id', 'router-0006', '--board', board.id, '--ca-dir', cakeys, '--ca-key', hsm.uri('ca-hsm'), '--set', 'region=eu'], { env: hsm.env }), 'E_PROVISION_TLS');
    expectOneLineError(signet(['device', 'provision', '--disk', other, '--id', 'router-0006', '--board', board.id, '--ca-dir', cakeys, '--ca-key', hsm.uri('no-such-key'), '--issue'], { env: hsm.env }), 'E_KEY_PKCS11');
    expect(fingerprint(other)).toBe(before);
    expect(existsSync(join(cakeys, 'vendor-ca.key'))).toBe(false);
  }, 120_000);

  it('refuses a disk whose app is for another board with the same flash layout (E_PROVISION_BOARD), writing nothing', async () => {
    const disk = freshDisk('other-board.img');
    const before = fingerprint(disk);
    const twin = { ...board, id: 'qemu-virt-arm64-twin' }; // same layout, another id
    await expect(provisionDevice({ disk, board: twin, id: 'router-0004', settings: { 'wifi-name': 'x' } })).rejects.toMatchObject({ code: 'E_PROVISION_BOARD' });
    expect(fingerprint(disk)).toBe(before);
  });
});
