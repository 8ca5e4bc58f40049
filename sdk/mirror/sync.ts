/**
 * `signet mirror sync`: export the update server's TUF repository to a folder any static web
 * server, CDN or bucket can serve (docs/update-server.md "Mirrors"):
 *
 *   DIR/metadata/N.root.json  N.targets.json  N.snapshot.json  timestamp.json
 *   DIR/targets/<board>/<sha256>.<name>-<version>.simg        (consistent snapshots, TUF §5.7.3)
 *
 * The source is the server's own device endpoints (`/tuf/metadata/`, `/tuf/targets/`) over
 * mutual TLS, read by the device's TUF client: the export is verified like a device would
 * verify it (root chain, signatures, expiry, rollback, lengths and hashes), so a mirror never
 * publishes what a device would refuse. A mirror stays untrusted all the same: devices verify.
 *
 * Atomic for readers: targets first, then versioned metadata, each written to a temp file,
 * synced and renamed; timestamp.json last. A device that reads the new timestamp finds every
 * file it names. Files the current snapshot no longer names are removed only after `graceS`
 * (a device mid-update may still want the previous snapshot or image).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { nodeCrypto } from '../image/crypto-node';
import { TufClient, targetPath, type MetadataStore } from '../ota/client';
import { fetchBytes, type Fetcher } from '../ota/fetcher';
import { NodeFetcher } from '../ota/fetcher-node';
import { parseEnvelope, verifyTrustedRoot } from '../ota/metadata';
import { checkSnapshotShape, checkTargetsShape, checkTimestampShape } from '../ota/roles';
import { isSignetError, type SignetError } from '../util/errors';
import { writeFileAtomic } from '../util/fs-atomic';
import { MirrorError } from './errors';

export interface MirrorSyncOptions {
  /** The update server, `https://HOST:PORT`. */
  server: string;
  /** A vendor-CA identity the server accepts (admin or device) and the CA its certificate chains to. */
  tls: { certPem: string; keyPem: string; caPem: string };
  /** The mirror folder. */
  to: string;
  /** Trust anchor for the export's own verification; default the server's 1.root.json. */
  rootBytes?: Uint8Array;
  /** Unreferenced files are kept this long (seconds). Default 3600. */
  graceS?: number;
  /** Unix seconds (expiry checks and prune ages). */
  now?: () => number;
  /** Instead of a NodeFetcher over `tls` (tests). */
  fetcher?: Fetcher;
}

export interface MirrorSyncResult {
  /** false: timestamp.json was already the server's; only pruning ran. */
  changed: boolean;
  rootVersion: number;
  timestampVersion: number;
  snapshotVersion: number;
  targetsVersion: number;
  /** Paths under the folder written by this sync (targets and metadata). */
  added: string[];
  /** Paths removed: unreferenced for longer than the grace period. */
  pruned: string[];
}

export const MIRROR_STATE = '.signet-mirror.json';
export const MIRROR_LOCK = '.signet-mirror.lock';
export const DEFAULT_GRACE_S = 3600;
const TMP_PREFIX = '.signet-tmp-';

interface MirrorState {
  format: 1;
  /** Every file this tool wrote, with when the current snapshot stopped naming it (null: named). */
  files: Record<string, { unreferencedSince: number | null }>;
}

/** An in-memory MetadataStore that remembers every root written, in order (the chain). */
class RecordingStore implements MetadataStore {
  readonly files = new Map<string, Uint8Array>();
  readonly roots: Uint8Array[] = [];
  read(name: string): Uint8Array | null {
    return this.files.get(name) ?? null;
  }
  write(name: string, bytes: Uint8Array): void {
    if (name === 'root.json') this.roots.push(bytes);
    this.files.set(name, bytes);
  }
  remove(name: string): void {
    this.files.delete(name);
  }
}

