/**
 * Golden vectors: the committed files in tests/vectors/ must be exactly what the generator
 * makes today (so the format cannot drift silently), and each must get its recorded verdict
 * from both crypto implementations. Regenerate after an intended format change with
 * SIGNET_WRITE_VECTORS=1.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { pureJsCrypto } from '../sdk/image/crypto-purejs';
import { ImageError } from '../sdk/image/errors';
import { verifyImage } from '../sdk/image/verify';
import { verifyTrustedRoot } from '../sdk/ota/metadata';
import { generateVectors, type VectorCase } from './vectors/vectors';

const DIR = join(__dirname, 'vectors');

describe('golden vectors', async () => {
  const { files, cases } = await generateVectors();
  const expected = JSON.stringify(cases, null, 2) + '\n';

  if (process.env.SIGNET_WRITE_VECTORS) {
    for (const [name, bytes] of files) {
      mkdirSync(dirname(join(DIR, name)), { recursive: true });
      writeFileSync(join(DIR, name), bytes);
    }
    writeFileSync(join(DIR, 'expected.json'), expected);
  }

  it('committed vectors are byte-identical to what the generator makes', () => {
    for (const [name, bytes] of files) {
      expect(existsSync(join(DIR, name)), name).toBe(true);
      expect(Buffer.compare(readFileSync(join(DIR, name)), Buffer.from(bytes)), name).toBe(0);
    }
    expect(readFileSync(join(DIR, 'expected.json'), 'utf8')).toBe(expected);
  });

  const committed: VectorCase[] = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8'));
  for (const c of committed) {
    it(`${c.file} with ${c.root} → ${c.expect} (${c.note})`, () => {
      for (const crypto of [nodeCrypto, pureJsCrypto]) {
        const root = verifyTrustedRoot(readFileSync(join(DIR, c.root)), crypto, c.now);
        let got = 'OK';
        try {
          verifyImage(readFileSync(join(DIR, c.file)), { root, board: c.board, minSecurityCounter: c.minSecurityCounter, now: c.now, crypto });
        } catch (e) {
          if (!(e instanceof ImageError)) throw e;
          got = e.code;
        }
        expect(got, crypto.name).toBe(c.expect);
      }
    });
  }
});
