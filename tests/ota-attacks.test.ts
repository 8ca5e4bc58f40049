// The attacks TUF names (spec §1.5.2) plus Signet's own (wrong board, security counter), each
// run against a simulated device (real boot stage on a flash file, real agent over loopback
// HTTP) and a real signed repository whose server misbehaves on request. Every attack must be
// refused with its typed code AND leave the inactive slot byte-for-byte as it was, with no
// trial armed.
import { afterEach, describe, expect, it } from 'vitest';
import { generateEd25519 } from '../sdk/keys/keyfile';
import { appSource } from './helpers/boot';
import { makeImage } from './helpers/fixtures';
import { DAY, envelopeBytes, metaFor, nowSeconds, sha256Hex } from './helpers/tuf-repo';
import { BOARD, otaWorld, type OtaWorld, type WorldOptions } from './helpers/tuf-repo-world';

const TS = '/tuf/metadata/timestamp.json';
let w: OtaWorld;
afterEach(async () => w?.close());

async function world(o?: WorldOptions): Promise<OtaWorld> {
  w = await otaWorld(o);
  return w;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? 'NO_CODE:' + String(e);
  }
  return 'RESOLVED';
}

/** Run one update cycle; it must fail with `code` and leave slot B and the boot state untouched. */
async function refused(code: string, o: { beforeDownload?: boolean } = {}): Promise<void> {
  const slotB = sha256Hex(w.device.slotBytes('b'));
  const state = { ...w.device.state() };
  const targetGets = w.server.targetRequests().length;
  expect(await codeOf(w.device.checkForUpdate())).toBe(code);
  expect(sha256Hex(w.device.slotBytes('b')), 'inactive slot changed').toBe(slotB);
  expect(w.device.state()).toEqual(state);
  expect(w.device.agent.pending()).toBeNull();
  if (o.beforeDownload) expect(w.server.targetRequests().length, 'a target was downloaded').toBe(targetGets);
  // The next boot is the same image, no trial.
  expect(await w.device.boot()).toMatchObject({ slot: 'a', trial: false, version: '1.2.0' });
}

/** The device refreshes its trusted metadata now (as in an earlier, uneventful update cycle). */
function refreshNow(): Promise<void> {
  return new Promise((resolve, reject) => w.device.agent.tuf.refresh((err) => (err ? reject(err) : resolve())));
}

describe('arbitrary software', () => {
  it('a mirror serving other bytes for the target: E_TARGET_HASH', async () => {
    await world();
    const other = generateEd25519();
    const evil = await makeImage({ version: '1.3.0', securityCounter: 4, app: appSource('svc', true), signers: [other.signer] });
    expect(evil.length).toBe(w.release.length); // same length: only the hash can tell
    w.server.behave('/tuf/targets/' + w.repo.targetPath(w.releaseName), { body: evil });
    await refused('E_TARGET_HASH');
    expect(w.server.reports.at(-1)).toMatchObject({ status: 'failed', code: 'E_TARGET_HASH' });
  });

  it('targets metadata signed by a key the root does not trust: E_META_THRESHOLD', async () => {
    await world();
    const other = generateEd25519();
    const evil = await makeImage({ version: '1.3.1', securityCounter: 9, app: appSource('evil', true), signers: [other.signer] });
    const name = w.repo.addTarget(evil, { board: BOARD, name: 'svc', version: '1.3.1', securityCounter: 9 });
    await w.repo.publish({ targetsSigners: [other.signer] }); // the server's online keys sign along
    w.server.offer = w.repo.offerFor(name);
    await refused('E_META_THRESHOLD', { beforeDownload: true });
  });

  it('an image signed by another key, or unsigned, listed in genuine metadata: E_UNKNOWN_KEY / E_THRESHOLD', async () => {
    await world();
    const other = generateEd25519();
    const wrongKey = await makeImage({ version: '1.3.1', securityCounter: 4, app: appSource('svc', true), signers: [other.signer] });
    w.server.offer = w.repo.offerFor(await w.publishImage(wrongKey, { version: '1.3.1' }));
    await refused('E_UNKNOWN_KEY');
    const unsigned = await makeImage({ version: '1.3.2', securityCounter: 4, app: appSource('svc', true), signers: [] });
    w.server.offer = w.repo.offerFor(await w.publishImage(unsigned, { version: '1.3.2' }));
    await refused('E_THRESHOLD');
  });

  it('an offer naming a target that signed metadata does not list: E_TARGET_UNKNOWN', async () => {
    await world();
    w.server.offer = { ...w.repo.offerFor(w.releaseName), target: BOARD + '/svc-6.6.6.simg' };
    await refused('E_TARGET_UNKNOWN', { beforeDownload: true });
  });
});

