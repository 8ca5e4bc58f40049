/**
 * Serial port adapter: the only module that imports `serialport`. It also opens pty
 * slave paths (/dev/pts/N, socat `link=` names), since bindings-cpp only needs termios.
 *
 * node-serialport configures the line (raw 8N1, baud, exclusive lock) and does drain. The
 * byte I/O takes a shorter path when it can, because YMODEM is stop-and-wait and every
 * block pays the turnaround twice: bindings-cpp reads through the libuv thread pool
 * (an EAGAIN read, a poll, a second read) and writes through it too. Instead we read with
 * a `tty.ReadStream` on a second descriptor of the same tty (epoll on the main thread; it
 * never touches termios unless asked to) and write with a non-blocking `writeSync` on the
 * port's descriptor, handing any remainder that the OS would not take to serialport's own
 * queue. Where either is unavailable the plain serialport stream is used.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { isatty, ReadStream } from 'node:tty';
import { SerialPort } from 'serialport';
import { BufferedTransport } from './transport-buffered';
import { TransportError } from './transport-errors';

export interface SerialTransportOptions {
  /** Line speed in bit/s. Ptys accept and ignore it. */
  baud: number;
}

export class SerialTransport extends BufferedTransport {
  readonly address: string;
  private readonly baud: number;
  private port: SerialPort | undefined;
  private reader: ReadStream | undefined;
  private portFd: number | undefined;
  /** Writes handed to serialport's queue and not yet done; while > 0 new writes queue behind them. */
  private queued = 0;

  constructor(path: string, options: SerialTransportOptions) {
    super();
    this.address = path;
    this.baud = options.baud;
  }

  protected async openLink(): Promise<void> {
    // Opened first so that a path serialport cannot open leaves nothing behind (closed below).
    const readerFd = openReaderFd(this.address);
    const port = new SerialPort({ path: this.address, baudRate: this.baud, autoOpen: false });
    try {
      await new Promise<void>((resolve, reject) => {
        port.open((err) => {
          if (err) {
            reject(
              new TransportError(
                'E_TRANSPORT_OPEN',
                `cannot open serial port ${this.address} at ${this.baud} baud: ${err.message} — check the path, permissions (dialout group) and that no other program holds it`,
                { cause: err },
              ),
            );
          } else {
            resolve();
          }
        });
      });
    } catch (err) {
      if (readerFd !== undefined) closeSync(readerFd);
      throw err;
    }
    port.on('close', (err?: Error) => this.linkClosed(err));
    port.on('error', (err: Error) => this.linkClosed(err));
    if (readerFd !== undefined) {
      const reader = new ReadStream(readerFd);
      reader.on('data', (chunk: Buffer) => this.receive(chunk));
      reader.on('error', (err) => this.linkClosed(err));
      reader.on('end', () => this.linkClosed());
      this.reader = reader;
    } else {
      port.on('data', (chunk: Buffer) => this.receive(chunk));
    }
    this.port = port;
    this.portFd = portDescriptor(port);
    this.queued = 0;
  }

  protected async closeLink(): Promise<void> {
    const { port, reader } = this;
    this.port = undefined;
    this.reader = undefined;
    this.portFd = undefined;
    reader?.removeAllListeners('data');
    reader?.destroy();
    if (!port?.isOpen) return;
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  protected async writeLink(data: Uint8Array): Promise<void> {
    const port = this.requirePort();
    let rest = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (this.portFd !== undefined && this.queued === 0) {
      try {
        const n = writeSync(this.portFd, rest);
        if (n === rest.length) return;
        rest = rest.subarray(n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') {
          throw new TransportError('E_TRANSPORT_WRITE', `write to ${this.address} failed: ${(err as Error).message} — check the cable and port`, { cause: err });
        }
      }
    }
    // The OS buffer is full (or earlier bytes are still queued): let serialport wait for room.
    this.queued++;
    try {
      await new Promise<void>((resolve, reject) => {
        port.write(rest, (err) => {
          if (err) {
            reject(new TransportError('E_TRANSPORT_WRITE', `write to ${this.address} failed: ${err.message} — check the cable and port`, { cause: err }));
          } else {
            resolve();
          }
        });
      });
    } finally {
      this.queued--;
    }
  }

  protected async drainLink(): Promise<void> {
    const port = this.requirePort();
    await new Promise<void>((resolve, reject) => {
      port.drain((err) => {
        if (err) {
          reject(new TransportError('E_TRANSPORT_WRITE', `drain on ${this.address} failed: ${err.message} — check the cable and port`, { cause: err }));
        } else {
          resolve();
        }
      });
    });
  }

  private requirePort(): SerialPort {
    if (!this.port) {
      throw new TransportError('E_TRANSPORT_CLOSED', `${this.address} is closed — open it first`);
    }
    return this.port;
  }
}

/** A second, non-blocking descriptor for reading, when the path is a tty; undefined otherwise. */
function openReaderFd(path: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch {
    return undefined; // serialport's open reports the real problem
  }
  if (isatty(fd)) return fd;
  closeSync(fd);
  return undefined;
}

/** bindings-cpp's POSIX port exposes its (non-blocking) descriptor as `fd`. */
function portDescriptor(port: SerialPort): number | undefined {
  const fd = (port.port as { fd?: unknown } | undefined)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
