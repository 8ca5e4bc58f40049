/**
 * `signet server`: open the data folder, load the online keys, make sure no offline key is
 * within reach, get a TLS certificate, build the app and listen. Also `signet server keys`,
 * which prepares a server keys folder from a vendor's full key set.
 *
 * What the keys folder may hold: snapshot.key, timestamp.key, root.json, vendor-ca.crt, and
 * optionally server.crt/server.key and vendor-ca.key (only needed to issue the server
 * certificate on first start). A root-*.key or targets-*.key in it stops the server: those
 * keys sign releases and trust, and a server is the machine most exposed to the network.
 */
import { FIT_KEY_FILE, FIT_KEY_NAME, loadFitSigner } from '../sdk/disk/fit-key';
import { requiredConfKeys, type FitVerifyKey } from '../sdk/fit/fit-verify';
import { publicKeyDtb, readPublicKeysFromDtb } from '../sdk/fit/keydtb';
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { issueServerTls, loadVendorCa, type ServerTls } from '../sdk/keys/device';
import { loadSigner } from '../sdk/keys/keyfile';
import type { Signer } from '../sdk/ota/metadata';
import { envOrPromptPassphrase, type PassphraseSource } from '../sdk/keys/passphrase';
import { MAX_ROOT_BYTES } from '../sdk/ota/root-file';
import { MAX_PEM_FILE, readInputFile, readInputText } from '../sdk/util/files';
import { createDirAtomic, outputFolderState, writeFileAtomic } from '../sdk/util/fs-atomic';
import { createUpdateServer, type UpdateServer } from './app';
import { ServerError } from './errors';
import { openAccessLog, type AccessLog, type AccessLogSink } from './access-log';
import { listenHttps, type Listening } from './http-node';
import type { ServerLimits } from './limits';
import type { Storage } from './storage';
import { isPostgresUrl, PostgresStorage } from './storage-postgres';
import { prepareDataDir, SqliteStorage } from './storage-sqlite';

export const DEFAULT_HOSTS = ['localhost', '127.0.0.1', '::1'];
const OFFLINE_KEY = /^(root|targets)(-\d+)?\.key$|^fit\.key$/;

export interface StartOptions {
  dataDir: string;
  keysDir: string;
  /** `postgres://…` for PostgreSQL (shared by replicas); absent or `sqlite`: SQLite in dataDir. */
  db?: string;
  port: number;
  /** Address to bind (default 127.0.0.1). */
  bind?: string;
  /** Names for the server certificate when one is issued (default localhost, 127.0.0.1, ::1). */
  hosts?: string[];
  openLocal?: boolean;
  passphrases?: PassphraseSource;
  timestampExpiresS?: number;
  /** How often to check whether the timestamp needs re-signing (ms). */
  tickMs?: number;
  /** Overrides of the connection and rate limits (limits.ts, `--limit NAME=VALUE`). */
  limits?: Partial<ServerLimits>;
  /** Where the access log goes (default stderr; `file` is <data>/access.log). */
  accessLog?: AccessLogSink;
  /** Log and survive an exception nothing else caught (`signet server` sets it; tests do not). */
  safetyNet?: boolean;
}

export interface Running {
  app: UpdateServer;
  listening: Listening;
  url: string;
  tlsCreated: boolean;
  /**
   * Load the online keys again from the keys folder (SIGHUP): checked like at start (no offline
   * key in the folder, the keys the root in force names); on any refusal the keys in force stay.
   */
  reloadKeys(): Promise<{ snapshot: string[]; timestamp: string[] }>;
  close(): Promise<void>;
}

/** Refuse a keys folder that holds offline private keys. */
export function checkServerKeysDir(keysDir: string): void {
  let names: string[];
  try {
    names = readdirSync(keysDir);
  } catch (e) {
    throw new ServerError('E_SERVER_CONFIG', 'cannot read the keys folder ' + keysDir, e);
  }
  const offline = names.filter((n) => OFFLINE_KEY.test(n)).sort();
  if (offline.length) {
    throw new ServerError('E_SERVER_OFFLINE_KEYS', `${keysDir} holds offline private keys (${offline.join(', ')}); the server must never have them`);
  }
  for (const need of ['snapshot.key', 'timestamp.key', 'root.json', 'vendor-ca.crt']) {
    if (!names.includes(need)) throw new ServerError('E_SERVER_CONFIG', `${keysDir} has no ${need}`);
  }
}

