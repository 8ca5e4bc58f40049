/**
 * Root rotation in the boot stage: after a new root (signed by a threshold of the old and the
 * new root keys) is installed, images signed by the new targets key boot and images signed
 * only by the revoked key do not; the chain survives reboots; forged links change nothing.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { generateEd25519 } from '../sdk/keys/keyfile';
import { type RootSigned } from '../sdk/ota/metadata';
import { signEnvelope } from '../sdk/ota/sign';
import { utf8Encode } from '../sdk/util/bytes';
import { canonicalString } from '../sdk/util/canonical-json';
import { BootStage } from '../bootloader/src/stage';
import { readRootChain } from '../bootloader/src/rootstore';
import { makeImage, makeKeySet, type TestKeySet } from './helpers/fixtures';
import { appSource, newFlash, parts } from './helpers/boot';

let ks: TestKeySet;
let v2Bytes: Uint8Array;
let forged: Uint8Array;
let newTargets: ReturnType<typeof generateEd25519>;

beforeAll(async () => {
  ks = await makeKeySet(1, 1);
  newTargets = generateEd25519();
  const newRootKey = generateEd25519();
  const v2: RootSigned = JSON.parse(JSON.stringify(ks.root));
  v2.version = 2;
  delete v2.keys[ks.targets[0].signer.keyid];
  v2.keys[newTargets.signer.keyid] = newTargets.publicKey;
  v2.keys[newRootKey.signer.keyid] = newRootKey.publicKey;
  v2.roles.targets = { keyids: [newTargets.signer.keyid], threshold: 1 };
  v2.roles.root = { keyids: [newRootKey.signer.keyid], threshold: 1 };
  // 5.3.4: signed by the old root's keys and the new root's keys.
  v2Bytes = utf8Encode(canonicalString(await signEnvelope(v2, [ks.rootKeys[0].signer, newRootKey.signer])));
  forged = utf8Encode(canonicalString(await signEnvelope(v2, [newRootKey.signer]))); // new keys only
});

function stageFor(f: ReturnType<typeof newFlash>, lines: string[]): BootStage {
  const p = parts(f);
  return new BootStage({ slots: { a: p.a, b: p.b }, state: p.state, root: ks.root, board: 'qemu-virt-arm64', crypto: nodeCrypto, now: () => null, log: (l) => lines.push(l), trialTries: 3 });
}

describe('root rotation in the boot stage', () => {
  it('new targets key boots after installation; the revoked key no longer does', async () => {
    const oldSigned = await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: [ks.targets[0].signer] });
    const newSigned = await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', true), signers: [newTargets.signer] });
    const f = newFlash({ slotA: oldSigned, floor: 3 });
    const lines: string[] = [];
    const st = stageFor(f, lines);
    expect(st.boot()?.slot).toBe('a');
    expect(() => st.stageImage(newSigned)).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_KEY' }));

    expect(() => st.installRootChain([forged])).toThrow(expect.objectContaining({ code: 'E_META_THRESHOLD' }));
    expect(readRootChain(parts(f).state).links).toHaveLength(0);

    expect(st.installRootChain([v2Bytes]).version).toBe(2);
    expect(st.stageImage(newSigned).manifest.version).toBe('1.3.0');

    // Reboot: the chain is re-verified from the compiled root; the trial of 1.3.0 boots.
    const l2: string[] = [];
    const s2 = stageFor(f, l2);
    const c = s2.boot();
    expect(l2[0]).toBe('boot[ROOT] version=2');
    expect(c?.image.manifest.version).toBe('1.3.0');
    s2.confirm();
    // The old image in slot a is now signed only by a revoked key.
    const l3: string[] = [];
    const s3 = stageFor(f, l3);
    s3.boot();
    expect(() => s3.stageImage(oldSigned)).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_KEY' }));
  });

  it('a corrupted stored chain is ignored (the compiled root stays in force)', async () => {
    const img = await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: [ks.targets[0].signer] });
    const f = newFlash({ slotA: img, floor: 3 });
    const st = stageFor(f, []);
    st.boot();
    st.installRootChain([v2Bytes]);
    // Flip a bit inside the stored link: CRC fails, chain unreadable, compiled root used.
    const stOff = 576 * 1024;
    f.flipBit(stOff + 2 * 512 + 100, 0);
    f.flipBit(stOff + (64 * 1024) / 2 + 512 + 100, 0);
    const lines: string[] = [];
    const c = stageFor(f, lines).boot();
    expect(lines.some((l) => l.startsWith('boot[ROOT]'))).toBe(false);
    expect(c?.image.manifest.version).toBe('1.2.0');
  });
});