describe('rollback', () => {
  it('older timestamp than the device has seen: E_META_ROLLBACK', async () => {
    await world();
    await refreshNow();
    const old = w.repo.file('metadata/timestamp.json');
    await w.repo.publishTimestamp();
    await refreshNow();
    w.server.behave(TS, { body: old });
    await refused('E_META_ROLLBACK', { beforeDownload: true });
  });

  it('a new timestamp (online key compromised) naming an older snapshot: E_META_ROLLBACK', async () => {
    await world();
    const snap1 = w.repo.file('metadata/1.snapshot.json');
    await w.repo.publish();
    await refreshNow();
    const evil = await envelopeBytes(w.repo.timestampSigned(50, metaFor(snap1, 1)), w.repo.signers('timestamp'));
    w.server.behave(TS, { body: evil });
    await refused('E_META_ROLLBACK', { beforeDownload: true });
  });

  it('a signed release with a lower security counter is refused before download: E_TARGET_ROLLBACK', async () => {
    await world();
    const old = await w.image({ version: '1.1.0', securityCounter: 2 });
    const name = await w.publishImage(old, { version: '1.1.0', securityCounter: 2 });
    // The offer even lies about the counter; the signed entry decides.
    w.server.offer = { ...w.repo.offerFor(name), securityCounter: 7 };
    await refused('E_TARGET_ROLLBACK', { beforeDownload: true });
  });

  it('a targets entry claiming a higher counter than the image has: the image verifier refuses (E_ROLLBACK)', async () => {
    await world();
    const old = await w.image({ version: '1.1.0', securityCounter: 2 });
    w.server.offer = w.repo.offerFor(await w.publishImage(old, { version: '1.1.0', securityCounter: 5 }));
    await refused('E_ROLLBACK');
  });
});

describe('fast-forward attack recovery after root rotation', () => {
  it('a fast-forwarded timestamp blocks updates until the timestamp key is rotated, then the device recovers', async () => {
    await world();
    const snap = w.repo.file('metadata/1.snapshot.json');
    // An attacker holding the (online) timestamp key pushes version 1000; the device cannot tell.
    const ff = await envelopeBytes(w.repo.timestampSigned(1000, metaFor(snap, 1)), w.repo.signers('timestamp'));
    w.server.behave(TS, { body: ff, times: 1 });
    await refreshNow();
    // The genuine timestamp now looks like a rollback.
    await refused('E_META_ROLLBACK', { beforeDownload: true });
    // The vendor rotates the timestamp key (root v2, signed offline) and re-signs.
    const compromised = w.repo.keys.timestamp[0];
    await w.repo.rotateRoot({ timestamp: [generateEd25519()] });
    await w.repo.publishTimestamp();
    // The attacker's key is now revoked: anything it signs is refused.
    const ff2 = await envelopeBytes(w.repo.timestampSigned(1001, metaFor(snap, 1)), [compromised.signer]);
    w.server.behave(TS, { body: ff2, times: 1 });
    await refused('E_META_THRESHOLD', { beforeDownload: true });
    // 5.3.11: root v2 rotated the timestamp key, so the fast-forwarded timestamp was deleted.
    const r = await w.device.checkForUpdate();
    expect(r.outcome).toBe('staged');
    expect(await w.device.boot()).toMatchObject({ slot: 'b', trial: true, version: '1.3.0', confirmed: true });
    expect(w.device.agent.trustedRoot().version).toBe(2);
  });
});

describe('indefinite freeze', () => {
  it('an expired timestamp (validly signed, replayed): E_META_EXPIRED', async () => {
    await world();
    await w.repo.publish({ expires: { timestamp: nowSeconds() - 60 } });
    await refused('E_META_EXPIRED', { beforeDownload: true });
  });

  it('expired snapshot or targets metadata: E_META_EXPIRED', async () => {
    await world();
    await w.repo.publish({ expires: { snapshot: nowSeconds() - 60 } });
    await refused('E_META_EXPIRED', { beforeDownload: true });
    await w.repo.publish({ expires: { targets: nowSeconds() - 60 } });
    await refused('E_META_EXPIRED', { beforeDownload: true });
  });

  it('a device whose clock has moved past the timestamp expiry refuses the frozen repository', async () => {
    await world({ device: { now: () => nowSeconds() + 2 * DAY } });
    await refused('E_META_EXPIRED', { beforeDownload: true });
  });
});

describe('endless data', () => {
  it('a target that does not end is cut at its signed length: E_FETCH_TOO_LARGE', async () => {
    await world();
    w.server.behave('/tuf/targets/' + w.repo.targetPath(w.releaseName), { endless: true });
    await refused('E_FETCH_TOO_LARGE');
    // Transient from the device's point of view: not reported as a failed release.
    expect(w.server.reports.filter((r) => r.status === 'failed')).toEqual([]);
  });

  it('metadata beyond the caps: endless timestamp, an oversized root', async () => {
    await world({ device: { limits: { timestamp: 4096, root: 8192 } } });
    w.server.behave(TS, { endless: true });
    await refused('E_FETCH_TOO_LARGE', { beforeDownload: true });
    w.server.normal();
    w.server.behave('/tuf/metadata/2.root.json', { body: new Uint8Array(100_000).fill(0x20), noLength: true });
    await refused('E_FETCH_TOO_LARGE', { beforeDownload: true });
  });

  it('a target larger than the slot is refused before download: E_TARGET_TOO_LARGE', async () => {
    await world();
    const big = await w.image({ version: '1.4.0', securityCounter: 5, assets: [{ name: 'blob', type: 'asset', data: new Uint8Array(300 * 1024) }] });
    w.server.offer = w.repo.offerFor(await w.publishImage(big, { version: '1.4.0', securityCounter: 5 }));
    await refused('E_TARGET_TOO_LARGE', { beforeDownload: true });
  });
});