async function serverTls(o: StartOptions): Promise<{ tls: ServerTls; created: boolean }> {
  const caPem = readInputText(join(o.keysDir, 'vendor-ca.crt'), MAX_PEM_FILE, 'certificate');
  const inKeys = [join(o.keysDir, 'server.crt'), join(o.keysDir, 'server.key')];
  const inData = [join(o.dataDir, 'tls', 'server.crt'), join(o.dataDir, 'tls', 'server.key')];
  for (const [crt, key] of [inKeys, inData]) {
    if (existsSync(crt) && existsSync(key)) return { tls: { certPem: readInputText(crt, MAX_PEM_FILE, 'certificate'), keyPem: readInputText(key, MAX_PEM_FILE, 'key file'), caPem }, created: false };
  }
  if (!existsSync(join(o.keysDir, 'vendor-ca.key'))) {
    throw new ServerError('E_SERVER_TLS', `no server certificate in ${o.keysDir} or ${join(o.dataDir, 'tls')}, and no vendor-ca.key to issue one`);
  }
  // First start: issue the server certificate from the vendor CA and keep it in the data folder.
  const ca = await loadVendorCa(o.keysDir, o.passphrases ?? envOrPromptPassphrase);
  const tls = issueServerTls(ca, o.hosts?.length ? o.hosts : DEFAULT_HOSTS);
  writeFileAtomic(inData[1], tls.keyPem, 0o600);
  writeFileAtomic(inData[0], tls.certPem);
  return { tls, created: true };
}

/** snapshot.key and the next ones of a rotation (snapshot-2.key, …); the repository signs with those root names. */
const ONLINE_KEY = (role: string) => new RegExp('^' + role + '(-\\d{1,4})?\\.key$');

function onlineKeyFiles(keysDir: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(keysDir);
  } catch {
    names = [];
  }
  return names.filter((n) => ONLINE_KEY('snapshot').test(n) || ONLINE_KEY('timestamp').test(n)).sort();
}

async function loadOnlineSigners(keysDir: string, role: 'snapshot' | 'timestamp', passphrases: PassphraseSource): Promise<Signer[]> {
  const out: Signer[] = [];
  for (const n of onlineKeyFiles(keysDir)) if (ONLINE_KEY(role).test(n)) out.push(await loadSigner(join(keysDir, n), passphrases));
  return out;
}

/** The FIT public key DTB the server checks boot images with (what U-Boot holds; public). */
export const FIT_PUBLIC_KEY_FILE = 'fit-pub.dtb';

/** `<keys>/fit-pub.dtb` as verify keys; none when the file is absent (boot images are then refused). */
export function loadFitPublicKeys(keysDir: string): FitVerifyKey[] {
  const path = join(keysDir, FIT_PUBLIC_KEY_FILE);
  if (!existsSync(path)) return [];
  try {
    return requiredConfKeys(readPublicKeysFromDtb(readInputFile(path, 64 * 1024, 'FIT public key (fit-pub.dtb)')));
  } catch (e) {
    throw new ServerError('E_SERVER_CONFIG', `${path} is not a U-Boot public key DTB: ${(e as Error).message}`, e);
  }
}

export async function startServer(o: StartOptions): Promise<Running> {
  checkServerKeysDir(o.keysDir);
  checkDbOption(o); // before anything is written
  const passphrases = o.passphrases ?? envOrPromptPassphrase;
  const snapshot = await loadOnlineSigners(o.keysDir, 'snapshot', passphrases);
  const timestamp = await loadOnlineSigners(o.keysDir, 'timestamp', passphrases);
  const rootBytes = readInputFile(join(o.keysDir, 'root.json'), MAX_ROOT_BYTES, 'root metadata file (root.json)');
  prepareDataDir(o.dataDir); // 0700 before the TLS key can be written into it
  const { tls, created } = await serverTls(o);
  const storage = await openStorage(o);
  let app: UpdateServer;
  try {
    app = await createUpdateServer({
      storage, rootBytes, snapshotSigners: snapshot, timestampSigners: timestamp, openLocal: o.openLocal,
      timestampExpiresS: o.timestampExpiresS, fitKeys: loadFitPublicKeys(o.keysDir),
    });
  } catch (e) {
    await storage.close();
    throw e;
  }
  let accessLog: AccessLog;
  try {
    accessLog = openAccessLog(o.accessLog ?? 'stderr', o.dataDir);
  } catch (e) {
    await storage.close();
    throw e;
  }
  if (o.safetyNet) installSafetyNet();
  const listening = await listenHttps(app, tls, {
    port: o.port, host: o.bind ?? '127.0.0.1', limits: o.limits, accessLog,
    onServerError: (e) => logEvent('listener-error', e),
  }).catch(async (e) => {
    await storage.close();
    await accessLog.close();
    throw new ServerError('E_SERVER_CONFIG', `cannot listen on port ${o.port}: ${(e as Error).message}`, e);
  });
  const timer = setInterval(() => {
    app.tick().catch(() => undefined);
  }, o.tickMs ?? 60_000);
  timer.unref();
  return {
    app, listening, url: listening.url, tlsCreated: created,
    reloadKeys: async () => {
      checkServerKeysDir(o.keysDir);
      const snap = await loadOnlineSigners(o.keysDir, 'snapshot', passphrases);
      const ts = await loadOnlineSigners(o.keysDir, 'timestamp', passphrases);
      await app.repository.replaceOnlineSigners(snap, ts);
      return { snapshot: snap.map((s) => s.keyid), timestamp: ts.map((s) => s.keyid) };
    },
    close: async () => {
      clearInterval(timer);
      await listening.close();
      await storage.close();
      await accessLog.close();
    },
  };
}

