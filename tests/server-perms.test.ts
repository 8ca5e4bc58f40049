/**
 * A real `signet server` process started under umask 022: its data folder is 0700 and the
 * database, its WAL and SHM, the blobs and the TLS key it issues are 0600; a folder left with
 * wider modes is fixed on the next start. The loopback exemption for /dashboard and /metrics
 * is off unless the server is started with --open-local.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { CLI } from './helpers/cli';
import { call, enroll, makeRepoKeys, publishImage, releaseImage, tempDir, type RepoKeys } from './server-fixture';

let work: string;
let k: RepoKeys;
let admin: Identity;
let keysDir: string;
let data: string;
const children: ChildProcess[] = [];

/** `signet server` under `umask 022`, as a shell would start it; resolves with its URL. */
function startChild(extra: string[] = []): Promise<{ child: ChildProcess; url: string }> {
  const args = [CLI, 'server', '--data', data, '--keys', keysDir, '--port', '0', '--json', ...extra];
  const child = spawn('/bin/sh', ['-c', 'umask 022 && exec "$0" "$@"', process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SIGNET_PASSPHRASE: '' },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"url":"([^"]+)"/.exec(out);
      if (m) resolve({ child, url: m[1] });
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => reject(new Error(`signet server exited ${code}: ${err}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

/** Every folder and file under the data folder with its mode. */
function modes(): Record<string, string> {
  const out: Record<string, string> = { '.': mode(data) };
  const walk = (rel: string) => {
    for (const e of readdirSync(join(data, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out[r] = mode(join(data, r));
      if (e.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

beforeAll(async () => {
  work = tempDir('signet-perms-');
  k = await makeRepoKeys(work);
  admin = await enroll(k, work, 'ops', true);
  // A keys folder with the CA key and no server certificate: the first start issues one into <data>/tls.
  keysDir = join(work, 'lab-keys');
  mkdirSync(keysDir);
  for (const f of ['snapshot.key', 'timestamp.key', 'root.json', 'vendor-ca.crt']) copyFileSync(join(k.serverKeys, f), join(keysDir, f));
  copyFileSync(join(k.keys, 'vendor-ca.key'), join(keysDir, 'vendor-ca.key'));
  data = join(work, 'data');
});

afterAll(async () => {
  for (const c of children) await stop(c);
  rmSync(work, { recursive: true, force: true });
});

describe('data folder modes under umask 022', () => {
  it('creates the folder 0700 and the database, WAL, SHM, blobs and TLS key 0600', async () => {
    const { child, url } = await startChild();
    await publishImage(k, url, admin, await releaseImage(k, { version: '1.3.0', securityCounter: 4 }), work);
    const m = modes();
    expect(m['.']).toBe('700');
    for (const f of ['signet.db', 'signet.db-wal', 'signet.db-shm', 'tls/server.key']) expect(m[f], f).toBe('600');
    const blobs = Object.keys(m).filter((p) => /^blobs\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(p));
    expect(blobs).toHaveLength(1);
    expect(m[blobs[0]]).toBe('600');
    for (const d of ['blobs', 'blobs/.incoming', blobs[0].slice(0, 8), 'tls']) expect(m[d], d).toBe('700');
    // Nothing under the data folder is readable by group or others.
    expect(Object.entries(m).filter(([p, v]) => p !== 'tls/server.crt' && !/^[67]00$/.test(v))).toEqual([]);

    // Without --open-local, loopback clients need an admin certificate too.
    for (const p of ['/dashboard', '/metrics']) {
      const r = await call(url + p, { ca: k.ca.certPem });
      expect(r.status, p).toBe(401);
      expect(r.json().error.code).toBe('E_AUTH_NO_CERT');
      expect((await call(url + p, { ca: k.ca.certPem, id: admin })).status).toBe(200);
    }
    await stop(child);
  });

  it('fixes wider modes of an existing data folder when it starts, and --open-local opens the dashboard to loopback', async () => {
    const blob = Object.keys(modes()).find((p) => /^blobs\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(p))!;
    chmodSync(data, 0o755);
    for (const f of ['signet.db', blob, 'tls/server.key']) chmodSync(join(data, f), 0o644);
    chmodSync(join(data, 'blobs'), 0o755);
    const { child, url } = await startChild(['--open-local']);
    const m = modes();
    expect(m['.']).toBe('700');
    for (const f of ['signet.db', blob, 'tls/server.key']) expect(m[f], f).toBe('600');
    expect(m.blobs).toBe('700');

    for (const p of ['/dashboard', '/metrics']) expect((await call(url + p, { ca: k.ca.certPem })).status, p).toBe(200);
    // Only those two: the API still needs a certificate.
    expect((await call(url + '/api/v1/rollouts', { ca: k.ca.certPem })).status).toBe(401);
    await stop(child);
  });
});
