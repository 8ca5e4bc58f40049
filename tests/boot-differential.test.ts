/**
 * Differential: the same ES5 boot-stage bundle on Node (V8, with a Node `signet_native`) and
 * on the real Duktape host built from Debian's duktape.c, over the same scenarios. Decisions,
 * console lines and the resulting flash bytes must be identical.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBootStage } from '../bootloader/build';
import { buildNativeHost } from '../bootloader/native/build';
import { runBootBundleOnNode } from '../bootloader/node-host';
import { bootFixtures, newFlash, smallBoard, SMALL_LAYOUT, tempDir, type BootFixtures } from './helpers/boot';
import { utf8Decode } from '../sdk/util/bytes';

let fx: BootFixtures;
let host: string;
let bundlePath: string;
let bundle: string;
let dir: string;

interface Scenario {
  name: string;
  flash: () => Uint8Array;
  boots: number;
  args?: string[];
  expectFirst: RegExp;
}

const scenarios: Scenario[] = [];

beforeAll(async () => {
  fx = await bootFixtures();
  dir = tempDir('signet-diff-');
  host = await buildNativeHost('host');
  const b = await buildBootStage({ board: smallBoard(), rootJson: utf8Decode(fx.ks.rootBytes)!, testMode: true });
  bundle = b.code;
  bundlePath = join(dir, 'boot.js');
  writeFileSync(bundlePath, bundle);
  const st = SMALL_LAYOUT.state;
  const flip = (f: ReturnType<typeof newFlash>, off: number) => { f.flipBit(off, 2); return f.bytes; };
  // A slot-A app that stages the update file given on its command line.
  const updatePath = join(dir, 'update.simg');
  writeFileSync(updatePath, fx.v130);
  scenarios.push(
    { name: 'good boot', flash: () => newFlash({ slotA: fx.v120, floor: 3 }).bytes, boots: 2, expectFirst: /^boot\[OK\] slot=a version=1\.2\.0$/ },
    { name: 'good boot, pure-JS hashing', flash: () => newFlash({ slotA: fx.v120, floor: 3 }).bytes, boots: 1, args: ['--purejs-hash'], expectFirst: /^boot\[OK\] slot=a/ },
    { name: 'good boot, pure-JS ed25519', flash: () => newFlash({ slotA: fx.v120, floor: 3 }).bytes, boots: 1, args: ['--purejs-ed25519'], expectFirst: /^boot\[OK\] slot=a/ },
    { name: 'good boot, pure-JS crypto', flash: () => newFlash({ slotA: fx.v120, floor: 3 }).bytes, boots: 1, args: ['--purejs-crypto'], expectFirst: /^boot\[OK\] slot=a/ },
    // The last 64 bytes of a one-signer image are its signature: native and tweetnacl must refuse alike.
    { name: 'bad signature', flash: () => flip(newFlash({ slotA: fx.v120, slotB: fx.v100, floor: 1 }), SMALL_LAYOUT.slot_a.offset + fx.v120.length - 5), boots: 1, expectFirst: /^boot\[FALLBACK\] slot=a reason=E_SIGNATURE$/ },
    { name: 'bad signature, pure-JS crypto', flash: () => flip(newFlash({ slotA: fx.v120, slotB: fx.v100, floor: 1 }), SMALL_LAYOUT.slot_a.offset + fx.v120.length - 5), boots: 1, args: ['--purejs-crypto'], expectFirst: /^boot\[FALLBACK\] slot=a reason=E_SIGNATURE$/ },
    { name: 'tampered slot', flash: () => flip(newFlash({ slotA: fx.v120, slotB: fx.v100, floor: 1 }), SMALL_LAYOUT.slot_a.offset + 300), boots: 2, expectFirst: /^boot\[FALLBACK\] slot=a reason=E_/ },
    { name: 'wrong key', flash: () => newFlash({ slotA: fx.wrongKey, floor: 3 }).bytes, boots: 1, expectFirst: /reason=E_UNKNOWN_KEY/ },
    { name: 'wrong board', flash: () => newFlash({ slotA: fx.wrongBoard, floor: 3 }).bytes, boots: 1, expectFirst: /reason=E_BOARD/ },
    { name: 'rollback below floor', flash: () => newFlash({ slotA: fx.v100, floor: 3 }).bytes, boots: 1, expectFirst: /reason=E_ROLLBACK/ },
    { name: 'trial confirmed', flash: () => newFlash({ slotA: fx.v120, slotB: fx.v130, floor: 3, state: { slotB: 'trial', triesLeft: 3 } }).bytes, boots: 2, expectFirst: /^boot\[TRIAL\] slot=b version=1\.3\.0 tries=2$/ },
    { name: 'trial never confirmed', flash: () => newFlash({ slotA: fx.v120, slotB: fx.v130NoConfirm, floor: 3, state: { slotB: 'trial', triesLeft: 3 } }).bytes, boots: 5, expectFirst: /^boot\[TRIAL\]/ },
    { name: 'both slots bad', flash: () => { const f = newFlash({ slotA: fx.v120, slotB: fx.v130, floor: 3 }); flip(f, SMALL_LAYOUT.slot_a.offset + 100); return flip(f, SMALL_LAYOUT.slot_b.offset + 100); }, boots: 1, expectFirst: /^boot\[FALLBACK\]/ },
    { name: 'torn state copy', flash: () => flip(newFlash({ slotA: fx.v120, floor: 3 }), st.offset + st.size / 2 + 20), boots: 2, expectFirst: /^boot\[STATE\] copy=1 reason=E_STATE_TORN$/ },
    { name: 'both state copies corrupt', flash: () => { const f = newFlash({ slotA: fx.v120, slotB: fx.v130, floor: 3 }); flip(f, st.offset + 20); return flip(f, st.offset + st.size / 2 + 20); }, boots: 2, expectFirst: /^boot\[STATE\] reason=E_STATE_CORRUPT$/ },
  );
}, 300_000);

function runDuktape(disk: string, args: string[]): string[] {
  const r = spawnSync(host, [bundlePath, '--disk', disk, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`duktape host exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim().split('\n');
}

describe('Node and Duktape make the same decisions', () => {
  it('over every scenario: identical console lines and flash', () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(9);
    for (const s of scenarios) {
      const image = s.flash();
      const nodeDisk = join(dir, `${s.name.replace(/\W+/g, '-')}.node.img`);
      const dukDisk = join(dir, `${s.name.replace(/\W+/g, '-')}.duk.img`);
      writeFileSync(nodeDisk, image);
      copyFileSync(nodeDisk, dukDisk);
      const nodeLines: string[] = [];
      const dukLines: string[] = [];
      for (let i = 0; i < s.boots; i++) {
        nodeLines.push(`-- boot ${i + 1}`, ...runBootBundleOnNode(bundle, { args: ['--disk', nodeDisk, ...(s.args ?? [])] }).lines);
        dukLines.push(`-- boot ${i + 1}`, ...runDuktape(dukDisk, s.args ?? []));
      }
      expect(dukLines, s.name).toEqual(nodeLines);
      expect(nodeLines[1], s.name).toMatch(s.expectFirst);
      expect(nodeLines.at(-1), s.name).toBe('boot[HALT]');
      expect(Buffer.compare(readFileSync(nodeDisk), readFileSync(dukDisk)), `${s.name}: flash differs`).toBe(0);
    }
  });

  it('the never-confirmed trial ends on slot a with b marked bad, on both engines', () => {
    const s = scenarios.find((x) => x.name === 'trial never confirmed')!;
    const disk = join(dir, 'never.duk.img');
    writeFileSync(disk, s.flash());
    const all: string[] = [];
    for (let i = 0; i < 4; i++) all.push(...runDuktape(disk, []));
    expect(all.filter((l) => l.startsWith('boot['))).toEqual([
      'boot[TRIAL] slot=b version=1.3.0 tries=2', 'boot[HALT]',
      'boot[TRIAL] slot=b version=1.3.0 tries=1', 'boot[HALT]',
      'boot[TRIAL] slot=b version=1.3.0 tries=0', 'boot[HALT]',
      'boot[FALLBACK] slot=b reason=E_TRIAL_EXHAUSTED', 'boot[OK] slot=a version=1.2.0', 'boot[HALT]',
    ]);
  });
});
