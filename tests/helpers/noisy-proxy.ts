/**
 * Test utility: a noisy line between our protocol code and a real link. It wraps a
 * `Transport` and, per direction, corrupts (XOR with a random non-zero byte) or drops a
 * fraction of the bytes, driven by a seeded PRNG so a failing run can be replayed.
 *
 *   const line = new NoisyLineProxy(await openTransport(pair.host), {
 *     seed: 7, toPeer: { corruptRate: 0.01 }, fromPeer: { dropRate: 0.01 },
 *   });
 *
 * The proxy owns the wrapped link: it is the link's only reader and closes it on close().
 */
import { mulberry32 } from './prng';
import { BufferedTransport } from '../../sdk/flash/transport-buffered';
import { TransportError } from '../../sdk/flash/transport-errors';
import type { Transport } from '../../sdk/flash/transport-types';

export interface LineNoise {
  /** Probability that a byte is replaced by a different value. */
  corruptRate?: number;
  /** Probability that a byte is lost. Applied before corruption. */
  dropRate?: number;
}

export interface NoisyLineOptions {
  seed: number;
  /** Bytes we write, on their way to the peer. */
  toPeer?: LineNoise;
  /** Bytes the peer sends, on their way to us. */
  fromPeer?: LineNoise;
}

export interface NoiseStats {
  bytes: number;
  corrupted: number;
  dropped: number;
}

/** mulberry32: tiny, fast, good enough to decide which bytes to damage. */
export const seededRandom: (seed: number) => () => number = mulberry32;

class NoisyDirection {
  readonly stats: NoiseStats = { bytes: 0, corrupted: 0, dropped: 0 };
  private readonly corruptRate: number;
  private readonly dropRate: number;

  constructor(
    private readonly random: () => number,
    noise: LineNoise = {},
  ) {
    this.corruptRate = noise.corruptRate ?? 0;
    this.dropRate = noise.dropRate ?? 0;
  }

  apply(data: Uint8Array): Uint8Array {
    this.stats.bytes += data.length;
    if (this.corruptRate === 0 && this.dropRate === 0) return data;
    const out = new Uint8Array(data.length);
    let n = 0;
    for (const byte of data) {
      if (this.random() < this.dropRate) {
        this.stats.dropped++;
        continue;
      }
      if (this.random() < this.corruptRate) {
        this.stats.corrupted++;
        out[n++] = byte ^ (1 + Math.floor(this.random() * 255));
      } else {
        out[n++] = byte;
      }
    }
    return out.subarray(0, n);
  }
}

export class NoisyLineProxy extends BufferedTransport {
  readonly address: string;
  private readonly toPeer: NoisyDirection;
  private readonly fromPeer: NoisyDirection;
  private pump: Promise<void> | undefined;
  private stopPump: AbortController | undefined;

  constructor(
    private readonly inner: Transport,
    options: NoisyLineOptions,
  ) {
    super();
    this.address = `noisy:${inner.address}`;
    const random = seededRandom(options.seed);
    this.toPeer = new NoisyDirection(random, options.toPeer);
    this.fromPeer = new NoisyDirection(random, options.fromPeer);
  }

  /** What the noise did so far, per direction. */
  get stats(): { toPeer: NoiseStats; fromPeer: NoiseStats } {
    return { toPeer: { ...this.toPeer.stats }, fromPeer: { ...this.fromPeer.stats } };
  }

  protected async openLink(): Promise<void> {
    if (!this.inner.isOpen) await this.inner.open();
    const stop = new AbortController();
    this.stopPump = stop;
    this.pump = (async () => {
      try {
        for (;;) {
          const chunk = await this.inner.read(65_536, 60_000, stop.signal);
          if (chunk.length > 0) this.receive(this.fromPeer.apply(chunk));
        }
      } catch (err) {
        if (!(err instanceof TransportError && err.code === 'E_TRANSPORT_ABORTED')) this.linkClosed(err);
      }
    })();
  }

  protected async closeLink(): Promise<void> {
    this.stopPump?.abort();
    await this.pump;
    await this.inner.close();
  }

  protected async writeLink(data: Uint8Array): Promise<void> {
    const noisy = this.toPeer.apply(data);
    if (noisy.length > 0) await this.inner.write(noisy);
  }

  protected async drainLink(): Promise<void> {
    await this.inner.drain();
  }
}
