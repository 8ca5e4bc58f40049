/**
 * The roots a vendor's keys folder holds: `root.json` (the one in force) and the versions
 * before it, kept as `N.root.json` when a rotation is installed (`signet root push --keys`).
 * Publishing after a targets-key rotation needs them: the server's current targets metadata
 * was signed under the old root, and is checked against the targets keys of that root — one
 * the vendor kept, never one the server hands us.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { nodeCrypto } from '../image/crypto-node';
import { readInputFile } from '../util/files';
import { writeFileAtomic } from '../util/fs-atomic';
import { MetadataError } from './errors';
import { checkThreshold, verifyRootUpdate, verifyTrustedRoot, type Envelope, type RootSigned } from './metadata';
import { MAX_ROOT_BYTES } from './root-file';

export interface HeldRoot {
  root: RootSigned;
  bytes: Uint8Array;
}

const HELD = /^(\d{1,10})\.root\.json$/;

function readRoot(path: string): Uint8Array {
  return readInputFile(path, MAX_ROOT_BYTES, 'root metadata file');
}

/**
 * The current root (verified on its own, not expired at `now`) and, newest first, the earlier
 * roots held beside it that chain to it link by link (each signed into the next by 5.3.4's
 * rules). A gap or a link that does not verify ends the list there.
 */
export function heldRootChain(keysDir: string, nowSeconds: number): HeldRoot[] {
  const bytes = readRoot(join(keysDir, 'root.json'));
  const current = verifyTrustedRoot(bytes, nodeCrypto, nowSeconds);
  const chain: HeldRoot[] = [{ root: current, bytes }];
  let names: string[] = [];
  try {
    names = readdirSync(keysDir);
  } catch {
    names = [];
  }
  const byVersion = new Map<number, string>();
  for (const n of names) {
    const m = HELD.exec(n);
    if (m) byVersion.set(Number(m[1]), n);
  }
  for (let v = current.version - 1; v >= 1 && byVersion.has(v); v--) {
    try {
      const older = readRoot(join(keysDir, byVersion.get(v)!));
      const root = verifyTrustedRoot(older, nodeCrypto, null);
      verifyRootUpdate(root, chain[chain.length - 1].bytes, nodeCrypto);
      chain.push({ root, bytes: older });
    } catch {
      break;
    }
  }
  return chain;
}

/**
 * Targets metadata fetched from the server is accepted only if a threshold of targets keys of
 * the current root, or of a root before it in the chain, signed it: it was the vendor's.
 * Returns the root version whose keys signed it.
 */
export function checkServerTargets(env: Envelope<unknown>, chain: HeldRoot[]): number {
  let first: unknown = null;
  for (const h of chain) {
    try {
      checkThreshold(env, h.root, 'targets', nodeCrypto);
      return h.root.version;
    } catch (e) {
      if (first === null) first = e;
    }
  }
  const e = first as MetadataError;
  throw new MetadataError('E_META_THRESHOLD', 'the server\'s current targets metadata is not signed by the targets keys of root version ' +
    chain.map((h) => h.root.version).join(' or ') + ' (keep earlier roots beside root.json as N.root.json: `signet root push --keys`)', e);
}

/** Make `nextBytes` the keys folder's root.json, keeping the one it follows as N.root.json. */
export function installHeldRoot(keysDir: string, nextBytes: Uint8Array): { version: number; kept: string } {
  const curBytes = readRoot(join(keysDir, 'root.json'));
  const cur = verifyTrustedRoot(curBytes, nodeCrypto, null);
  const next = verifyRootUpdate(cur, nextBytes, nodeCrypto);
  const kept = cur.version + '.root.json';
  writeFileAtomic(join(keysDir, kept), curBytes);
  writeFileAtomic(join(keysDir, 'root.json'), nextBytes);
  return { version: next.version, kept };
}