function sourceError(e: unknown, what: string): MirrorError {
  const se = isSignetError(e) ? (e as SignetError) : null;
  const code = se ? se.code : 'E_INTERNAL';
  const msg = se ? se.message : String(e);
  if (/^E_FETCH_(NETWORK|REFUSED|HTTP|STALL|SLOW|CUT)$/.test(code)) return new MirrorError('E_MIRROR_UNREACHABLE', `${what}: ${code} ${msg}`, e);
  if (/^E_TARGET_|^E_FETCH_TOO_LARGE$/.test(code) && what.startsWith('target')) return new MirrorError('E_MIRROR_TARGET', `${what}: ${code} ${msg}`, e);
  return new MirrorError('E_MIRROR_SOURCE', `${what}: ${code} ${msg}`, e);
}

function get(fetcher: Fetcher, url: string, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => fetchBytes(fetcher, { url, maxBytes }, (err, b) => (err ? reject(err) : resolve(b as Uint8Array))));
}

function checkServer(server: string): string {
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    throw new MirrorError('E_MIRROR_SERVER', `--server must be a URL like https://localhost:8443, got ${JSON.stringify(server.slice(0, 200))}`);
  }
  if (u.protocol !== 'https:' || u.search || u.hash) throw new MirrorError('E_MIRROR_SERVER', `--server must be an https URL without query, got ${JSON.stringify(server.slice(0, 200))}`);
  return server.replace(/\/+$/, '');
}

/** The folder is ours (or new, or empty); never write into someone else's files. */
export function checkMirrorFolder(dir: string): void {
  if (dir === '') throw new MirrorError('E_MIRROR_OPTION', '--to is empty');
  if (!existsSync(dir)) return;
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    throw new MirrorError('E_MIRROR_DIR', `cannot read ${dir}: ${(e as Error).message}`, e);
  }
  if (!st.isDirectory()) throw new MirrorError('E_MIRROR_DIR', `${dir} is not a folder`);
  const entries = readdirSync(dir);
  if (entries.length > 0 && !entries.includes(MIRROR_STATE)) {
    throw new MirrorError('E_MIRROR_DIR', `${dir} holds files and is not a Signet mirror (no ${MIRROR_STATE}); pruning would delete what is not ours`);
  }
}

function lock(dir: string): () => void {
  const path = join(dir, MIRROR_LOCK);
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new MirrorError('E_MIRROR_DIR', `cannot write in ${dir}: ${(e as Error).message}`, e);
      const pid = Number(readFileSync(path, 'utf8'));
      let alive = false;
      try {
        alive = Number.isInteger(pid) && pid > 0 && (process.kill(pid, 0), true);
      } catch {
        alive = false;
      }
      if (alive) throw new MirrorError('E_MIRROR_BUSY', `${dir} is being synced by process ${pid}`);
      rmSync(path, { force: true }); // a crashed sync's lock
    }
  }
  throw new MirrorError('E_MIRROR_BUSY', `cannot take the lock ${path}`);
}

function readState(dir: string): MirrorState {
  const p = join(dir, MIRROR_STATE);
  if (!existsSync(p)) return { format: 1, files: {} };
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as MirrorState;
    if (v.format === 1 && typeof v.files === 'object' && v.files !== null) return v;
  } catch {
    // fall through
  }
  throw new MirrorError('E_MIRROR_DIR', `${p} is damaged; remove the folder and sync again`);
}

/** Write `bytes` at `rel` under the folder: temp file, fsync, rename (writeFileAtomic). */
function put(dir: string, rel: string, bytes: Uint8Array): void {
  const p = join(dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileAtomic(p, bytes, 0o644);
}

function fsyncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Stream a target to a temp file, checking the signed length and SHA-256 as bytes arrive; rename into place. */
function downloadTarget(fetcher: Fetcher, url: string, dest: string, length: number, sha256: string): Promise<void> {
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), TMP_PREFIX + Math.random().toString(16).slice(2));
  const fd = openSync(tmp, 'w', 0o644);
  const hash = createHash('sha256');
  let got = 0;
  return new Promise<void>((resolve, reject) => {
    let stopped: MirrorError | null = null;
    fetcher.fetch({ url, maxBytes: length }, {
      data(chunk) {
        if (got + chunk.length > length) {
          stopped = new MirrorError('E_MIRROR_TARGET', `${url} is longer than its signed length ${length}`);
          return false;
        }
        writeSync(fd, chunk);
        hash.update(chunk);
        got += chunk.length;
        return true;
      },
      end(err) {
        if (stopped) return reject(stopped);
        if (err) return reject(err);
        if (got !== length) return reject(new MirrorError('E_MIRROR_TARGET', `${url} ended at ${got} bytes, its signed length is ${length}`));
        if (hash.digest('hex') !== sha256) return reject(new MirrorError('E_MIRROR_TARGET', `${url} does not match its signed sha256`));
        resolve();
      },
    });
  }).then(() => {
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, dest);
  }, (e) => {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  });
}

