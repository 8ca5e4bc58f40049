import { afterEach, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPtyPair, type PtyPair } from './helpers/pty-pair';
import { openTransport, TransportError, type Transport } from '../sdk/flash/transport';
import { MockTransport } from './helpers/transport-mock';

async function expectTransportError(p: Promise<unknown>, code: string): Promise<TransportError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransportError);
  expect((err as TransportError).code).toBe(code);
  expect((err as TransportError).name).toBe('TransportError');
  expect((err as TransportError).message).not.toContain('\n');
  return err as TransportError;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('receive buffer (MockTransport)', () => {
  test('bytes that arrive before anyone reads are kept, in order', async () => {
    const link = await MockTransport.open();
    link.emitData([1, 2]);
    link.emitData([3]);
    expect(link.bufferedBytes).toBe(3);
    expect(await link.readByte(10)).toBe(1);
    expect([...(await link.read(10, 10))]).toEqual([2, 3]);
    expect(link.bufferedBytes).toBe(0);
  });

  test('read waits for data and honours maxBytes', async () => {
    const link = await MockTransport.open();
    setTimeout(() => link.emitData([9, 8, 7]), 5);
    expect([...(await link.read(2, 5_000))]).toEqual([9, 8]);
    expect([...(await link.read(2, 5_000))]).toEqual([7]);
  });

  test('timeouts return empty / undefined rather than throwing', async () => {
    const link = await MockTransport.open();
    expect((await link.read(10, 20)).length).toBe(0);
    expect(await link.readByte(20)).toBeUndefined();
  });

  test('readUntil finds a prompt split across every chunk boundary and leaves the rest buffered', async () => {
    const text = 'U-Boot 2023.01\r\nHit any key to stop autoboot:  3 \r\n=> ';
    for (let cut = 1; cut < text.length; cut++) {
      for (let cut2 = cut; cut2 < text.length; cut2 += 7) {
        const link = await MockTransport.open();
        const pending = link.readUntil('autoboot:', 5_000);
        link.emitData(text.slice(0, cut));
        link.emitData(text.slice(cut, cut2));
        link.emitData(text.slice(cut2));
        const got = dec(await pending);
        expect(got).toBe('U-Boot 2023.01\r\nHit any key to stop autoboot:');
        expect(dec(await link.read(100, 10))).toBe('  3 \r\n=> ');
      }
    }
  });

  test('readUntil timeout reports what was seen and keeps it buffered', async () => {
    const link = await MockTransport.open();
    link.emitData('=> ');
    const err = await expectTransportError(link.readUntil('## Ready', 30), 'E_TRANSPORT_TIMEOUT');
    expect(dec(err.received)).toBe('=> ');
    expect(link.bufferedBytes).toBe(3);
  });

  test('one reader at a time', async () => {
    const link = await MockTransport.open();
    const first = link.read(1, 1_000);
    await expectTransportError(link.read(1, 1_000), 'E_TRANSPORT_BUSY');
    link.emitData([1]);
    expect([...(await first)]).toEqual([1]);
  });

  test('a hang-up wakes the reader; buffered bytes are still delivered first', async () => {
    const link = await MockTransport.open();
    const pending = link.read(10, 5_000);
    link.hangUp();
    const err = await expectTransportError(pending, 'E_TRANSPORT_CLOSED');
    expect((err.cause as Error).message).toContain('hung up');
    expect(link.isOpen).toBe(false);

    const again = await MockTransport.open();
    again.emitData([5]);
    again.hangUp();
    expect(await again.readByte(10)).toBe(5);
    await expectTransportError(again.readByte(10), 'E_TRANSPORT_CLOSED');
  });

  test('closing locally rejects a pending read and later writes', async () => {
    const link = await MockTransport.open();
    const pending = link.readByte(5_000);
    await link.close();
    await expectTransportError(pending, 'E_TRANSPORT_CLOSED');
    await expectTransportError(link.write(enc('x')), 'E_TRANSPORT_CLOSED');
    await link.close(); // idempotent
  });

  test('an AbortSignal ends a pending read with E_TRANSPORT_ABORTED', async () => {
    const link = await MockTransport.open();
    const abort = new AbortController();
    const pending = link.read(1, 5_000, abort.signal);
    abort.abort(new Error('user pressed ^C'));
    const err = await expectTransportError(pending, 'E_TRANSPORT_ABORTED');
    expect((err.cause as Error).message).toBe('user pressed ^C');
  });

  test('onData observes without consuming; discardInput drops the buffer', async () => {
    const link = await MockTransport.open();
    const seen: number[] = [];
    const off = link.onData((c) => seen.push(...c));
    link.emitData([1, 2, 3]);
    off();
    link.emitData([4]);
    expect(seen).toEqual([1, 2, 3]);
    expect(link.discardInput()).toBe(4);
    expect(link.bufferedBytes).toBe(0);
  });

  test('a large stream through the buffer stays intact', async () => {
    const link = await MockTransport.open();
    const data = new Uint8Array(200_000).map((_, i) => (i * 31) & 0xff);
    const got: number[] = [];
    for (let at = 0; at < data.length; at += 3000) {
      link.emitData(data.subarray(at, at + 3000));
      if (at % 9000 === 0) got.push(...(await link.read(5000, 10)));
    }
    while (link.bufferedBytes > 0) got.push(...(await link.read(65536, 10)));
    expect(Buffer.compare(Buffer.from(got), data)).toBe(0);
  });

  test('mock controls: writes log, lastWrite, injected write failure', async () => {
    const link = await MockTransport.open();
    expect(link.lastWrite).toBeUndefined();
    await link.write(enc('ab'));
    await link.write(enc('c'));
    expect(dec(link.lastWrite!)).toBe('c');
    expect(dec(link.written)).toBe('abc');
    link.failWrite();
    await expectTransportError(link.write(enc('d')), 'E_TRANSPORT_WRITE');
    await link.write(enc('e'));
    expect(dec(link.written)).toBe('abce');
  });
});

