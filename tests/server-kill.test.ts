/**
 * kill -9 of a real `signet server` process in the middle of a large upload: after a restart
 * no partial target is visible, the database is consistent, and the same publish succeeds.
 */
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity } from '../sdk/keys/device';
import { parseEnvelope } from '../sdk/ota/metadata';
import { consistentTargetPath } from '../sdk/ota/repository';
import { checkSnapshotShape, checkTargetsShape, checkTimestampShape } from '../sdk/ota/roles';
import { CLI } from './helpers/cli';
import { call, enroll, makeRepoKeys, publishImage, releaseImage, tempDir, type RepoKeys } from './server-fixture';
import { serverListening } from './helpers/server-child';

let work: string;
let k: RepoKeys;
let admin: Identity;
let data: string;
const children: ChildProcess[] = [];

/** Start `signet server` as a child and wait for the URL it prints. */
function startChild(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, 'server', '--data', data, '--keys', k.serverKeys, '--port', '0', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SIGNET_PASSPHRASE: '' },
  });
  children.push(child);
  return serverListening(child);
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => child.once('exit', (code, sig) => resolve(sig ?? code)));
}

async function waitFor(what: string, f: () => boolean, tries = 600): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (f()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('gave up waiting for ' + what);
}

function incoming(): { name: string; size: number }[] {
  const dir = join(data, 'blobs', '.incoming');
  return existsSync(dir) ? readdirSync(dir).map((name) => ({ name, size: statSync(join(dir, name)).size })) : [];
}

beforeAll(async () => {
  work = tempDir('signet-kill-');
  k = await makeRepoKeys(work);
  admin = await enroll(k, work, 'ops', true);
  data = join(work, 'data');
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

describe('kill -9 during an upload', () => {
  it('never exposes a partial target, keeps the database consistent, and the upload can be redone', async () => {
    let { child, url } = await startChild();
    const v130 = await releaseImage(k, { version: '1.3.0', securityCounter: 4 });
    await publishImage(k, url, admin, v130, work);

    // A large release, uploaded by hand so that we control how far it gets.
    const big = await releaseImage(k, { version: '1.4.0', securityCounter: 5, appBytes: 64 * 1024 * 1024 });
    const sha = createHash('sha256').update(big).digest('hex');
    const half = big.length >> 1;
    const req = request(`${url}/api/v1/blobs/${sha}`, {
      method: 'PUT', ca: admin.caPem, cert: admin.certPem, key: admin.keyPem, agent: false,
      headers: { 'content-type': 'application/octet-stream', 'content-length': big.length },
    });
    const reqDone = new Promise<string>((resolve) => {
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.on('response', (res) => resolve('answered ' + res.statusCode));
    });
    for (let off = 0; off < half; off += 1 << 20) req.write(big.subarray(off, Math.min(half, off + (1 << 20))));
    // The server is writing the first half to its temp file; the second half never comes.
    const final = join(data, 'blobs', sha.slice(0, 2), sha);
    await waitFor('the upload to reach the server\'s disk', () =>
      incoming().some((f) => f.size >= 8 << 20) || (existsSync(final) && statSync(final).size >= 8 << 20));

    child.kill('SIGKILL');
    expect(await exited(child)).toBe('SIGKILL');
    expect(await reqDone).not.toMatch(/^answered/);
    expect(existsSync(final)).toBe(false); // never a partial file under the blob's name
    const left = incoming();
    expect(left.length).toBe(1); // the kill really was mid-upload
    expect(left[0].size).toBeLessThan(big.length);

    ({ child, url } = await startChild());
    // Recovery removed the leftovers; nothing names or serves the partial target.
    expect(incoming()).toEqual([]);
    const dev = await enroll(k, work, 'tv-0001');
    const path = consistentTargetPath('qemu-virt-arm64/test-svc-1.4.0.simg', sha);
    expect((await call(`${url}/tuf/targets/${path}`, { ca: k.ca.certPem, id: dev })).status).toBe(404);

    // The database file is sound and its metadata chain complete: timestamp → snapshot → targets.
    const db = new Database(join(data, 'signet.db'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const latest = (role: string) => db.prepare('SELECT version, bytes FROM metadata WHERE role = ? ORDER BY version DESC LIMIT 1').get(role) as { version: number; bytes: Buffer };
      const ts = checkTimestampShape(parseEnvelope(new Uint8Array(latest('timestamp').bytes)).signed);
      expect(ts.meta['snapshot.json'].version).toBe(latest('snapshot').version);
      const snap = checkSnapshotShape(parseEnvelope(new Uint8Array(latest('snapshot').bytes)).signed);
      expect(snap.meta['targets.json'].version).toBe(latest('targets').version);
      const targets = checkTargetsShape(parseEnvelope(new Uint8Array(latest('targets').bytes)).signed);
      expect(Object.keys(targets.targets)).toEqual(['qemu-virt-arm64/test-svc-1.3.0.simg']);
      expect(db.prepare('SELECT COUNT(*) AS n FROM targets WHERE sha256 = ?').get(sha)).toEqual({ n: 0 });
    } finally {
      db.close();
    }

    // The same publish, redone from the start, succeeds and serves every byte.
    const r = await publishImage(k, url, admin, big, work);
    expect(r).toMatchObject({ alreadyPublished: false, targetsVersion: 2, sha256: sha });
    const got = await call(`${url}/tuf/targets/${path}`, { ca: k.ca.certPem, id: dev });
    expect(got.status).toBe(200);
    expect(createHash('sha256').update(got.body).digest('hex')).toBe(sha);

    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });
});
