/**
 * examples/router-admin serving HTTPS from a qemu-virt-arm64 guest (TCG on this machine: figures
 * compare runs on one machine, not a device). Everything goes through the CLI a vendor uses:
 * `signet disk`, `signet device provision --issue`, `signet run --net user --forward`.
 *
 * serve.boot_to_https_ms      from starting `signet run` (which starts QEMU: U-Boot verified
 *                             boot, Linux, the boot stage) to the first HTTPS answer of
 *                             /api/status, verified against the vendor CA
 * serve.hello_boot_ms         the anchor: the same boot of examples/hello to its app line
 * serve.boot_to_https_ratio   boot_to_https_ms ÷ hello_boot_ms (what network + TLS + serving cost)
 * serve.https_req_s           GET /api/status over one keep-alive TLS connection (REQUESTS of
 *                             them; absolute and noisy, for the record)
 * serve.min_ram_mb            the smallest -m (halving from 256) at which the guest still boots
 *                             through U-Boot verified boot and answers HTTPS (the board packs
 *                             kernel, device tree, ramdisk and FIT into the first 11 MiB of RAM:
 *                             at 32 MiB U-Boot itself sits above 0x40c80000)
 * serve.size_percent_of_conventional  router-admin's boot image (FIT) + app image against the
 *                             same kernel + Debian's nodejs closure + the app image (as bench size)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { loadBoard } from '../sdk/board';
import { buildBootImage } from '../sdk/disk/boot-image';
import { fetchDeb } from '../sdk/build/debian';
import { cacheDir, sdkRoot } from '../sdk/util/paths';
import { signetCli, stopRun, type Figures } from './_lib';
import { dependencyClosure, treeBytes } from './size';
import { freePort } from '../tests/helpers/ports';

const CLI = join(sdkRoot(), 'sdk', 'cli', 'signet.mjs');
const LIMIT_MS = 600_000; // liveness bound only
const REQUESTS = 200;

function signet(args: string[]): string {
  return signetCli(args, LIMIT_MS);
}

function get(port: number, ca: Buffer, agent: Agent | false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', servername: 'localhost', port, path: '/api/status', ca, agent, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no HTTPS answer')));
    req.on('error', reject);
    req.end();
  });
}

/** Boot a disk; resolve with ms from start to `ready` (or undefined if it never got there). */
async function boot(args: string[], ready: (out: string, port: number) => Promise<boolean>, port: number, keep = false): Promise<{ ms?: number; run: ChildProcess }> {
  const t0 = process.hrtime.bigint();
  const run = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  run.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  run.stderr!.on('data', (d: Buffer) => (out += d.toString('latin1')));
  let ms: number | undefined;
  const deadline = Date.now() + LIMIT_MS;
  while (Date.now() < deadline && run.exitCode === null) {
    if (await ready(out, port)) {
      ms = Number(process.hrtime.bigint() - t0) / 1e6;
      break;
    }
    if (/app\[(FAILED|NO-TLS)\]|boot\[RECOVERY\]|Kernel panic/.test(out)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!keep || ms === undefined) await stopRun(run);
  return { ms, run };
}

export async function run(): Promise<Figures> {
  const board = loadBoard('qemu-virt-arm64');
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), 'bench-serve-'));
  try {
    const keys = join(work, 'keys');
    signet(['keys', 'init', '--dir', keys]);
    const ca = readFileSync(join(keys, 'vendor-ca.crt'));
    const made: Record<string, string> = {};
    for (const name of ['hello', 'router-admin']) {
      const app = join(work, `${name}.simg`);
      signet(['build', '--project', join(sdkRoot(), 'examples', name), '--version', '1.0.0', '--security-counter', '1', '--keys', keys, '--out', app]);
      made[name] = join(work, `${name}.img`);
      signet(['disk', app, '--board', board.id, '--keys', keys, '--out', made[name]!, '--key-dtb', join(work, 'pub.dtb')]);
    }
    signet(['device', 'provision', '--disk', made['router-admin']!, '--id', 'router-0001', '--board', board.id, '--ca-dir', keys, '--issue', '--host', 'localhost']);
    const verified = ['--board', board.id, '--key-dtb', join(work, 'pub.dtb')];
    const answers = async (_: string, port: number) => {
      try {
        return (await get(port, ca, false)).status === 200;
      } catch {
        return false;
      }
    };

    const hello = await boot([made.hello!, ...verified], async (out) => out.includes('hello from signet'), 0);
    const port = await freePort();
    const served = await boot([made['router-admin']!, ...verified, '--net', 'user', '--forward', `${port}:443`], answers, port, true);
    if (hello.ms === undefined || served.ms === undefined) throw new Error('a guest did not boot (hello or router-admin)');

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let reqS: number;
    try {
      await get(port, ca, agent); // the handshake, outside the count
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < REQUESTS; i++) if ((await get(port, ca, agent)).status !== 200) throw new Error('router-admin stopped answering');
      reqS = REQUESTS / (Number(process.hrtime.bigint() - t0) / 1e9);
    } finally {
      agent.destroy();
      await stopRun(served.run);
    }

    let minRam = 0;
    for (let mb = 256; mb >= 8; mb /= 2) {
      const p = await freePort();
      const r = await boot([made['router-admin']!, ...verified, '--memory', String(mb), '--net', 'user', '--forward', `${p}:443`], answers, p);
      if (r.ms === undefined) break;
      minRam = mb;
    }

    const appBytes = readFileSync(join(work, 'router-admin.simg')).length;
    const bootImage = await buildBootImage({ board, keysDir: keys });
    let nodeBytes = 0;
    for (const [pkg, arch] of await dependencyClosure('nodejs', board.arch)) nodeBytes += treeBytes(await fetchDeb(pkg, arch));
    const conventional = bootImage.kernel.kernel.length + nodeBytes + appBytes;
    return {
      hello_boot_ms: { value: hello.ms, unit: 'ms' },
      boot_to_https_ms: { value: served.ms, unit: 'ms' },
      boot_to_https_ratio: { value: served.ms / hello.ms, unit: 'x' },
      https_req_s: { value: reqS, unit: 'req/s' },
      min_ram_mb: { value: minRam, unit: 'MB' },
      signet_bytes: { value: bootImage.fit.length + appBytes, unit: 'bytes' },
      conventional_bytes: { value: conventional, unit: 'bytes' },
      size_percent_of_conventional: { value: (100 * (bootImage.fit.length + appBytes)) / conventional, unit: '%' },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