describe('openTransport addresses', () => {
  test('unsupported or empty addresses are refused', async () => {
    await expectTransportError(openTransport('tcp:localhost:4000'), 'E_TRANSPORT_ADDRESS');
    await expectTransportError(openTransport('COM3'), 'E_TRANSPORT_ADDRESS');
    await expectTransportError(openTransport('unix:'), 'E_TRANSPORT_ADDRESS');
  });

  test('a missing device or socket is E_TRANSPORT_OPEN', async () => {
    await expectTransportError(openTransport('/dev/does-not-exist-signet'), 'E_TRANSPORT_OPEN');
    await expectTransportError(openTransport('unix:/tmp/does-not-exist-signet.sock'), 'E_TRANSPORT_OPEN');
  });
});

describe('real adapters', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  test('unix socket (QEMU -chardev socket style): both directions, then peer hang-up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-unix-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'serial.sock');
    let peer: Socket | undefined;
    const connected = new Promise<Socket>((resolve) => {
      const server: Server = createServer((s) => {
        peer = s;
        resolve(s);
      });
      server.listen(path);
      cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    });
    const link = await openTransport(`unix:${path}`);
    cleanup.push(() => link.close());
    expect(link.address).toBe(`unix:${path}`);
    const sock = await connected;
    const fromUs: Buffer[] = [];
    sock.on('data', (d) => fromUs.push(d));

    const all = new Uint8Array(256).map((_, i) => i);
    await link.write(all);
    await link.drain();
    sock.write(Buffer.from('=> '));
    expect(dec(await link.readUntil('=> ', 5_000))).toBe('=> ');
    await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.compare(Buffer.concat(fromUs), all)).toBe(0);

    const pending = link.read(1, 5_000);
    peer!.destroy();
    await expectTransportError(pending, 'E_TRANSPORT_CLOSED');
    expect(link.isOpen).toBe(false);
  });

  test('serialport opens both ends of a pty pair and passes all 256 byte values', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-pty-'));
    const pair: PtyPair = await openPtyPair(dir);
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanup.push(() => pair.close());
    const host: Transport = await openTransport(pair.host, { baud: 115200 });
    cleanup.push(() => host.close());
    const device: Transport = await openTransport(pair.device, { baud: 115200 });
    cleanup.push(() => device.close());

    // Control characters a cooked tty would eat (^C, ^S/^Q, ^D, CR/LF) must pass raw.
    const all = new Uint8Array(256 * 8).map((_, i) => (i * 7) & 0xff);
    await host.write(all);
    await host.drain();
    const got: number[] = [];
    while (got.length < all.length) {
      const chunk = await device.read(65536, 5_000);
      if (chunk.length === 0) break;
      got.push(...chunk);
    }
    expect(Buffer.compare(Buffer.from(got), all)).toBe(0);

    await device.write(enc('\x06C'));
    expect([...(await host.read(2, 5_000))].length).toBeGreaterThan(0);
  });
});
