/**
 * Device-side script for tests/vectors.test.ts, bundled to ES5 like the boot stage and run on
 * the real C host (Duktape + libsodium): for each case of the decision table
 * (tests/vectors/expected.json, path in the second argument; files in the first), prints
 * `<index> <verdict>` — OK or the code — as the boot stage decides it: verifyImage with the
 * boot stage's crypto (the host's SHA-256 and ed25519 behind the encoding rules), the
 * case's slot size, and the root verified as device-main.ts does (verifyTrustedRoot).
 * A third argument `--purejs-crypto` selects tweetnacl and our SHA-256 instead.
 */
import type { SignetNative } from '../../bootloader/src/native';
import { errorCode } from '../../bootloader/src/errors';
import { makePureJsCrypto } from '../../sdk/image/crypto-purejs';
import { verifyImage } from '../../sdk/image/verify';
import { verifyTrustedRoot } from '../../sdk/ota/metadata';
import { utf8Decode } from '../../sdk/util/bytes';

declare const signet_native: SignetNative;

interface Case {
  file: string;
  root: string;
  board: string;
  minSecurityCounter: number;
  now: number | null;
  slotBytes: number;
}

function main(): void {
  const n = signet_native;
  const dir = n.args[0];
  const cases = JSON.parse(utf8Decode(n.readFile(n.args[1])) as string) as Case[];
  const pure = n.args[2] === '--purejs-crypto';
  const crypto = pure ? makePureJsCrypto() : makePureJsCrypto(n.sha256, n.ed25519Verify);
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    const rootBytes = n.readFile(dir + '/' + c.root);
    let verdict = 'OK';
    try {
      verifyImage(n.readFile(dir + '/' + c.file), {
        root: function () { return verifyTrustedRoot(rootBytes, crypto, c.now); },
        board: c.board,
        minSecurityCounter: c.minSecurityCounter,
        now: c.now,
        crypto: crypto,
        slotBytes: c.slotBytes,
      });
    } catch (e) {
      verdict = errorCode(e);
    }
    n.print(i + ' ' + verdict);
  }
}

main();
