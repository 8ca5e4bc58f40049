/**
 * `signet run --engine node` and the device engine give the same HTTP answers: the same signed
 * image of examples/http-hello (duktape-es5 bundle, line table) on the same kind of disk, once
 * through the CLI under Node (the boot stage's checks in Node, the app over node:net/node:tls,
 * config in SIGNET_CONFIG_FILE) and once through the real boot-stage bundle on the host build of
 * the C host (Duktape, libuv, mbed TLS, config in the disk's state partition), no QEMU. A fixed
 * request script over HTTP and HTTPS on loopback; status, selected headers and bodies must match
 * (uptime normalised). Also: the image is verified first (a foreign root is refused with the boot
 * stage's own line and no app runs), a throwing service names its own line, and bad options are
 * one-line errors.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildBootStage } from '../bootloader/build';
import { buildNativeHost } from '../bootloader/native/build';
import { FileBlockDevice } from '../bootloader/src/block-file';
import { provisionFlash } from '../bootloader/src/provision';
import { loadBoard, partition } from '../sdk/board';
import { bundleService } from '../sdk/build/bundle';
import { LINE_TABLE_PAYLOAD } from '../sdk/build/linetable';
import { utf8Decode, utf8Encode } from '../sdk/util/bytes';
import { TEST_CA_PEM } from '../examples/http-hello/src/test-tls';
import { CLI, expectOneLineError, ROOT, signet } from './helpers/cli';
import { tempDir } from './helpers/boot';
import { makeImage, makeKeySet, type TestKeySet } from './helpers/fixtures';

const BOARD = 'qemu-virt-arm64';
const HTTP_PORT = 8080;
const HTTPS_PORT = 8443;

let ks: TestKeySet;
let dir: string;
let keysDir: string;
let host: string;
let bootJs: string;
let image: Uint8Array;
const children: ChildProcess[] = [];

/** A disk file with the board's real layout (sparse), the image in slot A. */
function makeDisk(name: string, img: Uint8Array): string {
  const board = loadBoard(BOARD);
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, board.flash.size);
  closeSync(fd);
  const dev = new FileBlockDevice(path, board.flash.blockSize, true);
  const p = (n: string) => {
    const x = partition(board, n);
    return { offset: x.offset, size: x.size };
  };
  provisionFlash(dev, { slot_a: p('slot_a'), slot_b: p('slot_b'), state: p('state') }, { slotA: img, securityFloor: 1 });
  dev.close();
  return path;
}

async function imageOf(projectDir: string, version: string): Promise<Uint8Array> {
  const b = await bundleService({ projectDir, entry: 'src/main.ts', engine: 'duktape-es5' });
  return makeImage({ version, securityCounter: 1, app: utf8Encode(b.code), assets: [{ name: LINE_TABLE_PAYLOAD, type: 'asset', data: utf8Encode(b.lineTable) }], signers: [ks.targets[0].signer] });
}

beforeAll(async () => {
  ks = await makeKeySet(1, 1);
  dir = tempDir('signet-run-node-');
  keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'root.json'), ks.rootBytes);
  image = await imageOf(join(ROOT, 'examples', 'http-hello'), '2.3.4');
  host = await buildNativeHost('host');
  const b = await buildBootStage({ board: loadBoard(BOARD), rootJson: utf8Decode(ks.rootBytes)!, testMode: false });
  bootJs = join(dir, 'boot.js');
  writeFileSync(bootJs, b.code);
}, 300_000);

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Starts a process and resolves with its output lines once a line matches `ready` (or it ends). */
function startUntil(cmd: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; out: () => string; exited: Promise<number | null> }> {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve) => {
    const check = () => {
      if (ready.test(out)) resolve({ child, out: () => out, exited });
    };
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      check();
    });
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      check();
    });
    void exited.then(() => resolve({ child, out: () => out, exited }));
  });
}

interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  body: string;
}

const HEADERS = ['content-type', 'content-length', 'transfer-encoding', 'connection'];

function ask(tls: boolean, method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port: tls ? HTTPS_PORT : HTTP_PORT, method, path, agent: false, timeout: 30_000, ...(tls ? { ca: TEST_CA_PEM, servername: 'localhost' } : {}) };
    const req = (tls ? httpsRequest : httpRequest)(opts, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const headers: Record<string, string | undefined> = {};
        for (const h of HEADERS) headers[h] = res.headers[h] as string | undefined;
        resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(parts).toString('utf8') });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

