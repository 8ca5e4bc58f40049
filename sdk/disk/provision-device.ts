/**
 * Per-device provisioning of a disk image (`signet device provision`): the device's TLS key
 * and certificate (issued by the vendor CA, for its HTTPS admin page) and initial settings go
 * into the config store in the state partition (docs/boot-state.md §Config store), so no
 * secret is ever in an image. Everything is checked, and the whole new store encoded, before
 * one store write; a refusal leaves the disk as it was.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import type { Board } from '../board';
import { partition } from '../board';
import { PartitionDevice } from '../../bootloader/src/block';
import { FileBlockDevice } from '../../bootloader/src/block-file';
import { ConfigStore, checkKey, type ConfigEntry, type ConfigKind } from '../../bootloader/src/configstore';
import { ConfigError } from '../../bootloader/src/config-errors';
import { readSlotImage } from '../../bootloader/src/stage';
import { readState } from '../../bootloader/src/state';
import { decodeLayout } from '../image/format';
import { decodeManifest } from '../image/manifest';
import { IDENTITY_ID, loadIdentity, loadVendorCa, type Identity, type VendorCa } from '../keys/device';
import { AGENT_FILES } from '../ota/agent-device';
import { issueCertificate } from '../keys/device-x509';
import { MAX_PEM_FILE, readInputText } from '../util/files';
import { utf8Encode } from '../util/bytes';
import { readDiskBootImage } from './disk';
import { DiskError } from './errors';
import { ProvisionError } from './provision-errors';

/** Names in the store: what the runtime's config.file()/config.secret() take. */
export const PROVISION_NAMES = { cert: 'admin.crt', key: 'admin.key', ca: 'vendor-ca.crt', id: 'device-id' } as const;

export interface ProvisionDeviceOptions {
  disk: string;
  board: Board;
  id: string;
  /** Folder with vendor-ca.crt (and vendor-ca.key for --issue). */
  caDir?: string;
  /** The vendor CA key in a PKCS#11 token (`pkcs11:…`) for `issue`, instead of vendor-ca.key in caDir. */
  caKey?: string;
  tls?: { issue: true; days?: number; hosts?: string[] } | { certFile: string; keyFile: string };
  /**
   * The device's update-server identity (a `signet device enroll` folder): its client
   * certificate, key and the vendor CA go in as the OTA agent's files (sdk/ota/agent-device.ts).
   */
  identity?: string;
  /** Initial settings, name → value. */
  settings?: Record<string, string>;
  now?: Date;
}

export interface ProvisionDeviceResult {
  disk: string;
  id: string;
  board: string;
  written: { kind: ConfigKind; name: string; bytes: number }[];
  certSerial: string | null;
  certNotAfter: string | null;
  storeBytes: number;
  seq: number;
}

/** Parse `name=value` settings (the CLI's --set). */
export function parseSettings(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of list) {
    const eq = s.indexOf('=');
    if (eq < 1) throw new ProvisionError('E_PROVISION_SETTING', `--set ${JSON.stringify(s.slice(0, 40))} is not name=value`);
    try {
      out[checkKey(s.slice(0, eq))] = s.slice(eq + 1);
    } catch (e) {
      throw new ProvisionError('E_PROVISION_SETTING', `--set ${JSON.stringify(s.slice(0, eq).slice(0, 40))}: not a valid setting name`, e);
    }
  }
  return out;
}

/** The disk must be a `signet disk` image for this board with an intact boot state. */
function checkDisk(path: string, board: Board): void {
  readDiskBootImage(path, board); // size, GPT at the board's offsets, a FIT in the boot partition
  try {
    accessSync(path, constants.W_OK);
  } catch (e) {
    throw new DiskError('E_DISK_NOT_A_DISK', `${path} is not writable`, 'provision a copy you can write', e);
  }
  const dev = new FileBlockDevice(path, board.flash.blockSize, false, board.flash.eraseBlockSize);
  try {
    const slotA = partition(board, 'slot_a');
    let imageBoard: string;
    try {
      imageBoard = decodeManifest(decodeLayout(readSlotImage(new PartitionDevice(dev, slotA.offset, slotA.size))).manifestBytes).board;
    } catch (e) {
      throw new DiskError('E_DISK_NOT_A_DISK', `slot A of ${path} holds no Signet app image`, `make the disk with \`signet disk --board ${board.id}\``, e);
    }
    if (imageBoard !== board.id) throw new ProvisionError('E_PROVISION_BOARD', `${path} carries an app for ${imageBoard}, not ${board.id}`);
    const st = partition(board, 'state');
    if (!readState(new PartitionDevice(dev, st.offset, st.size)).state) {
      throw new DiskError('E_DISK_NOT_A_DISK', `the state partition of ${path} holds no boot state`, `make the disk with \`signet disk --board ${board.id}\``);
    }
  } finally {
    dev.close();
  }
}

function readCaCert(caDir: string): string {
  return readInputText(`${caDir}/vendor-ca.crt`, MAX_PEM_FILE, 'certificate');
}

interface Tls { certPem: string; keyPem: string; caPem: string | null; serial: string; notAfter: string }

