/**
 * Device-side script for tests/ota-boot-target.test.ts, bundled to ES5 like the boot stage and run
 * on the real C host: the agent's boot-image check (sdk/ota/boot-target-fit.ts verifyBootFit) with
 * the host's SHA-256 and mbedTLS rsaVerify. The JSON file given as the first argument holds
 * `{ keys: [{ keyName, modulus, exponent }], fits: [path], rsa: [{ n, e, d, s }] }` (hex; null for
 * "not a buffer"). Prints `fit <i> ok <board> <version> <counter> <arch>` or `fit <i> refused
 * <code>` per FIT, then `rsa <i> <1|0|x>` per raw rsaVerify case. With `stage` (a disk file with
 * A/B boot slots), each of its FITs goes through the agent's `stageBootImage` on that disk:
 * `stage <i> ok <slot>` or `stage <i> refused <code>`.
 */
import type { SignetNative } from '../../bootloader/src/native';
import { PartitionDevice } from '../../bootloader/src/block';
import { NativeBlockDevice } from '../../bootloader/src/native';
import { stageBootImage } from '../../sdk/ota/boot-target-agent';
import { verifyBootFit, type BootFitKey } from '../../sdk/ota/boot-target-fit';
import { fromHex } from '../../sdk/util/bytes';

declare const signet_native: SignetNative;

interface Input {
  keys: { keyName: string; modulus: string; exponent: string }[];
  fits: string[];
  rsa: { n: string | null; e: string | null; d: string | null; s: string | null }[];
  stage?: { disk: string; board: string; ab: Record<'boot_a' | 'boot_b' | 'bootenv', { offset: number; size: number }>; fits: string[] };
}

function bytes(h: string | null): Uint8Array {
  return (h === null ? null : fromHex(h)) as Uint8Array;
}

function main(): void {
  const n = signet_native;
  const raw = n.readFile(n.args[0]);
  let text = '';
  for (let i = 0; i < raw.length; i++) text += String.fromCharCode(raw[i]);
  const input = JSON.parse(text) as Input;
  const keys: BootFitKey[] = [];
  for (let i = 0; i < input.keys.length; i++) {
    keys.push({ keyName: input.keys[i].keyName, publicKey: { modulus: bytes(input.keys[i].modulus), exponent: bytes(input.keys[i].exponent) } });
  }
  const rsaVerify = n.rsaVerify as NonNullable<SignetNative['rsaVerify']>;
  const crypto = {
    sha256: function (d: Uint8Array) { return n.sha256(d); },
    rsaVerify: function (m: Uint8Array, e: Uint8Array, d: Uint8Array, s: Uint8Array) { return rsaVerify.call(n, m, e, d, s) === true; },
  };
  for (let i = 0; i < input.fits.length; i++) {
    try {
      const r = verifyBootFit(n.readFile(input.fits[i]), keys, crypto);
      n.print('fit ' + i + ' ok ' + r.board + ' ' + r.version + ' ' + r.securityCounter + ' ' + r.arch);
    } catch (e) {
      n.print('fit ' + i + ' refused ' + String((e as { code?: string }).code));
    }
  }
  const st = input.stage;
  if (st) {
    const disk = new NativeBlockDevice(n, st.disk, 512);
    const part = function (p: { offset: number; size: number }) { return new PartitionDevice(disk, p.offset, p.size); };
    const dev = { slots: { a: part(st.ab.boot_a), b: part(st.ab.boot_b) }, env: part(st.ab.bootenv) };
    for (let i = 0; i < st.fits.length; i++) {
      try {
        const r = stageBootImage(dev, n.readFile(st.fits[i]), { keys: keys, crypto: crypto, board: st.board, floor: 0, log: function (l: string) { n.print(l); } });
        n.print('stage ' + i + ' ok ' + r.slot);
      } catch (e) {
        n.print('stage ' + i + ' refused ' + String((e as { code?: string }).code));
      }
    }
  }
  for (let i = 0; i < input.rsa.length; i++) {
    const c = input.rsa[i];
    let v: unknown;
    try {
      v = rsaVerify.call(n, bytes(c.n), bytes(c.e), bytes(c.d), bytes(c.s));
    } catch (_e) {
      v = 'threw';
    }
    n.print('rsa ' + i + ' ' + (v === true ? 1 : v === false ? 0 : 'x'));
  }
}

main();
