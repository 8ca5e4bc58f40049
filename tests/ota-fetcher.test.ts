// The Node fetcher against a loopback server that misbehaves on request: caps enforced while
// streaming, resume with Range, stall and rate limits (small configured limits; the assertions
// are on codes, never on elapsed time), mutual TLS.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { TufClient } from '../sdk/ota/client';
import { MemoryMetadataStore } from '../sdk/ota/client-store';
import { fetchBytes, type Fetcher, type FetchRequest } from '../sdk/ota/fetcher';
import { NodeFetcher, type NodeFetcherOptions } from '../sdk/ota/fetcher-node';
import { nowSeconds, sha256Hex, TestRepo } from './helpers/tuf-repo';
import { RepoServer } from './helpers/tuf-repo-server';
import { TestCa } from './helpers/tuf-repo-tls';

function get(f: Fetcher, req: FetchRequest): Promise<Uint8Array> {
  return new Promise((resolve, reject) => fetchBytes(f, req, (err, b) => (err ? reject(err) : resolve(b as Uint8Array))));
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? 'NO_CODE:' + String(e);
  }
  return 'RESOLVED';
}

const payload = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) & 255);
let repo: TestRepo;
let server: RepoServer;
let name: string;
const TS = '/tuf/metadata/timestamp.json';

beforeEach(async () => {
  repo = await TestRepo.create();
  name = repo.addTarget(payload, { board: 'qemu-virt-arm64', name: 'svc', version: '1.3.0', securityCounter: 4 });
  await repo.publish();
  server = await RepoServer.start(repo);
});
afterEach(async () => server.close());

function client(o: NodeFetcherOptions = {}, maxResumes?: number): TufClient {
  return new TufClient({
    fetcher: new NodeFetcher(o), store: new MemoryMetadataStore(), crypto: nodeCrypto, rootBytes: repo.rootBytes,
    metadataUrl: server.url + '/tuf/metadata/', targetsUrl: server.url + '/tuf/targets/', now: () => nowSeconds(), maxResumes,
  });
}

async function downloadWith(c: TufClient): Promise<Uint8Array> {
  await new Promise<void>((resolve, reject) => c.refresh((err) => (err ? reject(err) : resolve())));
  return new Promise((resolve, reject) => c.downloadTarget(name, c.target(name)!, (err, b) => (err ? reject(err) : resolve(b as Uint8Array))));
}

describe('size caps while streaming', () => {
  it('stops an endless body at the cap', async () => {
    server.behave(TS, { endless: true });
    expect(await code(get(new NodeFetcher(), { url: server.url + TS, maxBytes: 16 * 1024 }))).toBe('E_FETCH_TOO_LARGE');
  });

  it('stops a chunked body (no Content-Length) once it passes the cap', async () => {
    server.behave(TS, { body: new Uint8Array(100_000), noLength: true });
    expect(await code(get(new NodeFetcher(), { url: server.url + TS, maxBytes: 1000 }))).toBe('E_FETCH_TOO_LARGE');
  });

  it('refuses a declared Content-Length over the cap before reading', async () => {
    server.behave(TS, { body: new Uint8Array(5000) });
    expect(await code(get(new NodeFetcher(), { url: server.url + TS, maxBytes: 4999 }))).toBe('E_FETCH_TOO_LARGE');
    expect(await get(new NodeFetcher(), { url: server.url + TS, maxBytes: 5000 })).toHaveLength(5000);
  });

  it('the core holds a faulty adapter to the cap, chunk by chunk', async () => {
    let stoppedAt = -1;
    const faulty: Fetcher = {
      fetch(_req, sink) {
        for (let i = 0; i < 100; i++) {
          if (sink.data(new Uint8Array(100)) === false) {
            stoppedAt = i;
            break;
          }
        }
        sink.end(null);
        return { abort() {} };
      },
    };
    expect(await code(get(faulty, { url: 'x', maxBytes: 250 }))).toBe('E_FETCH_TOO_LARGE');
    expect(stoppedAt).toBe(2);
  });
});