/** Temp files a killed sync left behind (we hold the lock: nobody else is writing). */
function removeTemps(dir: string): void {
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.startsWith(TMP_PREFIX)) rmSync(join(d, e.name), { force: true });
    }
  };
  walk(dir);
}

/** One sync: bring the folder to the server's current repository, then prune past the grace period. */
export async function syncMirror(o: MirrorSyncOptions): Promise<MirrorSyncResult> {
  const server = checkServer(o.server);
  const graceS = o.graceS ?? DEFAULT_GRACE_S;
  if (!Number.isInteger(graceS) || graceS < 0) throw new MirrorError('E_MIRROR_OPTION', `--grace must be a whole number of seconds ≥ 0, got ${graceS}`);
  const now = o.now ?? (() => Math.floor(Date.now() / 1000));
  checkMirrorFolder(o.to);
  if (o.rootBytes) {
    try {
      verifyTrustedRoot(o.rootBytes, nodeCrypto, null);
    } catch (e) {
      throw new MirrorError('E_MIRROR_ROOT', `--root does not verify as root metadata: ${(e as Error).message}`, e);
    }
  }
  mkdirSync(o.to, { recursive: true });
  const unlock = lock(o.to);
  try {
    removeTemps(o.to);
    const state = readState(o.to);
    return await syncLocked(o, server, graceS, now, state);
  } finally {
    unlock();
  }
}

