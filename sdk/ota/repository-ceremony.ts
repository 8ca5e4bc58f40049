/**
 * The file side of `signet root …`: read the ceremony files, call repository-root.ts, write
 * the result atomically (a refusal writes nothing), and push a root to the update server after
 * the same check a device will make.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Signer } from './metadata';
import { nodeCrypto } from '../image/crypto-node';
import { readInputFile } from '../util/files';
import { writeFileAtomic } from '../util/fs-atomic';
import { verifyRootUpdate, verifyTrustedRoot } from './metadata';
import { RepositoryError } from './repository-errors';
import { encodeRootFile, mergeRoot, nextRoot, rootReport, signRoot, type RootEdits, type RootReport, type SignRootResult } from './repository-root';
import { installHeldRoot } from './repository-roots';
import { MAX_ROOT_BYTES } from './root-file';

const readRoot = (path: string) => readInputFile(path, MAX_ROOT_BYTES, 'root metadata file');

export function writeNextRoot(fromPath: string, edits: RootEdits, outPath: string, nowSeconds = Math.floor(Date.now() / 1000)) {
  if (existsSync(outPath)) throw new RepositoryError('E_ROOT_EDIT', outPath + ' already exists; a ceremony file is never overwritten');
  const env = nextRoot(readRoot(fromPath), edits, nodeCrypto, nowSeconds);
  writeFileAtomic(outPath, encodeRootFile(env));
  return env.signed;
}

export async function signRootFile(path: string, signer: Signer, trustedPath?: string): Promise<SignRootResult> {
  const r = await signRoot(readRoot(path), signer, trustedPath ? readRoot(trustedPath) : null, nodeCrypto);
  if (r.added) writeFileAtomic(path, r.bytes);
  return r;
}

export function mergeRootFile(path: string, otherPath: string, trustedPath?: string) {
  const r = mergeRoot(readRoot(path), readRoot(otherPath), trustedPath ? readRoot(trustedPath) : null, nodeCrypto);
  if (r.added.length) writeFileAtomic(path, r.bytes);
  return r;
}

export function verifyRootFile(path: string, trustedPath: string): RootReport {
  return rootReport(readRoot(path), readRoot(trustedPath), nodeCrypto);
}

export interface RootPushTransport {
  getTargets(): Promise<{ root: number }>;
  rootFile(version: number): Promise<Uint8Array>;
  pushRoot(bytes: Uint8Array): Promise<{ version: number }>;
}

/**
 * Check the root against the server's current one as a device will (old and new thresholds,
 * version + 1), push it, and with `keysDir` make it that folder's root.json (keeping the old
 * one as N.root.json, which publishing after a targets-key rotation needs).
 */
export async function pushRootFile(path: string, transport: RootPushTransport, keysDir?: string): Promise<{ version: number; kept?: string }> {
  const bytes = readRoot(path);
  const serverVersion = (await transport.getTargets()).root;
  const current = verifyTrustedRoot(await transport.rootFile(serverVersion), nodeCrypto, null);
  verifyRootUpdate(current, bytes, nodeCrypto);
  if (keysDir) verifyRootUpdate(verifyTrustedRoot(readRoot(join(keysDir, 'root.json')), nodeCrypto, null), bytes, nodeCrypto);
  const r = await transport.pushRoot(bytes);
  if (!keysDir) return r;
  return { version: r.version, kept: installHeldRoot(keysDir, bytes).kept };
}
