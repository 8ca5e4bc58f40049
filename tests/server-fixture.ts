/**
 * A real update server for tests: real keys from `keys init`, a real SQLite file and blob
 * folder in a temp dir, real HTTPS with mutual TLS on 127.0.0.1 port 0, real certificates
 * from the vendor CA, and a small HTTPS client that presents them.
 */
import { execFile } from 'node:child_process';
import { constants, createPrivateKey, createPublicKey, privateEncrypt } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enrollIdentity, loadIdentity, loadVendorCa, type Identity, type VendorCa } from '../sdk/keys/device';
import { issueCertificate } from '../sdk/keys/device-x509';
import { initKeys } from '../sdk/keys/keyset';
import { loadSigner } from '../sdk/keys/keyfile';
import type { Signer } from '../sdk/ota/metadata';
import { AdminClient } from '../sdk/ota/repository-http';
import { publishRelease, type PublishReport } from '../sdk/ota/repository-publish';
import { createUpdateServer, type UpdateServer } from '../update-server/app';
import type { FitVerifyKey } from '../sdk/fit/fit-verify';
import { listenHttps, type Listening } from '../update-server/http-node';
import { prepareServerKeys } from '../update-server/start';
import { SqliteStorage } from '../update-server/storage-sqlite';
import type { Storage } from '../update-server/storage';
import { CLI } from './helpers/cli';
import { makeImage } from './helpers/fixtures';

export interface RepoKeys {
  /** The vendor's full key set (offline). */
  keys: string;
  /** What the server gets: online keys, root.json, CA cert, server cert. */
  serverKeys: string;
  ca: VendorCa;
  targets: Signer;
}

export async function makeRepoKeys(work: string): Promise<RepoKeys> {
  const keys = join(work, 'keys');
  const serverKeys = join(work, 'server-keys');
  await initKeys({ dir: keys });
  await prepareServerKeys({ keysDir: keys, outDir: serverKeys });
  return { keys, serverKeys, ca: await loadVendorCa(keys), targets: await loadSigner(join(keys, 'targets-1.key')) };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface TestServer {
  app: UpdateServer;
  storage: Storage;
  listening: Listening;
  url: string;
  close(): Promise<void>;
}

export async function startTestServer(k: RepoKeys, dataDir: string, opts: {
  clock?: () => number;
  wrapStorage?: (s: SqliteStorage) => Storage;
  /** `signet server --open-local`: the dashboard and metrics open to loopback clients. */
  openLocal?: boolean;
  blobGraceS?: number;
  /** The boards' FIT public keys (`loadFitPublicKeys(k.serverKeys)`): boot images can be published. */
  fitKeys?: FitVerifyKey[];
} = {}): Promise<TestServer> {
  const sk = (f: string) => readFileSync(join(k.serverKeys, f), 'utf8');
  const sqlite = await SqliteStorage.open(dataDir);
  const storage = opts.wrapStorage ? opts.wrapStorage(sqlite) : sqlite;
  const app = await createUpdateServer({
    storage,
    rootBytes: new Uint8Array(readFileSync(join(k.serverKeys, 'root.json'))),
    snapshotSigners: [await loadSigner(join(k.serverKeys, 'snapshot.key'))],
    timestampSigners: [await loadSigner(join(k.serverKeys, 'timestamp.key'))],
    clock: opts.clock,
    openLocal: opts.openLocal,
    blobGraceS: opts.blobGraceS,
    fitKeys: opts.fitKeys,
  });
  const listening = await listenHttps(app, { certPem: sk('server.crt'), keyPem: sk('server.key'), caPem: sk('vendor-ca.crt') }, { port: 0 });
  return {
    app, storage, listening, url: listening.url,
    close: async () => {
      await listening.close();
      await sqlite.close();
    },
  };
}

export const DEFAULT_TEST_BOARD = 'qemu-virt-arm64';

/** `signet device enroll` as a library call; devices are enrolled for `board` (default qemu-virt-arm64). */
export async function enroll(k: RepoKeys, work: string, id: string, admin = false, bind: { board?: string; channel?: string } = {}): Promise<Identity> {
  const out = join(work, 'ids', id);
  await enrollIdentity({ id, keysDir: k.keys, outDir: out, admin, ...(admin ? {} : { board: bind.board ?? DEFAULT_TEST_BOARD, channel: bind.channel }) });
  return loadIdentity(out);
}

/** DER DigestInfo prefix of a SHA-256 digest (RFC 8017 §9.2 note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** Many device identities sharing one RSA key (issuing is fast; key generation is not). */
export function quickDevices(k: RepoKeys, ids: string[], bind: { board?: string; channel?: string } = {}): Identity[] {
  const board = bind.board ?? DEFAULT_TEST_BOARD;
  const channel = bind.channel ?? 'stable';
  const first = issueCertificate({ caCertPem: k.ca.certPem, caKeyPem: k.ca.keyPem, commonName: ids[0], role: 'device', days: 30, board, channel });
  const keyPem = first.keyPem!;
  const publicKeyPem = createPublicKey(keyPem).export({ format: 'pem', type: 'spki' }) as string;
  // The CA signature by Node's RSA (sha256WithRSAEncryption over forge's TBSCertificate): forge's
  // own RSA in JavaScript takes tens of ms a certificate, which hundreds of devices add up to.
  const caKey = createPrivateKey(k.ca.keyPem!);
  const caSigner = { sign: (digest: Uint8Array) => new Uint8Array(privateEncrypt({ key: caKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]))) };
  return ids.map((id, i) => {
    const c = i === 0 ? first : issueCertificate({ caCertPem: k.ca.certPem, caSigner, commonName: id, role: 'device', days: 30, publicKeyPem, board, channel });
    return { id, role: 'device', serial: c.serial, notAfter: c.notAfter.toISOString(), board, channel, certPem: c.certPem, keyPem, caPem: k.ca.certPem };
  });
}

export interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTPS request to the test server, with a client certificate or none. */
export function call(url: string, o: {
  id?: Pick<Identity, 'certPem' | 'keyPem'> | null;
  ca: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const raw = o.body === undefined ? undefined : o.body instanceof Uint8Array ? o.body : Buffer.from(JSON.stringify(o.body));
    const req = request(url, {
      method: o.method ?? (raw ? 'POST' : 'GET'),
      ca: o.ca,
      cert: o.id?.certPem,
      key: o.id?.keyPem,
      agent: false,
      headers: { ...(raw ? { 'content-type': 'application/json', 'content-length': raw.length } : {}), ...o.headers },
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const body = Buffer.concat(parts);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(raw);
  });
}

/** A signed app image from the key set's targets key. */
export async function releaseImage(k: RepoKeys, o: { version: string; securityCounter: number; board?: string; appBytes?: number }): Promise<Uint8Array> {
  const app = o.appBytes ? new Uint8Array(o.appBytes).map((_, i) => (i * 31 + 7) & 0xff) : undefined;
  return makeImage({ version: o.version, securityCounter: o.securityCounter, board: o.board, app, signers: [k.targets] });
}

/** `signet publish` as a library call: offline signing here, upload over mutual TLS. */
export async function publishImage(k: RepoKeys, url: string, admin: Identity, image: Uint8Array, work: string): Promise<PublishReport> {
  const file = join(work, 'release-' + Math.random().toString(36).slice(2) + '.simg');
  writeFileSync(file, image);
  return publishRelease({ imagePath: file, keysDir: k.keys, transport: new AdminClient(url, admin) });
}

/** The real `signet` CLI as a child process, without blocking this process's event loop. */
export function signetAsync(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, SIGNET_PASSPHRASE: '', ...env }, timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: String(stdout), stderr: String(stderr) }));
  });
}
