/**
 * The world the server benchmarks (ota, attack) start from: fresh keys, a `signet server`
 * child process on a loopback port, an admin identity, and one release of `targetMb` published
 * the normal way. Cleaned up by `close()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enrollIdentity, loadIdentity, loadVendorCa, type Identity, type VendorCa } from '../sdk/keys/device';
import { loadSigner } from '../sdk/keys/keyfile';
import { initKeys } from '../sdk/keys/keyset';
import { AdminClient } from '../sdk/ota/repository-http';
import { publishRelease } from '../sdk/ota/repository-publish';
import { prepareServerKeys } from '../update-server/start';
import { makeImage } from '../tests/helpers/fixtures';

/** The project folder: the nearest parent with package.json (benchmarks run bundled from bench/out/). */
export function projectRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
}

export interface BenchServer {
  work: string;
  keys: string;
  serverKeys: string;
  ca: VendorCa;
  admin: Identity;
  adminClient: AdminClient;
  child: ChildProcess;
  url: string;
  port: number;
  image: Uint8Array;
  release: Awaited<ReturnType<typeof publishRelease>>;
  close(): Promise<void>;
}

/** `limits`: `--limit NAME=N` values for this run (the benchmarks lift the per-device rate limits). */
export async function benchServer(name: string, o: { limits: Record<string, number>; targetMb: number; logToStderr?: boolean }): Promise<BenchServer> {
  const work = mkdtempSync(join(tmpdir(), `signet-bench-${name}-`));
  let child: ChildProcess | undefined;
  const close = async (): Promise<void> => {
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) {
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      });
    }
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const keys = join(work, 'keys');
    const serverKeys = join(work, 'server-keys');
    await initKeys({ dir: keys });
    await prepareServerKeys({ keysDir: keys, outDir: serverKeys });
    const ca = await loadVendorCa(keys);
    await enrollIdentity({ id: 'bench-admin', keysDir: keys, outDir: join(work, 'admin'), admin: true });
    const admin = loadIdentity(join(work, 'admin'));
    const started = await startServer(join(work, 'data'), serverKeys, o.limits);
    child = started.child;
    const adminClient = new AdminClient(started.url, admin);
    const app = new Uint8Array(o.targetMb * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
    const image = await makeImage({ version: '1.3.0', securityCounter: 4, app, signers: [await loadSigner(join(keys, 'targets-1.key'))] });
    const imageFile = join(work, 'app.simg');
    writeFileSync(imageFile, image);
    const release = await publishRelease({ imagePath: imageFile, keysDir: keys, transport: adminClient });
    return { work, keys, serverKeys, ca, admin, adminClient, child: started.child, url: started.url, port: started.port, image, release, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function startServer(data: string, keys: string, limits: Record<string, number>): Promise<{ child: ChildProcess; url: string; port: number }> {
  const args = ['server', '--data', data, '--keys', keys, '--port', '0', '--json'];
  for (const [k, v] of Object.entries(limits)) args.push('--limit', `${k}=${v}`);
  const child = spawn(process.execPath, [join(projectRoot(), 'sdk/cli/signet.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err = (err + c.toString()).slice(-4096); // the access log: drained, its tail kept for an early exit
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        const j = JSON.parse(out.slice(0, nl)) as { url: string; port: number };
        resolve({ child, url: j.url, port: j.port });
      }
    });
    child.on('exit', (code) => reject(new Error(`signet server exited (${code}): ${err}`)));
  });
}
