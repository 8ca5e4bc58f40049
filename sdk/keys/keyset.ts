/**
 * `signet keys init`: the offline root key set with its threshold, the targets keys that sign
 * releases, the online snapshot/timestamp keys (they go to the update server), a signed TUF
 * root.json, a vendor CA and an RSA-2048 key for U-Boot FIT signatures.
 */
import { join } from 'node:path';
import { formatUtc, SPEC_VERSION, type RootSigned } from '../ota/metadata';
import { signEnvelope } from '../ota/sign';
import { canonicalString } from '../util/canonical-json';
import { createDirAtomic, outputFolderState, writeFileAtomic } from '../util/fs-atomic';
import { KeyError } from './errors';
import { generateEd25519, writePrivateKeyFile, type Ed25519KeyPair } from './keyfile';
import { createVendorCa, encryptPem, generateFitKey } from './x509';

export interface KeysInitOptions {
  dir: string;
  threshold?: number; // root and targets threshold (k)
  count?: number; // root and targets key count (n)
  passphrase?: string; // encrypt every private key with it
  rootExpiresDays?: number;
  vendorName?: string;
  now?: Date;
}

export interface KeysInitResult {
  dir: string;
  files: string[];
  root: RootSigned;
}

export const MAX_KEYS = 16;

/**
 * One turn of the event loop, so that a Ctrl-C (or SIGTERM, SIGHUP) during the slow steps is
 * handled now: the temp folder with the new private keys is removed and the command ends,
 * instead of the signal waiting until every key is written.
 */
const signalsMayArrive = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function initKeys(opts: KeysInitOptions): Promise<KeysInitResult> {
  const k = opts.threshold ?? 1;
  const n = opts.count ?? Math.max(1, k);
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 1 || n < k || n > MAX_KEYS) {
    throw new KeyError('E_KEY_ARGS', `cannot make a ${k}-of-${n} key set`);
  }
  if (outputFolderState(opts.dir) === 'not-empty') {
    throw new KeyError('E_KEYS_EXIST', opts.dir + ' already exists and is not empty');
  }
  const now = opts.now ?? new Date();
  const nowS = Math.floor(now.getTime() / 1000);
  const files: string[] = [];
  let root!: RootSigned;

  const make = (count: number): Ed25519KeyPair[] => Array.from({ length: count }, () => generateEd25519());
  const rootKeys = make(n);
  const targetsKeys = make(n);
  const [snapshotKey] = make(1);
  const [timestampKey] = make(1);

  const fill = async (tmp: string) => {
    const writeKey = async (name: string, kp: Ed25519KeyPair) => {
      writePrivateKeyFile(join(tmp, name + '.key'), kp.privatePem(opts.passphrase));
      writeFileAtomic(join(tmp, name + '.pub'), JSON.stringify(kp.publicKey, null, 2) + '\n');
      files.push(name + '.key', name + '.pub');
      await signalsMayArrive();
    };
    for (const [i, kp] of rootKeys.entries()) await writeKey(`root-${i + 1}`, kp);
    for (const [i, kp] of targetsKeys.entries()) await writeKey(`targets-${i + 1}`, kp);
    await writeKey('snapshot', snapshotKey);
    await writeKey('timestamp', timestampKey);

    const all = [...rootKeys, ...targetsKeys, snapshotKey, timestampKey];
    const keys: RootSigned['keys'] = {};
    for (const kp of all) keys[kp.signer.keyid] = kp.publicKey;
    root = {
      _type: 'root',
      spec_version: SPEC_VERSION,
      consistent_snapshot: true,
      version: 1,
      expires: formatUtc(nowS + (opts.rootExpiresDays ?? 365) * 86400),
      keys,
      roles: {
        root: { keyids: rootKeys.map((x) => x.signer.keyid), threshold: k },
        targets: { keyids: targetsKeys.map((x) => x.signer.keyid), threshold: k },
        snapshot: { keyids: [snapshotKey.signer.keyid], threshold: 1 },
        timestamp: { keyids: [timestampKey.signer.keyid], threshold: 1 },
      },
    };
    // Every root key signs the first root, so it verifies even if later some are lost.
    const env = await signEnvelope(root, rootKeys.map((x) => x.signer));
    writeFileAtomic(join(tmp, 'root.json'), JSON.stringify(JSON.parse(canonicalString(env)), null, 2) + '\n');
    files.push('root.json');

    await signalsMayArrive();
    const ca = createVendorCa((opts.vendorName ?? 'Signet vendor') + ' CA', 3650, now);
    writeFileAtomic(join(tmp, 'vendor-ca.crt'), ca.certPem);
    writePrivateKeyFile(join(tmp, 'vendor-ca.key'), opts.passphrase ? encryptPem(ca.keyPem, opts.passphrase) : ca.keyPem);
    await signalsMayArrive();
    const fit = generateFitKey();
    writePrivateKeyFile(join(tmp, 'fit.key'), opts.passphrase ? encryptPem(fit, opts.passphrase) : fit);
    files.push('vendor-ca.crt', 'vendor-ca.key', 'fit.key');
  };

  // Built under a temp name (an existing empty folder is replaced), so that a failure or a
  // signal half-way leaves no private key behind.
  await createDirAtomic(opts.dir, fill);
  return { dir: opts.dir, files: files.sort(), root };
}
