/**
 * A service whose event handler throws is restarted by the boot stage with back-off: the real
 * boot-stage bundle on the real C host (Duktape + libuv), booting a signed app from a disk file.
 * The host reports each exception with its file and line; the service's sockets are closed
 * before it runs again (it listens on the same port each time); after five failed restarts in
 * a row the stage gives up and halts. Back-off is shortened with --restart-backoff-ms.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBootStage } from '../bootloader/build';
import { buildNativeHost } from '../bootloader/native/build';
import { utf8Decode, utf8Encode } from '../sdk/util/bytes';
import { newFlash, smallBoard, tempDir } from './helpers/boot';
import { makeImage, makeKeySet, type TestKeySet } from './helpers/fixtures';

let ks: TestKeySet;
let host: string;
let bundlePath: string;
let dir: string;

beforeAll(async () => {
  ks = await makeKeySet(1, 1);
  dir = tempDir('signet-restart-');
  host = await buildNativeHost('host');
  const b = await buildBootStage({ board: smallBoard(), rootJson: utf8Decode(ks.rootBytes)!, testMode: true });
  bundlePath = join(dir, 'boot.js');
  writeFileSync(bundlePath, b.code);
}, 300_000);

/** The app: counts its runs in a global, listens on the same port every run, then its timer throws (runs up to `failRuns`). */
function app(failRuns: number): string {
  return `var g = Function('return this')();
g.runs = (g.runs || 0) + 1;
var uv = __signet_host.uv;
var server = uv.tcpListen(function () {}, '127.0.0.1', g.port || 0, 8);
g.port = uv.address(server).port;
__signet_host.log('app[run] ' + g.runs + ' listening');
if (g.runs === 1) __signet_host.confirm();
uv.timerStart(function (e) {
  if (e !== 'timeout') return;
  if (g.runs <= ${failRuns}) throw new Error('crash in run ' + g.runs);
  __signet_host.log('app[done]');
  uv.close(server);
}, 1, 0);
`;
}

async function boot(failRuns: number): Promise<{ status: number | null; lines: string[]; stderr: string }> {
  const image = await makeImage({ version: '1.2.0', securityCounter: 3, app: utf8Encode(app(failRuns)), signers: [ks.targets[0].signer] });
  const disk = join(dir, `disk-${failRuns}.img`);
  writeFileSync(disk, newFlash({ slotA: image, floor: 3 }).bytes);
  const r = spawnSync(host, [bundlePath, '--disk', disk, '--restart-backoff-ms', '5'], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, lines: r.stdout.trim().split('\n'), stderr: r.stderr };
}

describe('restarting a service whose handler throws', () => {
  it('runs it again after a doubling back-off, with its sockets closed, and it serves on', async () => {
    const r = await boot(2);
    expect(r.status).toBe(0);
    expect(r.lines.filter((l) => /^(app|boot)\[/.test(l) && !l.startsWith('boot[OK]'))).toEqual([
      'app[run] 1 listening',
      'boot[APP-RESTART] slot=a attempt=1 delay_ms=5 at=app.js:10',
      'app[run] 2 listening',
      'boot[APP-RESTART] slot=a attempt=2 delay_ms=10 at=app.js:10',
      'app[run] 3 listening',
      'app[done]',
      'boot[HALT]',
    ]);
    const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('host[ERROR]'));
    expect(errors).toEqual([
      "host[ERROR] uncaught in a 'timeout' handler at app.js:10: Error: crash in run 1",
      "host[ERROR] uncaught in a 'timeout' handler at app.js:10: Error: crash in run 2",
    ]);
  });

  it('gives up after five restarts in a row and halts', async () => {
    const r = await boot(99);
    expect(r.status).toBe(0);
    const restarts = r.lines.filter((l) => l.startsWith('boot[APP-RESTART]'));
    expect(restarts.map((l) => l.replace(/.* delay_ms=(\d+) at=app\.js:10$/, '$1'))).toEqual(['5', '10', '20', '40', '80']);
    expect(r.lines.slice(-2)).toEqual(['boot[APP-GAVE-UP] slot=a restarts=5', 'boot[HALT]']);
    expect(r.lines.filter((l) => l.startsWith('app[run]'))).toHaveLength(6);
  });
});
