/**
 * The update server under attack, on loopback, as a `signet server` child process with its
 * default connection limits (docs/update-server.md, "Threat model and limits").
 *
 *   attack.checkin_per_s_unattacked        honest devices' check-ins per second, nobody else connected
 *   attack.checkin_per_s_under_slowloris   the same while 500 idle connections (250 that never send a
 *                                          TLS hello, 250 that finish TLS and never send a request) and
 *                                          20 slow readers (an 8 MiB download read at 8 KiB/s) are held
 *                                          open; the attacker reopens whatever the server closes
 *   attack.checkin_ratio_under_slowloris   the second ÷ the first (same run, same devices)
 *   attack.fuzz_requests                   seeded malformed/odd HTTP requests sent afterwards
 *                                          (tests/helpers/http-fuzz.ts), plus garbage TLS connections
 *   attack.fuzz_answered_or_closed         ÷ fuzz_requests: each answered or its connection closed (goal 1)
 *   attack.server_alive                    1 when, after all that, the process still runs and serves
 *                                          /healthz and a real device check-in
 *
 * Addresses, as the internet would have them (Linux routes all of 127/8 to loopback): each of
 * the 50 honest devices checks in from its own address (127.0.1.N), the idle connections come
 * from 10 attacker addresses (127.0.2.1-10, 50 each, under the per-address cap of 64), the
 * slow readers from 127.0.3.1, the fuzzer from 127.0.4.1. The per-device rate limit is lifted
 * for this run (`--limit device-burst=…`): the figure is about connections, and a real device
 * checks in every few minutes, not 60 times in a row.
 *
 * Each rate is the best of three rounds; calm and attacked rounds alternate. Bounded: fixed request counts, and the run gives up
 * after a few minutes.
 */
import { createPublicKey } from 'node:crypto';
import { Agent, request } from 'node:https';
import type { Socket } from 'node:net';
import { issueCertificate } from '../sdk/keys/device-x509';
import { runFuzz } from '../tests/helpers/http-fuzz';
import { connectTcp, connectTls } from '../tests/helpers/raw-https';
import type { Figures } from './_lib';
import { benchServer } from './_server';

const DEVICES = 50;
const CHECKINS_PER_DEVICE = 60;
const ROUNDS = 3;
const IDLE_NO_HELLO = 250;
const IDLE_NO_REQUEST = 250;
const ATTACKER_ADDRESSES = 10;
const SLOW_READERS = 20;
const SLOW_READ_BYTES = 4096;
const SLOW_READ_EVERY_MS = 500;
const TARGET_MB = 8;
const FUZZ_REQUESTS = 20_000;
const DEADLINE_MS = 420_000;
const BOARD = 'qemu-virt-arm64';

const started = Date.now();
function checkDeadline(): void {
  if (Date.now() - started > DEADLINE_MS) throw new Error('benchmark exceeded its time bound');
}

interface Device {
  agent: Agent;
  localAddress: string;
}

function checkin(d: Device, url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url + '/api/v1/checkin', {
      method: 'POST', agent: d.agent, localAddress: d.localAddress,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('check-in timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** All devices check in `count` times back to back, at once; check-ins per second. */
async function round(devices: Device[], url: string, body: string, count: number): Promise<number> {
  await Promise.all(devices.map((d) => checkin(d, url, body))); // connect first
  const t0 = process.hrtime.bigint();
  let n = 0;
  await Promise.all(devices.map(async (d) => {
    for (let i = 0; i < count; i++) {
      const status = await checkin(d, url, body);
      if (status !== 200) throw new Error('an honest check-in was answered ' + status);
      n++;
    }
  }));
  checkDeadline();
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Keeps `n` connections open from `addresses`, reopening each one the server closes. */
class Holder {
  private stopped = false;
  readonly sockets = new Set<Socket>();
  reopened = 0;

  constructor(private readonly open: (i: number) => Promise<Socket>, private readonly n: number) {}

  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.n }, (_, i) => this.keep(i)));
  }

  private async keep(i: number): Promise<void> {
    if (this.stopped) return;
    let s: Socket;
    try {
      s = await this.open(i);
    } catch {
      setTimeout(() => void this.keep(i), 100);
      return;
    }
    if (this.stopped) {
      s.destroy();
      return;
    }
    this.sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => {
      this.sockets.delete(s);
      this.reopened++;
      void this.keep(i);
    });
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.sockets) s.destroy();
  }
}

