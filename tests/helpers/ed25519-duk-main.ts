/**
 * Device-side script for tests/native-ed25519.test.ts, bundled to ES5 like the boot stage and
 * run on the real C host: for each case in the JSON file given as the first argument
 * (`[{ sig, msg, pub }]`, hex; `null` for "not a buffer"), prints
 * `<index> <raw> <wrapped>` where raw is `signet_native.ed25519Verify` (libsodium) and wrapped
 * is the boot stage's crypto (`makePureJsCrypto(n.sha256, n.ed25519Verify)`), 1 or 0.
 */
import type { SignetNative } from '../../bootloader/src/native';
import { makePureJsCrypto } from '../../sdk/image/crypto-purejs';

declare const signet_native: SignetNative;

interface Case {
  sig: string | null;
  msg: string | null;
  pub: string | null;
  /** Byte offset at which to place the bytes inside a larger buffer (tests views). */
  at?: number;
}

function unhex(h: string | null, at: number): Uint8Array {
  if (h === null) return null as unknown as Uint8Array;
  const n = h.length / 2;
  const buf = new Uint8Array(n + at + 3);
  for (let i = 0; i < n; i++) buf[at + i] = parseInt(h.substr(2 * i, 2), 16);
  return buf.subarray(at, at + n);
}

function main(): void {
  const n = signet_native;
  const raw = n.readFile(n.args[0]);
  let text = '';
  for (let i = 0; i < raw.length; i++) text += String.fromCharCode(raw[i]);
  const cases = JSON.parse(text) as Case[];
  const wrapped = makePureJsCrypto(n.sha256, n.ed25519Verify);
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    const at = c.at || 0;
    const sig = unhex(c.sig, at), msg = unhex(c.msg, at), pub = unhex(c.pub, at);
    const a = n.ed25519Verify(sig, msg, pub);
    const b = wrapped.ed25519Verify(sig, msg, pub);
    n.print(i + ' ' + (a === true ? 1 : a === false ? 0 : 'x') + ' ' + (b === true ? 1 : b === false ? 0 : 'x'));
  }
}

main();
