// The device fetcher (sdk/ota/fetcher-device.ts) over the runtime's fetch on Node's binding
// resumes a cut target download from the byte it was cut at: a loopback repository server cuts
// the connection after N body bytes of the first answer (Content-Length, chunked, and over
// mutual TLS), the core's next request asks for `Range: bytes=N-`, the server sends the target
// about once (not twice), and the signed hash verifies.
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { TufClient } from '../sdk/ota/client';
import { MemoryMetadataStore } from '../sdk/ota/client-store';
import { DeviceFetcher, type DeviceFetcherTls } from '../sdk/ota/fetcher-device';
import { nowSeconds, sha256Hex, TestRepo } from './helpers/tuf-repo';
import { RepoServer } from './helpers/tuf-repo-server';
import { TestCa } from './helpers/tuf-repo-tls';

const payload = new Uint8Array(200_000).map((_, i) => (i * 29 + 3) & 255);
const CUT = 70_000;

let server: RepoServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** The repository server, and the bytes it wrote on the sockets that carried target requests. */
async function start(tls?: { ca: TestCa }): Promise<{ repo: TestRepo; name: string; targetBytesSent: () => number }> {
  const repo = await TestRepo.create();
  const name = repo.addTarget(payload, { board: 'qemu-virt-arm64', name: 'svc', version: '1.3.0', securityCounter: 4 });
  await repo.publish();
  const pem = tls?.ca.server();
  server = await RepoServer.start(repo, pem && tls ? { key: pem.key, cert: pem.cert, ca: tls.ca.cert } : undefined);
  const sockets: Socket[] = [];
  (server as unknown as { server: Server }).server.on('request', (req: IncomingMessage) => {
    if ((req.url ?? '').startsWith('/tuf/targets/')) sockets.push(req.socket);
  });
  return { repo, name, targetBytesSent: () => sockets.reduce((n, s) => n + s.bytesWritten, 0) };
}

async function download(repo: TestRepo, name: string, tls?: DeviceFetcherTls): Promise<Uint8Array> {
  const c = new TufClient({
    fetcher: new DeviceFetcher({ tls, timeoutMs: 60_000 }), store: new MemoryMetadataStore(), crypto: nodeCrypto, rootBytes: repo.rootBytes,
    metadataUrl: server!.url + '/tuf/metadata/', targetsUrl: server!.url + '/tuf/targets/', now: () => nowSeconds(),
  });
  await new Promise<void>((resolve, reject) => c.refresh((err) => (err ? reject(err) : resolve())));
  return new Promise((resolve, reject) => c.downloadTarget(name, c.target(name)!, (err, b) => (err ? reject(err) : resolve(b as Uint8Array))));
}

describe('the device fetcher resumes a cut download from the byte it was cut at', () => {
  it('a Content-Length answer cut after N bytes: the next request is Range: bytes=N-, the target is sent once, the hash verifies', async () => {
    const { repo, name, targetBytesSent } = await start();
    server!.behave('/tuf/targets/' + repo.targetPath(name), { cutAfter: CUT, times: 1 });
    expect(sha256Hex(await download(repo, name))).toBe(sha256Hex(payload));
    expect(server!.targetRequests().map((r) => r.range)).toEqual([undefined, `bytes=${CUT}-`]);
    // Two heads on top of the body, not the body and a restart.
    expect(targetBytesSent()).toBeGreaterThanOrEqual(payload.length);
    expect(targetBytesSent()).toBeLessThan(payload.length + 2048);
  });

  it('a chunked answer cut after N bytes resumes from N', async () => {
    const { repo, name, targetBytesSent } = await start();
    server!.behave('/tuf/targets/' + repo.targetPath(name), { cutAfter: CUT, noLength: true, times: 1 });
    expect(sha256Hex(await download(repo, name))).toBe(sha256Hex(payload));
    expect(server!.targetRequests().map((r) => r.range)).toEqual([undefined, `bytes=${CUT}-`]);
    expect(targetBytesSent()).toBeLessThan(payload.length + 2048);
  });

  it('over mutual TLS, a cut answer resumes from the byte it was cut at', async () => {
    const ca = new TestCa();
    const { repo, name } = await start({ ca });
    const dev = ca.client('dev-resume');
    server!.behave('/tuf/targets/' + repo.targetPath(name), { cutAfter: CUT, times: 1 });
    expect(sha256Hex(await download(repo, name, { ca: ca.cert, cert: dev.cert, key: dev.key, servername: '127.0.0.1' }))).toBe(sha256Hex(payload));
    const ranges = server!.targetRequests().map((r) => r.range);
    expect(ranges).toHaveLength(2);
    // TLS records may end the cut a little short of N, never past it, and never at zero.
    const from = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
    expect(from).toBeGreaterThan(CUT - 17 * 1024);
    expect(from).toBeLessThanOrEqual(CUT);
  });
});