describe('slow retrieval', () => {
  it('a target trickled then stalled: E_FETCH_STALL', async () => {
    await world({ device: { fetcherOptions: { stallTimeoutMs: 60 } } });
    w.server.behave('/tuf/targets/' + w.repo.targetPath(w.releaseName), { trickle: { bytes: 64, intervalMs: 1000 } });
    await refused('E_FETCH_STALL');
  });

  it('metadata trickled steadily below the rate floor: E_FETCH_SLOW', async () => {
    await world({ device: { fetcherOptions: { minBytesPerSecond: 100_000, rateGraceMs: 30 } } });
    w.server.behave(TS, { trickle: { bytes: 4, intervalMs: 5 } });
    await refused('E_FETCH_SLOW', { beforeDownload: true });
  });
});

describe('mix-and-match', () => {
  it('targets metadata that is not the one snapshot lists (hash): E_META_MISMATCH', async () => {
    await world();
    const t1 = w.repo.file('metadata/1.targets.json');
    w.server.offer = w.repo.offerFor(await w.publishImage(await w.image({ version: '1.4.0', securityCounter: 5 }), { version: '1.4.0', securityCounter: 5 }));
    w.server.behave('/tuf/metadata/2.targets.json', { body: t1 });
    await refused('E_META_MISMATCH', { beforeDownload: true });
  });

  it('without hashes in meta, the version check still catches it (5.6.4, 5.5.4): E_META_MISMATCH', async () => {
    await world();
    const t1 = w.repo.file('metadata/1.targets.json');
    const s1 = w.repo.file('metadata/1.snapshot.json');
    w.repo.addTarget(await w.image({ version: '1.4.0', securityCounter: 5 }), { board: BOARD, name: 'svc', version: '1.4.0', securityCounter: 5 });
    await w.repo.publish({ hashes: false });
    // Snapshot first: once snapshot v2 is accepted the device keeps it and never fetches it again.
    w.server.behave('/tuf/metadata/2.snapshot.json', { body: s1 });
    await refused('E_META_MISMATCH', { beforeDownload: true });
    w.server.normal();
    w.server.behave('/tuf/metadata/2.targets.json', { body: t1 });
    await refused('E_META_MISMATCH', { beforeDownload: true });
  });
});

describe('wrong software', () => {
  it('a signed release for another board is refused before download: E_TARGET_BOARD', async () => {
    await world();
    const xen = await w.image({ version: '1.3.0', securityCounter: 4, board: 'xen-arm32' });
    const name = await w.publishImage(xen, { board: 'xen-arm32' });
    w.server.offer = w.repo.offerFor(name);
    await refused('E_TARGET_BOARD', { beforeDownload: true });
  });

  it('an entry for this board whose image is built for another: the image verifier refuses (E_BOARD)', async () => {
    await world();
    const xen = await w.image({ version: '1.3.1', securityCounter: 4, board: 'xen-arm32' });
    w.server.offer = w.repo.offerFor(await w.publishImage(xen, { version: '1.3.1' }));
    await refused('E_BOARD');
  });
});

describe('threshold not met (targets role needs 2 of 2)', () => {
  it('targets metadata with one of the two signatures: E_META_THRESHOLD', async () => {
    await world({ repo: { targetsThreshold: 2, targetsCount: 2 } });
    const img = await w.image({ version: '1.4.0', securityCounter: 5 });
    const name = w.repo.addTarget(img, { board: BOARD, name: 'svc', version: '1.4.0', securityCounter: 5 });
    await w.repo.publish({ targetsSigners: [w.repo.signers('targets')[0]] });
    w.server.offer = w.repo.offerFor(name);
    await refused('E_META_THRESHOLD', { beforeDownload: true });
  });

  it('an image with one of the two signatures, in fully signed metadata: E_THRESHOLD', async () => {
    await world({ repo: { targetsThreshold: 2, targetsCount: 2 } });
    const img = await w.image({ version: '1.4.0', securityCounter: 5, signers: [w.repo.signers('targets')[1]] });
    w.server.offer = w.repo.offerFor(await w.publishImage(img, { version: '1.4.0', securityCounter: 5 }));
    await refused('E_THRESHOLD');
  });

  it('the same release with both signatures installs (the attacks above are the only difference)', async () => {
    await world({ repo: { targetsThreshold: 2, targetsCount: 2 } });
    expect((await w.device.checkForUpdate()).outcome).toBe('staged');
  });
});
