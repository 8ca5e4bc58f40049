/**
 * bootverify.*: time to verify a 64 KB and a 1 MB app image with the boot stage's code, on the
 * host-built Duktape and on Node (the same ES5 bundle on V8 with Node's `signet_native`).
 *
 *   duk_native_*     what a device runs: the C host's SHA-256 and ed25519 (libsodium)
 *   duk_tweetnacl_*  the C host's SHA-256, ed25519 in JS (tweetnacl) — the boot stage before
 *                    native ed25519 (`--purejs-ed25519`)
 *   duk_purejs_*     everything in JS (`--purejs-crypto`)
 *   node_*           Node: node:crypto SHA-256 and ed25519 through signet_native
 *   *_root_ms        verifying the compiled-in root.json (one signature over its canonical JSON),
 *                    which the stage does once per boot besides the image
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNativeHost } from '../bootloader/native/build';
import { runBootBundleOnNode } from '../bootloader/node-host';
import { bundleService } from '../sdk/build/bundle';
import { sdkRoot } from '../sdk/util/paths';
import { makeImage, makeKeySet } from '../tests/helpers/fixtures';
import type { Figures } from './_lib';

function figure(lines: string[], key: string): number {
  const l = lines.find((x) => x.startsWith(`bootverify ${key}=`));
  if (!l) throw new Error(`no ${key} line in: ` + lines.join(' | '));
  return Number(l.slice(`bootverify ${key}=`.length));
}

const MODES = [
  { name: 'native', flags: [] as string[] },
  { name: 'tweetnacl', flags: ['--purejs-ed25519'] },
  { name: 'purejs', flags: ['--purejs-crypto'] },
];

export async function run(): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-bootverify-'));
  try {
    const host = await buildNativeHost('host');
    const bundle = await bundleService({ projectDir: join(sdkRoot(), 'bootloader'), entry: 'bench/verify-main.ts', engine: 'duktape-es5', typecheck: false });
    const script = join(dir, 'verify.js');
    writeFileSync(script, bundle.code);
    const ks = await makeKeySet(1, 1);
    const rootPath = join(dir, 'root.json');
    writeFileSync(rootPath, ks.rootBytes);
    const figures: Figures = {};
    for (const [label, size] of [['64kb', 64 * 1024], ['1mb', 1024 * 1024]] as const) {
      const img = join(dir, `${label}.simg`);
      writeFileSync(img, await makeImage({ app: new Uint8Array(randomBytes(size)), signers: [ks.targets[0].signer] }));
      for (const mode of MODES) {
        // Pure-JS SHA-256 of 1 MB takes seconds in Duktape: fewer rounds there.
        const iterations = mode.name === 'purejs' && label === '1mb' ? 2 : 5;
        const r = spawnSync(host, [script, img, rootPath, String(iterations), ...mode.flags], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(r.stderr);
        const lines = r.stdout.split('\n');
        figures[`duk_${mode.name}_${label}_ms`] = { value: figure(lines, 'ms'), unit: 'ms' };
        if (label === '64kb') figures[`duk_${mode.name}_root_ms`] = { value: figure(lines, 'root_ms'), unit: 'ms' };
      }
      const node = runBootBundleOnNode(bundle.code, { args: [img, rootPath, '20'] }).lines;
      figures[`node_${label}_ms`] = { value: figure(node, 'ms'), unit: 'ms' };
      if (label === '64kb') figures.node_root_ms = { value: figure(node, 'root_ms'), unit: 'ms' };
    }
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