describe('resume with Range after a cut', () => {
  it('resumes a target download where the connection dropped, twice', async () => {
    server.behave('/tuf/targets/' + repo.targetPath(name), { cutAfter: 70_000, times: 2 });
    expect(sha256Hex(await downloadWith(client()))).toBe(sha256Hex(payload));
    const ranges = server.targetRequests().map((r) => r.range);
    expect(ranges[0]).toBeUndefined();
    expect(ranges.slice(1)).toEqual(['bytes=70000-', 'bytes=140000-']);
  });

  it('copes with a server that ignores Range (skips what it already has)', async () => {
    // Cut once, then answer the resumed request with the whole file (200).
    server.behave('/tuf/targets/' + repo.targetPath(name), { cutAfter: 50_000, times: 1 }, { ignoreRange: true });
    expect(sha256Hex(await downloadWith(client()))).toBe(sha256Hex(payload));
    expect(server.targetRequests().map((r) => r.range)).toEqual([undefined, 'bytes=50000-']);
  });

  it('gives up after maxResumes with E_FETCH_CUT', async () => {
    server.behave('/tuf/targets/' + repo.targetPath(name), { cutAfter: 1000 });
    expect(await code(downloadWith(client({}, 2)))).toBe('E_FETCH_CUT');
    expect(server.targetRequests()).toHaveLength(3);
  });
});

describe('slow retrieval', () => {
  it('a stalled trickle ends with E_FETCH_STALL', async () => {
    server.behave(TS, { trickle: { bytes: 1, intervalMs: 1000 } });
    expect(await code(get(new NodeFetcher({ stallTimeoutMs: 50 }), { url: server.url + TS, maxBytes: 16384 }))).toBe('E_FETCH_STALL');
  });

  it('a steady trickle below the rate floor ends with E_FETCH_SLOW', async () => {
    server.behave(TS, { trickle: { bytes: 2, intervalMs: 5 } });
    const f = new NodeFetcher({ stallTimeoutMs: 10_000, minBytesPerSecond: 50_000, rateGraceMs: 30 });
    expect(await code(get(f, { url: server.url + TS, maxBytes: 16384 }))).toBe('E_FETCH_SLOW');
  });
});

describe('HTTP failures are typed', () => {
  it('404, 500, refused connection, bad URL', async () => {
    expect(await code(get(new NodeFetcher(), { url: server.url + '/tuf/metadata/99.root.json', maxBytes: 100 }))).toBe('E_FETCH_NOT_FOUND');
    server.behave(TS, { status: 500, times: 1 }, { status: 403 });
    expect(await code(get(new NodeFetcher(), { url: server.url + TS, maxBytes: 100 }))).toBe('E_FETCH_HTTP');
    expect(await code(get(new NodeFetcher(), { url: server.url + TS, maxBytes: 100 }))).toBe('E_FETCH_REFUSED');
    // A rate limit or a request timeout is for later, not a refusal: the agent keeps a report
    // answered so queued, and drops only one the server refused.
    server.behave(TS, { status: 429, times: 1 }, { status: 408, times: 1 });
    expect(await code(get(new NodeFetcher(), { url: server.url + TS, maxBytes: 100 }))).toBe('E_FETCH_HTTP');
    expect(await code(get(new NodeFetcher(), { url: server.url + TS, maxBytes: 100 }))).toBe('E_FETCH_HTTP');
    const closed = await RepoServer.start(repo);
    const url = closed.url;
    await closed.close();
    expect(await code(get(new NodeFetcher(), { url: url + TS, maxBytes: 100 }))).toBe('E_FETCH_NETWORK');
    expect(await code(get(new NodeFetcher(), { url: 'ftp://127.0.0.1/x', maxBytes: 100 }))).toBe('E_FETCH_NETWORK');
  });
});

describe('mutual TLS', () => {
  let ca: TestCa;
  let tlsServer: RepoServer;
  beforeAll(async () => {
    ca = new TestCa();
    const s = ca.server();
    const r = await TestRepo.create();
    await r.publish();
    tlsServer = await RepoServer.start(r, { key: s.key, cert: s.cert, ca: ca.cert });
  });
  afterAll(async () => tlsServer.close());

  it('presents the device certificate; the server sees its CN', async () => {
    const dev = ca.client('tv-0001');
    const f = new NodeFetcher({ tls: { ca: ca.cert, cert: dev.cert, key: dev.key } });
    expect((await get(f, { url: tlsServer.url + TS, maxBytes: 16384 })).length).toBeGreaterThan(100);
    expect(tlsServer.requests.at(-1)?.clientCn).toBe('tv-0001');
  });

  it('without a client certificate, or trusting another CA, the request fails (E_FETCH_NETWORK)', async () => {
    expect(await code(get(new NodeFetcher({ tls: { ca: ca.cert } }), { url: tlsServer.url + TS, maxBytes: 16384 }))).toBe('E_FETCH_NETWORK');
    const other = new TestCa('other CA');
    const dev = ca.client('tv-0002');
    expect(await code(get(new NodeFetcher({ tls: { ca: other.cert, cert: dev.cert, key: dev.key } }), { url: tlsServer.url + TS, maxBytes: 16384 }))).toBe('E_FETCH_NETWORK');
  });
});
