/**
 * Our sender -> lrzsz rb through a noisy line (seeded corruption and loss on top of a real
 * pty pair). The sender must either recover by retransmission or fail with a typed code,
 * and must never report success when rb's file differs. Needs lrzsz and socat.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NoisyLineProxy, seededRandom, type NoisyLineOptions } from './helpers/noisy-proxy';
import { openPtyPair, spawnOnTty } from './helpers/pty-pair';
import { openTransport } from '../sdk/flash/transport';
import { MockTransport } from './helpers/transport-mock';
import { sendYmodem, YmodemError, type YmodemSendOptions } from '../sdk/flash/ymodem';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'signet-noisy-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TYPED_FAILURES = ['E_YMODEM_RETRIES', 'E_YMODEM_TIMEOUT', 'E_YMODEM_CANCELLED'];

async function sendThroughNoise(name: string, size: number, noise: NoisyLineOptions, options: YmodemSendOptions) {
  const dir = join(root, name);
  mkdirSync(dir);
  const pair = await openPtyPair(dir);
  const out = join(dir, 'rx');
  mkdirSync(out);
  const rb = spawnOnTty('rb', [], pair.device, out);
  const line = new NoisyLineProxy(await openTransport(pair.host), noise);
  await line.open();
  const data = randomBytes(size);
  try {
    const outcome = await sendYmodem(line, { name: 'image.bin', data }, options).then(
      (result) => ({ result, error: undefined }),
      (error: unknown) => ({ result: undefined, error }),
    );
    const exit = await Promise.race([rb.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
    if (!exit) await rb.kill();
    const file = join(out, 'image.bin');
    const received = existsSync(file) ? readFileSync(file) : undefined;
    return { ...outcome, data, received, stats: line.stats, rbExit: exit ?? (await rb.exited) };
  } finally {
    await line.close();
    await pair.close();
  }
}

describe('noisy line', () => {
  test('the proxy is deterministic for a seed and damages about the requested share', async () => {
    const r1 = seededRandom(42);
    const r2 = seededRandom(42);
    expect([r1(), r1(), r1()]).toEqual([r2(), r2(), r2()]);

    const inner = await MockTransport.open();
    const line = new NoisyLineProxy(inner, { seed: 1, toPeer: { corruptRate: 0.01, dropRate: 0.01 } });
    await line.open();
    const data = new Uint8Array(100_000).fill(0x55);
    await line.write(data);
    const { toPeer } = line.stats;
    expect(toPeer.bytes).toBe(100_000);
    expect(toPeer.dropped).toBeGreaterThan(800);
    expect(toPeer.dropped).toBeLessThan(1200);
    expect(toPeer.corrupted).toBeGreaterThan(800);
    expect(toPeer.corrupted).toBeLessThan(1200);
    const sent = inner.written;
    expect(sent.length).toBe(100_000 - toPeer.dropped);
    expect(sent.filter((b) => b !== 0x55).length).toBe(toPeer.corrupted); // a corrupted byte always changes

    inner.emitData(new Uint8Array(1000).fill(7)); // fromPeer is clean by default
    expect((await line.read(2000, 1000)).length).toBe(1000);
    await line.close();
    expect(inner.isOpen).toBe(false);
  });

  test('light noise both ways, three seeds at once: rb gets the exact file after retransmissions', async () => {
    const runs = await Promise.all(
      [11, 22, 33].map((seed) =>
        sendThroughNoise(
          `light-${seed}`,
          128 * 1024,
          // About 5 damaged blocks going out and 1 in 100 answers lost or garbled coming back.
          { seed, toPeer: { corruptRate: 1 / 40_000, dropRate: 1 / 100_000 }, fromPeer: { corruptRate: 0.005, dropRate: 0.005 } },
          { responseTimeoutMs: 3_000 },
        ),
      ),
    );
    for (const { result, error, data, received, stats, rbExit } of runs) {
      expect(error).toBeUndefined();
      expect(rbExit.code, rbExit.stderr).toBe(0);
      expect(received && Buffer.compare(received, data)).toBe(0);
      expect(result!.payloadBytes).toBe(data.length);
      expect(stats.toPeer.corrupted + stats.toPeer.dropped + stats.fromPeer.corrupted + stats.fromPeer.dropped).toBeGreaterThan(0);
    }
    // The noise did hit the protocol somewhere, and retransmission repaired it.
    expect(runs.reduce((n, r) => n + (r.result?.retransmissions ?? 0), 0)).toBeGreaterThan(0);
  }, 180_000);

  test('1 byte in 100 damaged both ways: success only with an identical file, else a typed code', async () => {
    const runs = await Promise.all(
      [1, 2, 3].map((seed) =>
        sendThroughNoise(
          `heavy-${seed}`,
          4 * 1024,
          { seed, toPeer: { corruptRate: 0.005, dropRate: 0.005 }, fromPeer: { corruptRate: 0.005, dropRate: 0.005 } },
          { responseTimeoutMs: 2_000, maxRetries: 5 },
        ),
      ),
    );
    for (const { result, error, data, received, stats } of runs) {
      expect(stats.toPeer.corrupted + stats.toPeer.dropped).toBeGreaterThan(0);
      if (error === undefined) {
        expect(result!.payloadBytes).toBe(data.length);
        expect(received && Buffer.compare(received, data)).toBe(0);
      } else {
        expect(error).toBeInstanceOf(YmodemError);
        expect(TYPED_FAILURES).toContain((error as YmodemError).code);
      }
    }
    console.log(
      'heavy noise outcomes:',
      runs.map((r) => (r.error ? (r.error as YmodemError).code : `ok after ${r.result!.retransmissions} retransmissions`)).join(', '),
    );
  }, 180_000);
});