async function issuedTls(o: ProvisionDeviceOptions, ca: VendorCa, days: number, hosts: string[]): Promise<Tls> {
  const dns = hosts.length ? hosts : [o.id];
  const c = issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, caSigner: ca.signer, commonName: o.id, role: 'server', days, now: o.now, dnsNames: dns });
  return { certPem: c.certPem, keyPem: c.keyPem!, caPem: ca.certPem, serial: c.serial, notAfter: c.notAfter.toISOString() };
}

function givenTls(certFile: string, keyFile: string, caPem: string | null): Tls {
  const certPem = readInputText(certFile, MAX_PEM_FILE, 'certificate');
  const keyPem = readInputText(keyFile, MAX_PEM_FILE, 'key file');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new ProvisionError('E_PROVISION_CERT', `${certFile} is not a PEM certificate`, e);
  }
  if (caPem !== null && !cert.checkIssued(new X509Certificate(caPem))) {
    throw new ProvisionError('E_PROVISION_CERT', `${certFile} was not issued by the vendor CA`);
  }
  if (caPem !== null && !cert.verify(new X509Certificate(caPem).publicKey)) {
    throw new ProvisionError('E_PROVISION_CERT', `${certFile} does not carry the vendor CA's signature`);
  }
  let same = false;
  try {
    const pub = createPublicKey(createPrivateKey(keyPem)).export({ format: 'der', type: 'spki' });
    same = Buffer.compare(pub, cert.publicKey.export({ format: 'der', type: 'spki' })) === 0;
  } catch (e) {
    throw new ProvisionError('E_PROVISION_KEY', `${keyFile} is not an unencrypted PEM private key`, e);
  }
  if (!same) throw new ProvisionError('E_PROVISION_KEY', `${keyFile} is not the key of ${certFile}`);
  return { certPem, keyPem, caPem, serial: cert.serialNumber.toLowerCase(), notAfter: new Date(cert.validTo).toISOString() };
}

export async function provisionDevice(o: ProvisionDeviceOptions): Promise<ProvisionDeviceResult> {
  if (!IDENTITY_ID.test(o.id)) throw new ProvisionError('E_PROVISION_ID', `device id ${JSON.stringify(o.id.slice(0, 70))} is not valid`);
  checkDisk(o.disk, o.board);

  let identity: Identity | null = null;
  if (o.identity !== undefined) {
    try {
      identity = loadIdentity(o.identity);
    } catch (e) {
      throw new ProvisionError('E_PROVISION_IDENTITY', `${o.identity} is not a readable device identity`, e);
    }
    if (identity.role !== 'device') throw new ProvisionError('E_PROVISION_IDENTITY', `${o.identity} is an ${identity.role} identity, not a device's`);
    if (identity.id !== o.id) throw new ProvisionError('E_PROVISION_IDENTITY', `${o.identity} is the identity of ${identity.id}, not ${o.id}`);
    if (identity.board !== o.board.id) throw new ProvisionError('E_PROVISION_IDENTITY', `${o.identity} was enrolled for board ${identity.board}, not ${o.board.id}`);
  }

  let tls: Tls | null = null;
  if (o.tls && 'issue' in o.tls) {
    if (!o.caDir) throw new ProvisionError('E_PROVISION_TLS', '--issue needs --ca-dir (the folder with vendor-ca.crt and vendor-ca.key)');
    tls = await issuedTls(o, await loadVendorCa(o.caDir, undefined, o.caKey), o.tls.days ?? 825, o.tls.hosts ?? []);
  } else if (o.tls) {
    tls = givenTls(o.tls.certFile, o.tls.keyFile, o.caDir ? readCaCert(o.caDir) : null);
  }

  const add: ConfigEntry[] = [];
  const put = (kind: ConfigKind, name: string, value: string) => add.push({ kind, key: name, value: utf8Encode(value) });
  put('file', PROVISION_NAMES.id, o.id);
  if (tls) {
    put('file', PROVISION_NAMES.cert, tls.certPem);
    put('secret', PROVISION_NAMES.key, tls.keyPem);
    if (tls.caPem) put('file', PROVISION_NAMES.ca, tls.caPem);
  }
  if (identity) {
    put('file', AGENT_FILES.cert, identity.certPem);
    put('secret', AGENT_FILES.key, identity.keyPem);
    put('file', AGENT_FILES.ca, identity.caPem);
  }
  for (const [k, v] of Object.entries(o.settings ?? {})) put('setting', k, v);

  const file = new FileBlockDevice(o.disk, o.board.flash.blockSize, true, o.board.flash.eraseBlockSize);
  try {
    const st = partition(o.board, 'state');
    const store = ConfigStore.inStatePartition(new PartitionDevice(file, st.offset, st.size));
    store.putAll(add); // every cap checked before its single write
    return {
      disk: o.disk, id: o.id, board: o.board.id,
      written: add.map((e) => ({ kind: e.kind, name: e.key, bytes: e.value.length })),
      certSerial: tls?.serial ?? null, certNotAfter: tls?.notAfter ?? null,
      storeBytes: store.used(), seq: store.seq(),
    };
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new DiskError('E_DISK_NOT_A_DISK', `cannot write the config store of ${o.disk}`, 'check the disk image', e);
  } finally {
    file.close();
  }
}
