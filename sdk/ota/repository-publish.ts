/**
 * `signet publish`: put a release on the update server, signing the targets metadata offline.
 *
 *   1. verify the image against keys/root.json (the same decision a device makes)
 *   2. fetch the server's current targets metadata and check it is signed by the targets keys
 *      (we are about to sign its contents: a server must not slip entries into our signature) —
 *      of the current root, or, right after a targets-key rotation, of the root before it as the
 *      keys folder kept it (repository-roots.ts)
 *   3. add the image as a target, bump the version, sign with the targets key(s) here
 *   4. upload the image, then the signed metadata; the server adds snapshot and timestamp
 */
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { nodeCrypto } from '../image/crypto-node';
import { readImageFile } from '../image/file';
import { verifyImage } from '../image/verify';
import { loadSigner } from '../keys/keyfile';
import { envOrPromptPassphrase, type PassphraseSource } from '../keys/passphrase';
import { MetadataError } from './errors';
import { checkThreshold, formatUtc, type Envelope, type Signer } from './metadata';
import { addTarget, consistentTargetPath, DEFAULT_TARGETS_EXPIRES_S, encodeMetadata, signTargets, targetForImage } from './repository';
import { RepositoryError } from './repository-errors';
import type { PublishAnswer } from './repository-http';
import { checkTargetsShape, type TargetsSigned } from './roles';
import { checkServerTargets, heldRootChain } from './repository-roots';
import { FIT_KEY_NAME, loadFitSigner } from '../disk/fit-key';
import { readInputFile } from '../util/files';
import { bootTargetFor, checkBootRelease, isFit } from './boot-target';
import type { TargetFile } from './roles';

/** A boot image no larger than this is read for publishing (boot partitions are tens of MiB). */
const MAX_BOOT_IMAGE_BYTES = 256 * 1024 * 1024;

/** What publish needs from the server; `AdminClient` implements it over HTTPS. */
export interface PublishTransport {
  getTargets(): Promise<{ root: number; targets: unknown | null }>;
  uploadBlob(sha256: string, file: string, length: number): Promise<{ stored: boolean }>;
  publish(targetsBytes: Uint8Array): Promise<PublishAnswer>;
}

export interface PublishOptions {
  imagePath: string;
  keysDir: string;
  transport: PublishTransport;
  targetsExpiresDays?: number;
  now?: number;
  passphrases?: PassphraseSource;
  /** Sign with these instead of the folder's targets-*.key files (`--key`, e.g. a PKCS#11 token). */
  signers?: Signer[];
}

export interface PublishReport {
  name: string;
  path: string;
  sha256: string;
  length: number;
  board: string;
  version: string;
  securityCounter: number;
  /** `app`: a Signet app image; `boot`: a boot image (FIT) for A/B boot slots. */
  kind: 'app' | 'boot';
  alreadyPublished: boolean;
  targetsVersion: number;
  snapshotVersion?: number;
  timestampVersion?: number;
  signatures: number;
}

/** Every targets-N.key in the folder whose key root names for the targets role. */
async function targetsSigners(keysDir: string, keyids: string[], passphrases: PassphraseSource, given?: Signer[]): Promise<Signer[]> {
  if (given) {
    const out = given.filter((s) => keyids.includes(s.keyid));
    if (!out.length) throw new RepositoryError('E_REPO_NO_TARGETS_KEY', 'none of the keys given with --key is one that root.json names for targets');
    return out;
  }
  let names: string[];
  try {
    names = readdirSync(keysDir).filter((n) => /^targets(-\d+)?\.key$/.test(n)).sort();
  } catch (e) {
    throw new RepositoryError('E_REPO_NO_TARGETS_KEY', 'cannot read the keys folder ' + keysDir, e);
  }
  const out: Signer[] = [];
  for (const n of names) {
    const s = await loadSigner(join(keysDir, n), passphrases);
    if (keyids.includes(s.keyid)) out.push(s);
  }
  if (!out.length) throw new RepositoryError('E_REPO_NO_TARGETS_KEY', `no targets key in ${keysDir} is one that root.json names for targets`);
  return out;
}

