/**
 * Fleet-scale figures (issue 16).
 *
 *   fleet.checkin_per_s_*, fleet.checkin_p99_ms, fleet.replicas_2_vs_1: signet server replicas on
 *                                PostgreSQL (bench/_fleet-replicas.ts).
 *   fleet.mirror_bytes_fraction  bytes the devices fetched from the mirror ÷ all bytes they
 *                                fetched (mirror + API), for a fleet taking a 1 MiB release
 *                                through `signet mirror sync` and nginx; goal ≥ 0.99.
 *
 * The real `signet server` (child process), `syncMirror` into a folder, Debian's nginx serving
 * it over HTTPS, and simulated devices (real boot stage, real agent) whose fetcher counts the
 * response bytes it delivers, by where they came from. A ratio of bytes, not a time: the
 * anchor is the same devices' own API traffic.
 */
import { createPublicKey } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueCertificate } from '../sdk/keys/device-x509';
import { syncMirror } from '../sdk/mirror/sync';
import { SimulatedDevice } from '../sdk/ota/device';
import type { Fetcher } from '../sdk/ota/fetcher';
import { NodeFetcher } from '../sdk/ota/fetcher-node';
import type { FlashLayout } from '../bootloader/src/provision';
import { loadSigner } from '../sdk/keys/keyfile';
import { appSource } from '../tests/helpers/boot';
import { makeImage } from '../tests/helpers/fixtures';
import { freePort, mirrorSiteConf, startNginx } from '../tests/helpers/nginx';
import type { Figures } from './_lib';
import { benchServer } from './_server';
import { replicaFigures } from './_fleet-replicas';

const DEVICES = 20;
const SLOT = 2 * 1024 * 1024;
const LAYOUT: FlashLayout = {
  slot_a: { offset: 64 * 1024, size: SLOT },
  slot_b: { offset: 64 * 1024 + SLOT, size: SLOT },
  state: { offset: 64 * 1024 + 2 * SLOT, size: 64 * 1024 },
};
const FLASH_BYTES = 64 * 1024 + 2 * SLOT + 64 * 1024;

/** A fetcher that counts the body bytes it hands on, per URL prefix. */
function counting(inner: Fetcher, tally: Map<string, number>, prefixes: string[]): Fetcher {
  return {
    fetch(req, sink) {
      const key = prefixes.find((p) => req.url.startsWith(p)) ?? 'other';
      return inner.fetch(req, {
        data(chunk) {
          tally.set(key, (tally.get(key) ?? 0) + chunk.length);
          return sink.data(chunk);
        },
        end: (err) => sink.end(err),
      });
    },
  };
}

export async function run(): Promise<Figures> {
  return { ...(await mirrorFigures()), ...(await replicaFigures()) };
}

async function mirrorFigures(): Promise<Figures> {
  const s = await benchServer('fleet', {
    limits: { 'device-burst': 1_000_000, 'device-rate-per-s': 1_000_000, 'max-connections-per-address': 4096 },
    targetMb: 1,
  });
  const www = join(s.work, 'www');
  mkdirSync(www);
  const port = await freePort();
  const nginx = await startNginx(port, (dir) => mirrorSiteConf(dir, {
    port, root: www, certPath: join(s.serverKeys, 'server.crt'), keyPath: join(s.serverKeys, 'server.key'),
  }));
  const devices: SimulatedDevice[] = [];
  try {
    await s.adminClient.json('POST', '/api/v1/rollouts', { board: 'qemu-virt-arm64', version: '1.3.0', percent: 100, haltFailureRate: 0.5 });
    await syncMirror({ server: s.url, tls: { certPem: s.admin.certPem, keyPem: s.admin.keyPem, caPem: s.admin.caPem }, to: join(www, 'm') });
    const mirror = nginx.url + '/m';
    const rootBytes = new Uint8Array(readFileSync(join(s.keys, 'root.json')));
    const factory = await makeImage({ version: '1.2.0', securityCounter: 3, app: appSource('svc', true), signers: [await loadSigner(join(s.keys, 'targets-1.key'))] });
    const tally = new Map<string, number>();
    const first = issueCertificate({ caCertPem: s.ca.certPem, caKeyPem: s.ca.keyPem, commonName: 'fleet-1', role: 'device', days: 30, board: 'qemu-virt-arm64', channel: 'stable' });
    const keyPem = first.keyPem!;
    const publicKeyPem = createPublicKey(keyPem).export({ format: 'pem', type: 'spki' }) as string;
    for (let i = 0; i < DEVICES; i++) {
      const id = `fleet-${i + 1}`;
      const c = i === 0 ? first : issueCertificate({ caCertPem: s.ca.certPem, caKeyPem: s.ca.keyPem, commonName: id, role: 'device', days: 30, publicKeyPem, board: 'qemu-virt-arm64', channel: 'stable' });
      const fetcher = counting(new NodeFetcher({ tls: { ca: s.ca.certPem, cert: c.certPem, key: keyPem } }), tally, [mirror, s.url]);
      devices.push(SimulatedDevice.provision({
        dir: join(s.work, 'devices', id), id, board: 'qemu-virt-arm64', layout: LAYOUT, rootBytes, serverUrl: s.url, mirrors: [mirror],
        fetcher, factoryImage: factory, flashBytes: FLASH_BYTES, securityFloor: 3,
      }));
    }
    let staged = 0;
    for (const d of devices) {
      await d.boot();
      const r = await d.checkForUpdate();
      if (r.outcome === 'staged') staged++; // check-in, downloading and staged reports went to the API
    }
    if (staged !== DEVICES) throw new Error(`only ${staged} of ${DEVICES} devices staged the release`);
    const fromMirror = tally.get(mirror) ?? 0;
    const fromApi = tally.get(s.url) ?? 0;
    return {
      mirror_bytes_fraction: { value: Math.round((fromMirror / (fromMirror + fromApi)) * 10000) / 10000, unit: 'ratio' },
    };
  } finally {
    for (const d of devices) d.shutdown();
    await nginx.stop();
    await s.close();
  }
}
