/**
 * router-admin served over HTTPS by a Xen/arm32 DomU through a forwarded port, for bench/xen.ts
 * (xen.serves, xen.boot_to_https_ms): the CLI makes the keys, the image (examples/router-admin
 * built for xen-arm32), the disk and the device's TLS key and certificate (`signet device
 * provision --issue`); the SDK boots it (startXen with a user-mode network and the forward) and
 * the host asks https://localhost:PORT/api/status, verifying the guest against keys/vendor-ca.crt,
 * until it answers. tests/xen-net.test.ts does the same through `signet run`.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { Board } from '../../sdk/board';
import { spawnSync } from 'node:child_process';
import { startXen } from '../../sdk/disk/run-xen';
import { sdkRoot } from '../../sdk/util/paths';
import { freePort } from './ports';

// Not ./cli (its __dirname does not exist when bench/ bundles this as ESM).
const ROOT = sdkRoot();
const CLI = join(ROOT, 'dist', 'signet.mjs');

function signet(args: string[], opts: { timeout?: number } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: opts.timeout ?? 120_000, env: { ...process.env, SIGNET_PASSPHRASE: '' } });
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function getStatus(port: number, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', servername: 'localhost', port, path: '/api/status', ca, agent: false, timeout: 20_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export interface XenServeRun {
  /** The first answer's status and body (undefined: none before the deadline). */
  answer?: { status: number; body: string };
  /** QEMU start to that answer. */
  bootToHttpsMs?: number;
  console: string;
}

/** Builds and boots router-admin on `board` in `dir`, waits for its first HTTPS answer (at most `timeoutMs`). */
export async function xenServeScenario(board: Board, dir: string, timeoutMs = 600_000): Promise<XenServeRun> {
  const ok = (r: { code: number; stderr: string; stdout: string }, what: string) => {
    if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr}${r.stdout}`);
  };
  const keys = join(dir, 'keys');
  ok(signet(['keys', 'init', '--dir', keys]), 'keys init');
  // The examples folder whole (router-admin imports from http-hello), router-admin's board set.
  cpSync(join(ROOT, 'examples'), join(dir, 'examples'), { recursive: true, filter: (s) => !s.includes('node_modules') });
  const project = join(dir, 'examples', 'router-admin');
  const pj = JSON.parse(readFileSync(join(project, 'signet.json'), 'utf8'));
  writeFileSync(join(project, 'signet.json'), JSON.stringify({ ...pj, board: board.id }, null, 2));
  const app = join(dir, 'app.simg');
  ok(signet(['build', '--project', project, '--version', '1.0.0', '--security-counter', '1', '--keys', keys, '--out', app, '--no-typecheck']), 'build');
  const disk = join(dir, 'disk.img');
  const keyDtb = join(dir, 'pub.dtb');
  ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', disk, '--key-dtb', keyDtb], { timeout: 300_000 }), 'disk');
  ok(signet(['device', 'provision', '--disk', disk, '--id', 'bench-0001', '--board', board.id, '--ca-dir', keys, '--issue', '--host', 'localhost']), 'provision');
  const ca = readFileSync(join(keys, 'vendor-ca.crt'));
  const port = await freePort();
  let console_ = '';
  const started = await startXen({
    board,
    disk,
    keyDtb: new Uint8Array(readFileSync(keyDtb)),
    network: { mode: 'user', forwards: [{ proto: 'tcp', host: port, guest: 443 }] },
    onOutput: (c) => (console_ += c),
  });
  const t0 = performance.now();
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (/app\[SERVING\]/.test(console_)) {
        try {
          const answer = await getStatus(port, ca);
          return { answer, bootToHttpsMs: performance.now() - t0, console: console_ };
        } catch {
          // not yet
        }
      }
      if (/boot\[RECOVERY\]|host\[ERROR\]|app\[NO-TLS\]/.test(console_)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return { console: console_ };
  } finally {
    await started.guest.close();
    started.cleanup();
  }
}
