/**
 * bootverify.*: time to verify a 64 KB and a 1 MB app image with the boot stage's code, on the
 * host-built Duktape (native SHA-256 from the C host, and pure-JS SHA-256), and on Node (the
 * same ES5 bundle on V8 with Node's hash). ed25519 is pure JS (tweetnacl) everywhere.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNativeHost } from '../bootloader/native/build';
import { runBootBundleOnNode } from '../bootloader/node-host';
import { bundleService } from '../sdk/build/bundle';
import { makeImage, makeKeySet } from '../tests/helpers/fixtures';
import type { Figures } from './_lib';

function msOf(lines: string[]): number {
  const l = lines.find((x) => x.startsWith('bootverify ms='));
  if (!l) throw new Error('no result line in: ' + lines.join(' | '));
  return Number(l.slice('bootverify ms='.length));
}

export async function run(): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-bootverify-'));
  const host = await buildNativeHost('host');
  const bundle = await bundleService({ projectDir: join(process.cwd(), 'bootloader'), entry: 'bench/verify-main.ts', engine: 'duktape-es5', typecheck: false });
  const script = join(dir, 'verify.js');
  writeFileSync(script, bundle.code);
  const ks = await makeKeySet(1, 1);
  const rootPath = join(dir, 'root.json');
  writeFileSync(rootPath, ks.rootBytes);
  const figures: Figures = {};
  for (const [label, size] of [['64kb', 64 * 1024], ['1mb', 1024 * 1024]] as const) {
    const img = join(dir, `${label}.simg`);
    writeFileSync(img, await makeImage({ app: new Uint8Array(randomBytes(size)), signers: [ks.targets[0].signer] }));
    const duk = (extra: string[], iterations: number) => {
      const r = spawnSync(host, [script, img, rootPath, String(iterations), ...extra], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      return msOf(r.stdout.split('\n'));
    };
    figures[`duk_native_${label}_ms`] = { value: duk([], 5), unit: 'ms' };
    figures[`duk_purejs_${label}_ms`] = { value: duk(['--purejs-hash'], label === '1mb' ? 2 : 5), unit: 'ms' };
    figures[`node_${label}_ms`] = { value: msOf(runBootBundleOnNode(bundle.code, { args: [img, rootPath, '20'] }).lines), unit: 'ms' };
  }
  return figures;
}