export async function run(): Promise<Figures> {
  const signet = await benchServer('attack', { limits: { 'device-burst': 1_000_000, 'device-rate-per-s': 1_000_000 }, targetMb: TARGET_MB });
  const { child, ca, admin } = signet;
  const pub = signet.release;
  const holders: Holder[] = [];
  try {
    // Devices, each with its own certificate (one shared RSA key) and its own address.
    const issue = (cn: string, publicKeyPem?: string) =>
      issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: cn, role: 'device', days: 2, publicKeyPem, board: BOARD, channel: 'stable' });
    const first = issue('dev-0');
    const keyPem = first.keyPem!;
    const publicKeyPem = createPublicKey(keyPem).export({ format: 'pem', type: 'spki' }) as string;
    const certs = [first.certPem, ...Array.from({ length: DEVICES + 2 }, (_, i) => issue('dev-' + (i + 1), publicKeyPem).certPem)];
    const devices: Device[] = Array.from({ length: DEVICES }, (_, i) => ({
      agent: new Agent({ keepAlive: true, maxSockets: 1, cert: certs[i], key: keyPem, ca: ca.certPem }),
      localAddress: `127.0.1.${i + 1}`,
    }));
    const body = JSON.stringify({ board: BOARD, version: '1.2.0', securityCounter: 3, slot: 'a' });
    checkDeadline();

    // The attack: idle connections from ten addresses, and slow readers.
    const attack = async (): Promise<{ idle: Holder[]; slow: Holder }> => {
      const idle = [
        new Holder((i) => connectTcp(signet.port, { localAddress: `127.0.2.${(i % ATTACKER_ADDRESSES) + 1}` }), IDLE_NO_HELLO),
        new Holder((i) => connectTls(signet.port, { localAddress: `127.0.2.${(i % ATTACKER_ADDRESSES) + 1}` }), IDLE_NO_REQUEST),
      ];
      const slow = new Holder(async (i) => {
        const s = await connectTls(signet.port, { localAddress: '127.0.3.1', id: { certPem: certs[DEVICES + (i % 2)], keyPem } });
        s.pause();
        s.write(`GET /tuf/targets/${pub.path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
        const t = setInterval(() => s.read(SLOW_READ_BYTES), SLOW_READ_EVERY_MS);
        s.once('close', () => clearInterval(t));
        return s;
      }, SLOW_READERS);
      holders.push(...idle, slow);
      await Promise.all([...idle, slow].map((h) => h.start()));
      return { idle, slow };
    };

    // Rounds alternate between calm and attacked, so that a burst of other load on a shared
    // machine does not land on one side only; the best of each is kept.
    let calm = 0;
    let attacked = 0;
    for (let i = 0; i < ROUNDS; i++) {
      calm = Math.max(calm, await round(devices, signet.url, body, CHECKINS_PER_DEVICE));
      const a = await attack();
      attacked = Math.max(attacked, await round(devices, signet.url, body, CHECKINS_PER_DEVICE));
      const held = { idle: a.idle[0].sockets.size + a.idle[1].sockets.size, slow: a.slow.sockets.size };
      for (const h of [...a.idle, a.slow]) h.stop();
      if (held.idle < (IDLE_NO_HELLO + IDLE_NO_REQUEST) * 0.9 || held.slow < SLOW_READERS * 0.9) {
        throw new Error(`the attack did not hold its connections open (${held.idle} idle, ${held.slow} slow readers)`);
      }
    }
    for (const d of devices) d.agent.destroy();

    // Fuzzing the same process, then: is it still there and serving?
    const fuzz = await runFuzz({
      port: signet.port, seed: 0xa77ac4, requests: FUZZ_REQUESTS, connections: 24, garbage: 100, localAddress: '127.0.4.1', boundMs: 60_000,
      ids: [{ certPem: certs[DEVICES + 2], keyPem }, admin],
    });
    checkDeadline();
    const after: Device = { agent: new Agent({ keepAlive: false, cert: certs[DEVICES + 2], key: keyPem, ca: ca.certPem }), localAddress: '127.0.1.250' };
    const health = await new Promise<number>((resolve) => {
      request(signet.url + '/healthz', { agent: after.agent }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0)).end();
    });
    const lastCheckin = await checkin(after, signet.url, body).catch(() => 0);
    after.agent.destroy();
    const alive = child.exitCode === null && child.signalCode === null && health === 200 && lastCheckin === 200 && fuzz.hung === 0;

    return {
      checkin_per_s_unattacked: { value: calm, unit: 'req/s' },
      checkin_per_s_under_slowloris: { value: attacked, unit: 'req/s' },
      checkin_ratio_under_slowloris: { value: attacked / calm, unit: 'ratio' },
      fuzz_requests: { value: fuzz.requests + fuzz.tlsGarbage, unit: 'requests' },
      fuzz_answered_or_closed: { value: (fuzz.answered + fuzz.closed + fuzz.tlsGarbageClosed) / (fuzz.requests + fuzz.tlsGarbage), unit: 'ratio' },
      server_alive: { value: alive ? 1 : 0, unit: 'bool' },
    };
  } finally {
    for (const h of holders) h.stop();
    await signet.close();
  }
}
