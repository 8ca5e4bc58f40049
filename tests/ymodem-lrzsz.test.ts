/**
 * Interop: our YMODEM sender -> lrzsz `rb` over a real pty pair (socat), with node-serialport
 * on our end exactly as for a USB serial adapter. Needs Debian packages lrzsz and socat.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPtyPair, spawnOnTty, type PtyPair } from './helpers/pty-pair';
import { openTransport, type Transport } from '../sdk/flash/transport';
import { sendYmodem, YmodemError, type YmodemFile, type YmodemSendOptions } from '../sdk/flash/ymodem';

let root: string;
let pair: PtyPair;
let run = 0;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'signet-lrzsz-'));
  pair = await openPtyPair(root);
});

afterAll(async () => {
  await pair?.close();
  rmSync(root, { recursive: true, force: true });
});

/** Runs rb in a fresh directory and our sender against it; returns what rb wrote. */
async function sendToRb(files: YmodemFile[], options: YmodemSendOptions = {}, during?: (rb: ReturnType<typeof spawnOnTty>) => YmodemSendOptions) {
  const dir = join(root, `rx-${run++}`);
  mkdirSync(dir);
  const rb = spawnOnTty('rb', [], pair.device, dir);
  const link: Transport = await openTransport(pair.host, { baud: 115200 });
  try {
    const outcome = await sendYmodem(link, files, { ...options, ...during?.(rb) }).then(
      (result) => ({ result, error: undefined }),
      (error: unknown) => ({ result: undefined, error }),
    );
    const exit = await Promise.race([
      rb.exited,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000)),
    ]);
    if (!exit) await rb.kill();
    return { ...outcome, exit: exit ?? (await rb.exited), dir };
  } finally {
    await link.close();
  }
}

describe('our sender -> lrzsz rb over a pty', () => {
  test.each([
    ['empty', 0],
    ['one byte', 1],
    ['exactly one 1 K block', 1024],
    ['1 K + 1 byte', 1025],
    ['~3 MB random', 3 * 1024 * 1024 + 333],
  ])('%s (%i bytes) arrives byte-identical, padding stripped', async (_label, size) => {
    const data = randomBytes(size);
    const { result, error, exit, dir } = await sendToRb([{ name: `image-${size}.bin`, data }]);
    expect(error).toBeUndefined();
    expect(exit.code, exit.stderr).toBe(0);
    expect(readdirSync(dir)).toEqual([`image-${size}.bin`]);
    const got = readFileSync(join(dir, `image-${size}.bin`));
    expect(got.length).toBe(size);
    expect(Buffer.compare(got, data)).toBe(0);
    expect(result!.payloadBytes).toBe(size);
  });

  test('a batch of two files, with the modification time carried in octal', async () => {
    const a = randomBytes(5000);
    const b = randomBytes(70_000);
    const mtime = new Date('2024-03-01T12:34:56Z');
    const { error, exit, dir } = await sendToRb([
      { name: 'boot.itb', data: a, mtime },
      { name: 'app.simg', data: b },
    ]);
    expect(error).toBeUndefined();
    expect(exit.code, exit.stderr).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['app.simg', 'boot.itb']);
    expect(Buffer.compare(readFileSync(join(dir, 'boot.itb')), a)).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'app.simg')), b)).toBe(0);
    expect(statSync(join(dir, 'boot.itb')).mtime.getTime()).toBe(mtime.getTime());
  });

  test('aborting our side makes rb give up by itself (it honours our CAN sequence)', async () => {
    const abort = new AbortController();
    const { error, exit } = await sendToRb([{ name: 'big.bin', data: randomBytes(2 * 1024 * 1024) }], {
      signal: abort.signal,
      onProgress: (sent) => {
        if (sent >= 64 * 1024) abort.abort();
      },
    });
    expect(error).toBeInstanceOf(YmodemError);
    expect((error as YmodemError).code).toBe('E_YMODEM_ABORTED');
    expect(exit.signal).toBeNull(); // not killed by us after the 15 s grace
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toMatch(/cancel/i);
  });

  test('rb vanishing mid-transfer is a typed failure, not a hang or a success', async () => {
    // rb's own CANs on SIGTERM are usually lost: it flushes its tty (TCIOFLUSH) on exit.
    const { error, exit } = await sendToRb([{ name: 'big.bin', data: randomBytes(2 * 1024 * 1024) }], { responseTimeoutMs: 1_000, maxRetries: 2 }, (rb) => ({
      onProgress: (sent) => {
        if (sent >= 64 * 1024 && rb.child.exitCode === null && !rb.child.killed) rb.child.kill('SIGTERM');
      },
    }));
    expect(error).toBeInstanceOf(YmodemError);
    expect(['E_YMODEM_CANCELLED', 'E_YMODEM_TIMEOUT']).toContain((error as YmodemError).code);
    expect((error as YmodemError).details.bytesAcknowledged).toBeLessThan(2 * 1024 * 1024);
    expect(exit.code).not.toBe(0);
  });
});
