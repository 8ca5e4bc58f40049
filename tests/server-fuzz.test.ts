/**
 * HTTP fuzzing of a real update server (the startServer path: TLS with mutual authentication, a
 * real SQLite file, the access log to a file): over 20 000 seeded requests, pipelined on several
 * connections at once, with odd targets, methods, headers, chunked bodies, and requests that
 * break the connection, plus raw garbage and cut-off TLS records. The server must answer or
 * close every one, never answer 500, never hang, and afterwards still serve /healthz and a real
 * device check-in.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type Running } from '../update-server/start';
import { runFuzz } from './helpers/http-fuzz';
import { call, enroll, makeRepoKeys, quickDevices, tempDir, type RepoKeys } from './server-fixture';

const SEED = Number(process.env.SIGNET_FUZZ_SEED ?? 0x5197e7);
const REQUESTS = 20_000;

let work: string;
let k: RepoKeys;
let srv: Running;

beforeAll(async () => {
  work = tempDir('signet-fuzz-');
  k = await makeRepoKeys(work);
  srv = await startServer({
    dataDir: join(work, 'data'), keysDir: k.serverKeys, port: 0, accessLog: 'file',
    // Short deadlines so that a request cut off or a body that never comes ends in a close soon.
    limits: { headersTimeoutMs: 1_000, checkIntervalMs: 100, bodyGraceMs: 1_000, keepAliveTimeoutMs: 2_000, handshakeTimeoutMs: 1_000 },
  });
});

afterAll(async () => {
  await srv?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('HTTP fuzzing', () => {
  it(`answers or closes every one of ${REQUESTS} malformed and odd requests, then still serves`, async () => {
    const admin = await enroll(k, work, 'fuzz-admin', true);
    const ids = [...quickDevices(k, ['fz-dev-1', 'fz-dev-2', 'fz-dev-3']), admin];
    const st = await runFuzz({ port: srv.listening.port, seed: SEED, requests: REQUESTS, connections: 6, ids, garbage: 300, boundMs: 30_000 });
    console.log(`fuzz: seed ${SEED}: ${st.requests} requests on TLS connections (${st.answered} answered, ${st.closed} closed by the server), `
      + `${st.tlsGarbage} garbage/cut-off TLS connections (${st.tlsGarbageClosed} closed); statuses ${JSON.stringify(st.statuses)}`);
    expect(st.requests).toBeGreaterThanOrEqual(REQUESTS);
    expect(st.hung).toBe(0);
    expect(st.answered + st.closed).toBe(st.requests);
    expect(st.answered).toBeGreaterThan(REQUESTS * 0.35); // most batches end in a request that closes the connection
    expect(st.tlsGarbageClosed).toBe(st.tlsGarbage);
    // No internal error: every answer is a success or a refusal with a reason.
    expect(Object.keys(st.statuses).map(Number).filter((s) => s >= 500 && ![501, 503, 505].includes(s))).toEqual([]);

    expect((await call(srv.url + '/healthz', { ca: k.ca.certPem })).status).toBe(200);
    const [device] = quickDevices(k, ['fz-after']);
    const checkin = await call(srv.url + '/api/v1/checkin', { ca: k.ca.certPem, id: device, body: { board: 'qemu-virt-arm64', version: '1.2.0', securityCounter: 3, slot: 'a' } });
    expect(checkin.status).toBe(200);
    expect(checkin.json()).toHaveProperty('offer');
  }, 300_000);
});
