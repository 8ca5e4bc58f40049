/**
 * The config store as a service on a device reaches it: the boot-stage bundle on the Duktape
 * host (and on Node, the same bundle) passes `__signet_host.config` to the app; a setting
 * written in one boot is read in the next, a provisioned secret is readable, bad calls throw
 * coded errors; and a host process killed (SIGKILL) while the app writes settings in a loop
 * leaves one of the values it wrote, never garbage, with the boot state intact.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBootStage } from '../bootloader/build';
import { buildNativeHost } from '../bootloader/native/build';
import { runBootBundleOnNode } from '../bootloader/node-host';
import { PartitionDevice } from '../bootloader/src/block';
import { SimFlash } from '../bootloader/src/block-sim';
import { ConfigStore } from '../bootloader/src/configstore';
import { readState } from '../bootloader/src/state';
import { utf8Decode, utf8Encode } from '../sdk/util/bytes';
import { makeImage } from './helpers/fixtures';
import { bootFixtures, newFlash, smallBoard, SMALL_LAYOUT, tempDir, type BootFixtures } from './helpers/boot';

let fx: BootFixtures;
let host: string;
let bundlePath: string;
let bundle: string;
let dir: string;

const APP = `
var h = __signet_host, c = h.config;
try {
h.log('app[cfg] wifi-name=' + c.get('wifi-name') + ' keys=' + c.keys().join(',') + ' secret=' + c.secret('admin.key').length);
function code(f) { try { f(); return 'none'; } catch (e) { return e.code; } }
h.log('app[cfg] errors ' + [code(function () { c.set('Bad Key', 'x'); }), code(function () { c.set('k', 5); }),
  code(function () { var s = 'x'; while (s.length < 1025) s += s; c.set('k', s); }), code(function () { c.file('absent.crt'); })].join(' '));
var n = Number(c.get('boots') || '0') + 1;
c.set('boots', String(n));
c.set('wifi-name', 'net-' + n);
h.confirm();
} catch (e) { h.log('app[cfg] threw ' + e.code + ': ' + e.message); }
`;

const LOOP_APP = `
var h = __signet_host, c = h.config, pad = 'p';
while (pad.length < 512) pad += pad;
c.set('wifi-name', 'v1:' + pad.length + ':' + pad);
h.log('app[loop] start');
for (var i = 2; i < 1000000; i++) c.set('wifi-name', 'v' + i + ':' + pad.length + ':' + pad);
`;

function flashWith(app: string): Uint8Array {
  return newFlash({ slotA: appImages[app], floor: 3 }).bytes;
}
const appImages: Record<string, Uint8Array> = {};

function provisionSecret(bytes: Uint8Array): Uint8Array {
  const f = new SimFlash(bytes.length, 512, bytes);
  const store = ConfigStore.inStatePartition(new PartitionDevice(f, SMALL_LAYOUT.state.offset, SMALL_LAYOUT.state.size));
  store.put('secret', 'admin.key', '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIK\n-----END PRIVATE KEY-----\n');
  return f.bytes;
}

function storeOf(path: string): ConfigStore {
  const b = new Uint8Array(readFileSync(path));
  return ConfigStore.inStatePartition(new PartitionDevice(new SimFlash(b.length, 512, b), SMALL_LAYOUT.state.offset, SMALL_LAYOUT.state.size));
}

beforeAll(async () => {
  fx = await bootFixtures();
  const s = [fx.ks.targets[0].signer];
  appImages.cfg = await makeImage({ version: '1.2.0', securityCounter: 3, app: utf8Encode(APP), signers: s });
  appImages.loop = await makeImage({ version: '1.2.0', securityCounter: 3, app: utf8Encode(LOOP_APP), signers: s });
  dir = tempDir('signet-cfgdev-');
  host = await buildNativeHost('host');
  bundle = (await buildBootStage({ board: smallBoard(), rootJson: utf8Decode(fx.ks.rootBytes)!, testMode: true })).code;
  bundlePath = join(dir, 'boot.js');
  writeFileSync(bundlePath, bundle);
}, 300_000);

function runDuktape(disk: string): string[] {
  const r = spawnSync(host, [bundlePath, '--disk', disk], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`duktape host exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim().split('\n');
}

describe('config on the device', () => {
  it('a setting survives a reboot, the provisioned secret is readable, errors are coded: Duktape and Node alike', () => {
    const image = provisionSecret(flashWith('cfg'));
    const duk = join(dir, 'cfg.duk.img');
    const node = join(dir, 'cfg.node.img');
    writeFileSync(duk, image);
    writeFileSync(node, image);
    const dukLines: string[] = [];
    const nodeLines: string[] = [];
    for (let i = 0; i < 2; i++) {
      dukLines.push(...runDuktape(duk));
      nodeLines.push(...runBootBundleOnNode(bundle, { args: ['--disk', node] }).lines);
    }
    const app = dukLines.filter((l) => l.startsWith('app['));
    expect(app).toEqual([
      'app[cfg] wifi-name=undefined keys= secret=77',
      'app[cfg] errors E_CONFIG_KEY E_CONFIG_VALUE E_CONFIG_TOO_LARGE E_CONFIG_MISSING',
      'app[cfg] wifi-name=net-1 keys=boots,wifi-name secret=77',
      'app[cfg] errors E_CONFIG_KEY E_CONFIG_VALUE E_CONFIG_TOO_LARGE E_CONFIG_MISSING',
    ]);
    expect(dukLines).toEqual(nodeLines);
    expect(Buffer.compare(readFileSync(duk), readFileSync(node))).toBe(0);
    expect(storeOf(duk).get('wifi-name')).toBe('net-2');
    expect(dukLines.join('\n')).not.toContain('PRIVATE KEY');
  });

  it('SIGKILL of the host while the app writes settings in a loop: the store holds a value the app wrote, never garbage', async () => {
    const values: number[] = [];
    for (let round = 0; round < 6; round++) {
      const disk = join(dir, `loop-${round}.img`);
      writeFileSync(disk, flashWith('loop'));
      const before = readState(new PartitionDevice(new SimFlash(readFileSync(disk).length, 512, new Uint8Array(readFileSync(disk))), SMALL_LAYOUT.state.offset, SMALL_LAYOUT.state.size));
      const child = spawn(host, [bundlePath, '--disk', disk], { stdio: ['ignore', 'pipe', 'pipe'] });
      // Kill once the loop has run: after the start line plus a varying number of output-free
      // milliseconds (the cut point differs each round; any cut point must be safe).
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('app[loop] start')) setTimeout(() => child.kill('SIGKILL'), 20 + round * 37);
        });
        child.on('exit', () => resolve());
      });
      const store = storeOf(disk);
      const v = store.get('wifi-name');
      expect(v, `round ${round}`).toMatch(/^v(\d+):(\d+):p+$/);
      const m = /^v(\d+):(\d+):(p+)$/.exec(v!)!;
      expect(m[3].length).toBe(Number(m[2]));
      values.push(Number(m[1]));
      const after = readState(new PartitionDevice(new SimFlash(readFileSync(disk).length, 512, new Uint8Array(readFileSync(disk))), SMALL_LAYOUT.state.offset, SMALL_LAYOUT.state.size));
      expect(after.valid).toEqual([true, true]);
      expect(after.state!.securityFloor).toBe(before.state!.securityFloor);
    }
    expect(Math.max(...values)).toBeGreaterThan(1);
  }, 120_000);
});
