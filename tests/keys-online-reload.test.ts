/**
 * Online keys replaced while the repository runs (what `signet server` does on SIGHUP; the real
 * process is exercised in root-rotation.test.ts): a new set the root in force does not name is
 * refused and the keys in force stay; a set holding the next timestamp key is taken, the root
 * naming it is accepted and the next timestamp is signed by it. A second repository on the same
 * storage (a replica) that follows that root without holding the new key refuses to sign rather
 * than store a timestamp no client accepts — never unsigned metadata.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newKey } from '../sdk/keys/keynew';
import { loadSigner } from '../sdk/keys/keyfile';
import { parseEnvelope, type RootSigned } from '../sdk/ota/metadata';
import { signRootFile, writeNextRoot } from '../sdk/ota/repository-ceremony';
import { createUpdateServer } from '../update-server/app';
import { SqliteStorage } from '../update-server/storage-sqlite';
import { enroll, makeRepoKeys, publishImage, releaseImage, startTestServer, tempDir, type TestServer } from './server-fixture';

const work = tempDir('signet-online-reload-');
const closers: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

describe('online keys replaced in a running repository', () => {
  it('a bad set is refused and the old keys stay; the next timestamp key is taken and signs after the root names it; a replica without it refuses to sign', async () => {
    let now = Math.floor(Date.now() / 1000);
    const clock = () => now;
    const k = await makeRepoKeys(work);
    const a: TestServer = await startTestServer(k, join(work, 'data'), { clock });
    closers.push(() => a.close());
    const admin = await enroll(k, work, 'admin', true);
    await publishImage(k, a.url, admin, await releaseImage(k, { version: '1.0.0', securityCounter: 1 }), work);

    const snap = await loadSigner(join(k.keys, 'snapshot.key'));
    const ts1 = await loadSigner(join(k.keys, 'timestamp.key'));
    // A second repository on the same database: a replica that keeps the old keys only.
    const storageB = await SqliteStorage.open(join(work, 'data'));
    closers.push(() => storageB.close());
    const b = await createUpdateServer({
      storage: storageB, rootBytes: new Uint8Array(readFileSync(join(k.keys, 'root.json'))), snapshotSigners: [snap], timestampSigners: [ts1], clock,
    });

    newKey('timestamp', join(k.keys, 'timestamp-2.key'));
    const ts2 = await loadSigner(join(k.keys, 'timestamp-2.key'));
    const root1 = JSON.parse(readFileSync(join(k.keys, 'root.json'), 'utf8')).signed as RootSigned;
    writeNextRoot(join(k.keys, 'root.json'), {
      addKeys: [{ role: 'timestamp', key: JSON.parse(readFileSync(join(k.keys, 'timestamp-2.pub'), 'utf8')) }],
      removeKeys: [{ role: 'timestamp', keyid: root1.roles.timestamp.keyids[0] }],
    }, join(work, 'root.v2.json'), now);
    await signRootFile(join(work, 'root.v2.json'), await loadSigner(join(k.keys, 'root-1.key')), join(k.keys, 'root.json'));
    const v2 = new Uint8Array(readFileSync(join(work, 'root.v2.json')));

    // Root 1 is in force: a set without its timestamp key is refused, and nothing changes.
    await expect(a.app.repository.replaceOnlineSigners([snap], [ts2])).rejects.toMatchObject({ code: 'E_REPO_ONLINE_KEY' });
    await expect(a.app.repository.updateRoot(v2)).rejects.toMatchObject({ code: 'E_REPO_ONLINE_KEY' });
    // Both timestamp keys: taken; root 2 is accepted and the timestamp re-signed with the new key.
    await a.app.repository.replaceOnlineSigners([snap], [ts1, ts2]);
    await a.app.repository.updateRoot(v2);
    const signedBy = async () => {
      const rec = (await a.storage.latestMetadata('timestamp'))!;
      return { version: rec.version, keyids: parseEnvelope(rec.bytes).signatures.map((s) => s.keyid) };
    };
    const afterRotation = await signedBy();
    expect(afterRotation.keyids).toEqual([ts2.keyid]);

    // Two days on, the timestamp is due again. The replica follows root 2 but holds only ts1:
    // it refuses to sign, and stores nothing.
    now += 2 * 86400;
    await expect(b.repository.refresh()).rejects.toMatchObject({ code: 'E_REPO_ONLINE_KEY' });
    expect(await signedBy()).toEqual(afterRotation);
    // The repository that holds the key signs the next one with it.
    expect(await a.app.repository.refresh()).toBe(true);
    const next = await signedBy();
    expect(next.version).toBe(afterRotation.version + 1);
    expect(next.keyids).toEqual([ts2.keyid]);
  });
});