/**
 * The storage `--db` names: PostgreSQL for a URL, SQLite in the data folder otherwise (`sqlite`,
 * or that file's own path). The data folder still holds the TLS key and the access log.
 */
export async function openStorage(o: Pick<StartOptions, 'db' | 'dataDir'>): Promise<Storage> {
  checkDbOption(o);
  if (o.db !== undefined && isPostgresUrl(o.db)) return PostgresStorage.open(o.db);
  return SqliteStorage.open(o.dataDir);
}

function checkDbOption(o: Pick<StartOptions, 'db' | 'dataDir'>): void {
  const db = o.db;
  if (db === undefined || isPostgresUrl(db) || db === 'sqlite' || resolve(db) === resolve(o.dataDir, 'signet.db')) return;
  throw new ServerError('E_SERVER_CONFIG', `--db ${db.slice(0, 100)} is neither postgres://… nor sqlite (the SQLite file is ${join(o.dataDir, 'signet.db')})`);
}

/** One JSON line on stderr about something that went wrong outside any request. */
export function logEvent(event: string, e: unknown): void {
  try {
    const err = e as { name?: unknown; code?: unknown; message?: unknown };
    process.stderr.write(JSON.stringify({
      time: new Date().toISOString(), event, name: String(err?.name ?? typeof e), code: err?.code === undefined ? undefined : String(err.code),
      message: String(err?.message ?? e).slice(0, 500),
    }) + '\n');
  } catch {
    // nothing left to report to
  }
}

let safetyNetInstalled = false;

/**
 * The net under the adapter's own error handling: one connection must never end the process.
 * An exception or rejection nothing caught is logged as one line and the server goes on (each
 * request's state is its own; the database's is transactional).
 */
function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('uncaughtException', (e) => logEvent('uncaught-exception', e));
  process.on('unhandledRejection', (e) => logEvent('unhandled-rejection', e));
}

export interface ServerKeysOptions {
  keysDir: string;
  outDir: string;
  hosts?: string[];
  passphrases?: PassphraseSource;
  /** The vendor CA key in a PKCS#11 token (`pkcs11:…`) instead of <keysDir>/vendor-ca.key. */
  caKey?: string;
}

/**
 * `signet server keys`: copy what a server needs out of a full key set (online keys, root.json,
 * the CA certificate) and issue its TLS certificate there, so the CA key stays offline too.
 */
export async function prepareServerKeys(o: ServerKeysOptions): Promise<{ outDir: string; files: string[] }> {
  if (outputFolderState(o.outDir) === 'not-empty') {
    throw new ServerError('E_SERVER_CONFIG', `${o.outDir} already exists and is not empty`);
  }
  for (const need of ['snapshot.key', 'timestamp.key', 'root.json', 'vendor-ca.crt', ...(o.caKey ? [] : ['vendor-ca.key'])]) {
    if (!existsSync(join(o.keysDir, need))) throw new ServerError('E_SERVER_CONFIG', `${o.keysDir} has no ${need}`);
  }
  const ca = await loadVendorCa(o.keysDir, o.passphrases ?? envOrPromptPassphrase, o.caKey);
  const tls = issueServerTls(ca, o.hosts?.length ? o.hosts : DEFAULT_HOSTS);
  const online = onlineKeyFiles(o.keysDir);
  // The FIT key's public half, as U-Boot holds it, so the server can check boot images.
  const fitPub = existsSync(join(o.keysDir, FIT_KEY_FILE))
    ? publicKeyDtb((await loadFitSigner(o.keysDir, o.passphrases ?? envOrPromptPassphrase)).publicKey(), FIT_KEY_NAME)
    : null;
  const files = [...online, 'root.json', 'vendor-ca.crt', 'server.crt', 'server.key', ...(fitPub ? [FIT_PUBLIC_KEY_FILE] : [])];
  await createDirAtomic(o.outDir, (tmp) => {
    for (const f of [...online, 'root.json', 'vendor-ca.crt']) copyFileSync(join(o.keysDir, f), join(tmp, f));
    if (fitPub) writeFileAtomic(join(tmp, FIT_PUBLIC_KEY_FILE), fitPub);
    writeFileAtomic(join(tmp, 'server.crt'), tls.certPem);
    writeFileAtomic(join(tmp, 'server.key'), tls.keyPem, 0o600);
  });
  return { outDir: o.outDir, files };
}