/** The server's targets (null before the first publish), accepted only as the vendor signed them. */
function checkedRemoteTargets(targets: unknown | null, chain: ReturnType<typeof heldRootChain>): TargetsSigned | null {
  if (targets === null) return null;
  const env = targets as Envelope<unknown>;
  const current = checkTargetsShape(env && env.signed);
  checkServerTargets(env, chain);
  return current;
}

/** The file's first bytes are a FIT's (d00dfeed); anything unreadable is left to the app-image reader's errors. */
function startsWithFitMagic(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = new Uint8Array(4);
    return readSync(fd, head, 0, 4, 0) === 4 && isFit(head);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The file to publish, checked as a device will check it: an app image against root (targets
 * keys, board, expiry), a boot image (FIT, by its magic) as U-Boot and the agent will — the FIT
 * key's signature (the public half of `<keys>/fit.key`), signed release fields, a known board
 * whose arch is the kernel's.
 */
async function releaseFile(o: PublishOptions, root: ReturnType<typeof heldRootChain>[0]['root'], now: number, passphrases: PassphraseSource):
  Promise<{ image: Uint8Array; target: { name: string; file: TargetFile }; release: Pick<PublishReport, 'board' | 'version' | 'securityCounter' | 'kind'> }> {
  if (startsWithFitMagic(o.imagePath)) {
    const bytes = readInputFile(o.imagePath, MAX_BOOT_IMAGE_BYTES, 'boot image');
    const signer = await loadFitSigner(o.keysDir, passphrases);
    const rel = checkBootRelease(bytes, [{ keyName: FIT_KEY_NAME, publicKey: signer.publicKey() }]);
    return { image: bytes, target: bootTargetFor(bytes, rel, nodeCrypto), release: { board: rel.board, version: rel.version, securityCounter: rel.securityCounter, kind: 'boot' } };
  }
  const image = readImageFile(o.imagePath);
  const target = targetForImage(image, nodeCrypto);
  verifyImage(image, { root, board: target.manifest.board, now, crypto: nodeCrypto });
  const m = target.manifest;
  return { image, target, release: { board: m.board, version: m.version, securityCounter: m.securityCounter, kind: 'app' } };
}

export async function publishRelease(o: PublishOptions): Promise<PublishReport> {
  const now = o.now ?? Math.floor(Date.now() / 1000);
  const passphrases = o.passphrases ?? envOrPromptPassphrase;
  const chain = heldRootChain(o.keysDir, now);
  const root = chain[0].root;
  // 1. The device's decision, here first: a release that would be refused is not published.
  const { image, target, release } = await releaseFile(o, root, now, passphrases);

  // 2. The server's targets metadata, checked before we sign over it.
  const remote = await o.transport.getTargets();
  if (remote.root !== root.version) {
    throw new MetadataError('E_META_VERSION', `the server trusts root version ${remote.root}, ${join(o.keysDir, 'root.json')} is version ${root.version}`);
  }
  const current = checkedRemoteTargets(remote.targets, chain);
  const sha256 = target.file.hashes.sha256;
  const base: Omit<PublishReport, 'alreadyPublished' | 'targetsVersion' | 'signatures'> = {
    name: target.name, path: consistentTargetPath(target.name, sha256), sha256, length: target.file.length, ...release,
  };
  const existing = current?.targets[target.name];
  if (existing && existing.hashes.sha256 === sha256) {
    // Published before (perhaps by an interrupted run): make sure the bytes are there.
    await o.transport.uploadBlob(sha256, o.imagePath, image.length);
    return { ...base, alreadyPublished: true, targetsVersion: current!.version, signatures: 0 };
  }

  // 3. Sign offline.
  const signers = await targetsSigners(o.keysDir, root.roles.targets.keyids, passphrases, o.signers);
  const expires = formatUtc(now + (o.targetsExpiresDays !== undefined ? o.targetsExpiresDays * 86400 : DEFAULT_TARGETS_EXPIRES_S));
  const next = addTarget(current, target, expires);
  const env = await signTargets(next, signers);
  const valid = checkThreshold(env, root, 'targets', nodeCrypto);

  // 4. Bytes first, then the metadata that makes them visible.
  await o.transport.uploadBlob(sha256, o.imagePath, image.length);
  const r = await o.transport.publish(encodeMetadata(env));
  return { ...base, alreadyPublished: false, targetsVersion: r.targetsVersion, snapshotVersion: r.snapshotVersion, timestampVersion: r.timestampVersion, signatures: valid };
}

export interface ResignOptions extends Omit<PublishOptions, 'imagePath'> {
  /** Target names to leave out (a release a stolen key signed, or one that must not be offered again). */
  remove?: string[];
}

export interface ResignReport {
  /** The root version whose targets keys had signed what the server held. */
  signedUnderRoot: number;
  rootVersion: number;
  targetsVersion: number;
  snapshotVersion: number;
  timestampVersion: number;
  signatures: number;
  targets: { name: string; sha256: string; length: number }[];
  removed: string[];
}

/**
 * `signet targets resign`: after the targets keys rotated, the server still holds targets
 * metadata signed by the old keys, which clients refuse. Take it exactly as the vendor signed
 * it (checked against the old root the keys folder kept), and sign the same entries as the
 * next version with the new targets key(s). No entry is added or changed; entries are dropped
 * only when named in `remove` (after a stolen targets key: releases the vendor did not build).
 */
export async function resignTargets(o: ResignOptions): Promise<ResignReport> {
  const now = o.now ?? Math.floor(Date.now() / 1000);
  const chain = heldRootChain(o.keysDir, now);
  const root = chain[0].root;
  const remote = await o.transport.getTargets();
  if (remote.root !== root.version) {
    throw new MetadataError('E_META_VERSION', `the server trusts root version ${remote.root}, ${join(o.keysDir, 'root.json')} is version ${root.version}`);
  }
  if (remote.targets === null) throw new RepositoryError('E_REPO_NO_TARGETS', 'the server holds no targets metadata yet');
  const env = remote.targets as Envelope<unknown>;
  const current = checkTargetsShape(env && env.signed);
  const signedUnderRoot = checkServerTargets(env, chain);
  const signers = await targetsSigners(o.keysDir, root.roles.targets.keyids, o.passphrases ?? envOrPromptPassphrase, o.signers);
  const expires = formatUtc(now + (o.targetsExpiresDays !== undefined ? o.targetsExpiresDays * 86400 : DEFAULT_TARGETS_EXPIRES_S));
  const remove = o.remove ?? [];
  for (const name of remove) {
    if (!Object.prototype.hasOwnProperty.call(current.targets, name)) {
      throw new RepositoryError('E_REPO_TARGET_MISSING', `the server's targets metadata names no ${JSON.stringify(name)} to remove`);
    }
  }
  const kept: TargetsSigned['targets'] = {};
  for (const name of Object.keys(current.targets)) if (!remove.includes(name)) kept[name] = current.targets[name];
  const next: TargetsSigned = { ...current, targets: kept, version: current.version + 1, expires };
  const signedEnv = await signTargets(next, signers);
  const valid = checkThreshold(signedEnv, root, 'targets', nodeCrypto);
  const r = await o.transport.publish(encodeMetadata(signedEnv));
  return {
    signedUnderRoot, rootVersion: root.version, targetsVersion: r.targetsVersion, snapshotVersion: r.snapshotVersion, timestampVersion: r.timestampVersion,
    signatures: valid,
    targets: Object.keys(kept).sort().map((name) => ({ name, sha256: kept[name].hashes.sha256, length: kept[name].length })),
    removed: remove.slice().sort(),
  };
}
