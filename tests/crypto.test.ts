/** Native (OpenSSL) and pure-JS (tweetnacl + our SHA-256) crypto must give the same answers. */
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { makePureJsCrypto, pureJsCrypto } from '../sdk/image/crypto-purejs';
import { generateEd25519 } from '../sdk/keys/keyfile';
import { Sha256 } from '../sdk/util/sha256';
import { toHex } from '../sdk/util/bytes';

const runs = Number(process.env.SIGNET_PROPERTY_RUNS ?? 300);

describe('SHA-256', () => {
  it('matches FIPS 180-4 test vectors', () => {
    const v = (s: string) => toHex(pureJsCrypto.sha256(new TextEncoder().encode(s)));
    expect(v('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(v('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(v('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe('248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  });
  it('agrees with native on random inputs, including every padding boundary', () => {
    for (let n = 0; n < 200; n++) {
      const b = randomBytes(n);
      expect(toHex(pureJsCrypto.sha256(b))).toBe(toHex(nodeCrypto.sha256(b)));
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), (b) => toHex(pureJsCrypto.sha256(b)) === toHex(nodeCrypto.sha256(b))), { numRuns: runs });
  });
  it('incremental hashing over any chunking equals one-shot', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(3000), { maxLength: 6 }), (b, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
        const h = new Sha256();
        let prev = 0;
        for (const p of [...points, b.length]) {
          h.update(b.subarray(prev, p));
          prev = p;
        }
        return toHex(h.digest()) === createHash('sha256').update(b).digest('hex');
      }),
      { numRuns: runs },
    );
  });
  it('a host-supplied native hash is used by makePureJsCrypto', () => {
    let calls = 0;
    const c = makePureJsCrypto((d) => { calls++; return nodeCrypto.sha256(d); });
    const s = c.sha256Stream();
    s.update(new Uint8Array([1, 2]));
    s.update(new Uint8Array([3]));
    expect(toHex(s.digest())).toBe(toHex(nodeCrypto.sha256(new Uint8Array([1, 2, 3]))));
    expect(calls).toBe(1);
  });
});

describe('ed25519 verification', () => {
  const kp = generateEd25519();
  const sign = (m: Uint8Array) => kp.signer.sign(m) as Uint8Array;

  it('RFC 8032 test 1 verifies on both', () => {
    const pub = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex');
    const sig = Buffer.from('e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b', 'hex');
    expect(nodeCrypto.ed25519Verify(sig, new Uint8Array(0), pub)).toBe(true);
    expect(pureJsCrypto.ed25519Verify(sig, new Uint8Array(0), pub)).toBe(true);
  });

  it('agree on valid, tampered-message, tampered-signature and garbage inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.integer({ min: 0, max: 3 }), (msg, pos, mode) => {
        let sig = sign(msg);
        let m = msg;
        let pub = kp.signer.publicKey;
        if (mode === 1 && m.length > 0) { m = m.slice(); m[pos % m.length] ^= 1 << (pos % 8); }
        if (mode === 2) { sig = sig.slice(); sig[pos % 64] ^= 1 << (pos % 8); }
        if (mode === 3) { pub = new Uint8Array(randomBytes(32)); }
        const a = nodeCrypto.ed25519Verify(sig, m, pub);
        const b = pureJsCrypto.ed25519Verify(sig, m, pub);
        return a === b && (mode === 0 ? a : true);
      }),
      { numRuns: runs },
    );
  });

  it('agree on a non-canonical S (S + L): both refuse', () => {
    const msg = new Uint8Array([1, 2, 3]);
    const sig = sign(msg).slice();
    // Add L to S (little-endian, 32 bytes at offset 32).
    const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');
    let carry = 0;
    for (let i = 0; i < 32; i++) {
      const s = sig[32 + i] + L[i] + carry;
      sig[32 + i] = s & 255;
      carry = s >> 8;
    }
    expect(nodeCrypto.ed25519Verify(sig, msg, kp.signer.publicKey)).toBe(false);
    expect(pureJsCrypto.ed25519Verify(sig, msg, kp.signer.publicKey)).toBe(false);
  });

  it('wrong lengths are false, never a throw', () => {
    for (const c of [nodeCrypto, pureJsCrypto]) {
      expect(c.ed25519Verify(new Uint8Array(63), new Uint8Array(1), kp.signer.publicKey)).toBe(false);
      expect(c.ed25519Verify(new Uint8Array(64), new Uint8Array(1), new Uint8Array(31))).toBe(false);
    }
  });
});