async function syncLocked(o: MirrorSyncOptions, server: string, graceS: number, now: () => number, state: MirrorState): Promise<MirrorSyncResult> {
  const dir = o.to;
  const fetcher = o.fetcher ?? new NodeFetcher({ tls: { ca: o.tls.caPem, cert: o.tls.certPem, key: o.tls.keyPem } });
  const metaUrl = server + '/tuf/metadata/';
  const added: string[] = [];
  let rootBytes = o.rootBytes;
  if (!rootBytes) {
    try {
      rootBytes = await get(fetcher, metaUrl + '1.root.json', 512 * 1024);
    } catch (e) {
      throw sourceError(e, '1.root.json');
    }
  }
  // The device's TUF workflow (5.1–5.6) against the server, into memory.
  const store = new RecordingStore();
  const tuf = new TufClient({ fetcher, store, crypto: nodeCrypto, rootBytes, metadataUrl: metaUrl, targetsUrl: server + '/tuf/targets/', now });
  await new Promise<void>((resolve, reject) => tuf.refresh((err) => (err ? reject(sourceError(err, 'the server\'s repository')) : resolve())));
  const tsBytes = store.read('timestamp.json')!;
  const snapBytes = store.read('snapshot.json')!;
  const targetsBytes = store.read('targets.json')!;
  const ts = checkTimestampShape(parseEnvelope(tsBytes).signed);
  const snap = checkSnapshotShape(parseEnvelope(snapBytes).signed);
  const targets = checkTargetsShape(parseEnvelope(targetsBytes).signed);
  const rootVersion = tuf.root().version;

  // Never move a mirror backwards: an older timestamp than the one it serves is the server's rollback.
  const curTsPath = join(dir, 'metadata', 'timestamp.json');
  const cur = existsSync(curTsPath) ? readFileSync(curTsPath) : null;
  if (cur) {
    let curVersion = 0;
    try {
      curVersion = checkTimestampShape(parseEnvelope(new Uint8Array(cur)).signed).version;
    } catch {
      curVersion = 0; // a damaged copy is replaced
    }
    if (ts.version < curVersion) {
      throw new MirrorError('E_MIRROR_SOURCE', `the server's timestamp is version ${ts.version}, older than the mirror's ${curVersion} (a rollback)`);
    }
  }
  // A file of the current set gone from the folder (removed by hand, a disk error): write all again.
  const named = [`metadata/${snap.meta['targets.json'].version}.targets.json`, `metadata/${ts.meta['snapshot.json'].version}.snapshot.json`,
    ...Object.keys(targets.targets).map((n) => 'targets/' + targetPath(n, targets.targets[n].hashes.sha256))];
  const changed = !cur || !Buffer.from(tsBytes).equals(cur) || named.some((rel) => !existsSync(join(dir, rel)));

  const referenced = new Set<string>();
  const track = (rel: string) => {
    referenced.add(rel);
    state.files[rel] = { unreferencedSince: null };
  };
  if (changed) {
    // 1. Targets, each checked against its signed length and SHA-256 while it streams.
    for (const name of Object.keys(targets.targets)) {
      const f = targets.targets[name];
      const rel = 'targets/' + targetPath(name, f.hashes.sha256);
      const dest = join(dir, rel);
      track(rel);
      if (existsSync(dest) && statSync(dest).size === f.length) continue; // content-addressed: written and checked before
      try {
        await downloadTarget(fetcher, server + '/tuf/' + rel, dest, f.length, f.hashes.sha256);
      } catch (e) {
        throw e instanceof MirrorError ? e : sourceError(e, 'target ' + name);
      }
      added.push(rel);
    }
    // 2. The root chain (every version: devices start from whichever they were built with).
    const chain = new Map<number, Uint8Array>();
    for (const b of [rootBytes, ...store.roots]) chain.set(verifyTrustedRoot(b, nodeCrypto, null).version, b);
    for (let v = 1; v <= rootVersion; v++) {
      const rel = `metadata/${v}.root.json`;
      track(rel);
      if (existsSync(join(dir, rel))) continue;
      let b = chain.get(v);
      if (!b) {
        try {
          b = await get(fetcher, metaUrl + v + '.root.json', 512 * 1024); // older than --root: devices verify the chain
        } catch (e) {
          throw sourceError(e, v + '.root.json');
        }
      }
      put(dir, rel, b);
      added.push(rel);
    }
    // 3. Versioned targets and snapshot, 4. timestamp.json last.
    const tRel = `metadata/${snap.meta['targets.json'].version}.targets.json`;
    const sRel = `metadata/${ts.meta['snapshot.json'].version}.snapshot.json`;
    put(dir, tRel, targetsBytes);
    put(dir, sRel, snapBytes);
    fsyncDir(join(dir, 'metadata'));
    track(tRel);
    track(sRel);
    put(dir, 'metadata/timestamp.json', tsBytes);
    track('metadata/timestamp.json');
    added.push(tRel, sRel, 'metadata/timestamp.json');
  } else {
    // Unchanged: what the current files name stays referenced.
    for (let v = 1; v <= rootVersion; v++) referenced.add(`metadata/${v}.root.json`);
    for (const rel of named) referenced.add(rel);
    referenced.add('metadata/timestamp.json');
  }

  // 5. Prune what the current snapshot no longer names, once it has been unnamed for the grace period.
  const t = now();
  const pruned: string[] = [];
  for (const rel of Object.keys(state.files)) {
    if (referenced.has(rel)) {
      state.files[rel].unreferencedSince = null;
      continue;
    }
    const since = state.files[rel].unreferencedSince;
    if (since === null) state.files[rel].unreferencedSince = t;
    else if (t - since >= graceS) {
      rmSync(join(dir, rel), { force: true });
      delete state.files[rel];
      pruned.push(rel);
    }
  }
  writeFileAtomic(join(dir, MIRROR_STATE), JSON.stringify(state, null, 1) + '\n', 0o644);
  return { changed, rootVersion, timestampVersion: ts.version, snapshotVersion: snap.version, targetsVersion: targets.version, added, pruned };
}