/** The fixed request script; uptime-like fields normalised. */
async function script(): Promise<Answer[]> {
  const out: Answer[] = [];
  for (const tls of [false, true]) {
    out.push(await ask(tls, 'GET', '/'));
    out.push(await ask(tls, 'GET', '/status'));
    out.push(await ask(tls, 'POST', '/echo', 'ping 1 2 3'));
    out.push(await ask(tls, 'GET', '/nowhere'));
    out.push(await ask(tls, 'PUT', '/api/config/wifi-name', tls ? 'office' : 'home net'));
    out.push(await ask(tls, 'GET', '/api/config/wifi-name'));
    out.push(await ask(tls, 'PUT', '/api/config/wifi-name', 'x'.repeat(40)));
  }
  return out.map((a) => ({ ...a, body: a.body.replace(/"uptimeS":\d+/, '"uptimeS":0') }));
}

describe('signet run --engine node', () => {
  it('answers a request script exactly as the device engine (C host, Duktape) does', async () => {
    const nodeDisk = makeDisk('node.img', image);
    const node = await startUntil('node', [CLI, 'run', nodeDisk, '--board', BOARD, '--keys', keysDir, '--engine', 'node'], /app\[SERVING\]/, { ...process.env, SIGNET_CONFIG_FILE: join(dir, 'node-config.bin') });
    expect(node.out()).toMatch(/app\[SERVING\] http=8080 https=8443 udp=7007/);
    const viaNode = await script();
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    const nodeLines = node.out().split('\n').filter((l) => /^(boot|app)\[/.test(l));

    const devDisk = makeDisk('device.img', image);
    const dev = await startUntil(host, [bootJs, '--disk', devDisk], /app\[SERVING\]/);
    expect(dev.out()).toMatch(/app\[SERVING\] http=8080 https=8443 udp=7007/);
    const viaDevice = await script();
    dev.child.kill('SIGKILL');
    await dev.exited;
    const devLines = dev.out().split('\n').filter((l) => /^(boot|app)\[/.test(l));

    expect(viaNode[0]).toEqual({ status: 200, headers: { 'content-type': 'text/plain', 'content-length': '44', 'transfer-encoding': undefined, connection: expect.any(String) }, body: 'hello from signet on qemu-virt-arm64 v2.3.4\n' });
    expect(viaNode.map((a) => a.status)).toEqual([200, 200, 200, 404, 200, 200, 400, 200, 200, 200, 404, 200, 200, 400]);
    expect(viaNode).toEqual(viaDevice);
    // The same boot lines (the boot stage's verdict on the same disk) and app lines.
    expect(nodeLines).toEqual(devLines);
    expect(nodeLines[0]).toBe('boot[OK] slot=a version=2.3.4');
    expect(nodeLines).toContain('app[SERVING] http=8080 https=8443 udp=7007');
  }, 120_000);

  it('verifies the image first: a root that did not sign it leaves the app unrun, with the boot stage\'s lines', async () => {
    const other = await makeKeySet(1, 1);
    const otherKeys = join(dir, 'other-keys');
    mkdirSync(otherKeys, { recursive: true });
    writeFileSync(join(otherKeys, 'root.json'), other.rootBytes);
    const disk = makeDisk('foreign.img', image);
    const r = spawnSync('node', [CLI, 'run', disk, '--board', BOARD, '--keys', otherKeys, '--engine', 'node'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stdout).not.toMatch(/app\[/);
    expect(r.stdout).toMatch(/boot\[(RECOVERY|REJECT)/);
  });

  it('a service that throws in a timer callback names its own file and line', async () => {
    const proj = join(dir, 'thrower');
    mkdirSync(join(proj, 'src'), { recursive: true });
    const src = "import { log, timers } from 'signet/runtime';\n\nlog('app[up]');\ntimers.setTimeout(() => {\n  throw new Error('boom');\n}, 1);\n";
    writeFileSync(join(proj, 'src', 'main.ts'), src);
    const disk = makeDisk('thrower.img', await imageOf(proj, '1.0.0'));
    const r = spawnSync('node', [CLI, 'run', disk, '--board', BOARD, '--keys', keysDir, '--engine', 'node'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(70);
    expect(r.stdout).toContain('host[ERROR] uncaught in a handler at src/main.ts:5: Error: boom');
  });

  it('refuses QEMU-only options and a missing --keys with one-line errors', () => {
    const disk = join(dir, 'node.img');
    expectOneLineError(signet(['run', disk, '--board', BOARD, '--engine', 'node']), 'E_USAGE');
    expectOneLineError(signet(['run', disk, '--board', BOARD, '--keys', keysDir, '--engine', 'node', '--net', 'user']), 'E_USAGE');
    expectOneLineError(signet(['run', disk, '--board', BOARD, '--engine', 'v8']), 'E_USAGE');
    const help = signet(['run', '--help']);
    expect(help.stdout).toMatch(/--engine node: .*127\.0\.0\.1:P/);
  });
});
