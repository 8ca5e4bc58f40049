/**
 * Unix stream socket adapter, e.g. QEMU's `-chardev socket,id=s0,path=/tmp/s0.sock,server=on`
 * wired to a board UART. Addressed as `unix:/tmp/s0.sock` through `openTransport`.
 */
import { createConnection, type Socket } from 'node:net';
import { BufferedTransport } from './transport-buffered';
import { TransportError } from './transport-errors';

export class UnixSocketTransport extends BufferedTransport {
  readonly address: string;
  private readonly path: string;
  private socket: Socket | undefined;

  constructor(path: string) {
    super();
    this.path = path;
    this.address = `unix:${path}`;
  }

  protected async openLink(): Promise<void> {
    const socket = createConnection({ path: this.path });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        socket.destroy();
        reject(
          new TransportError(
            'E_TRANSPORT_OPEN',
            `cannot connect to ${this.address}: ${err.message} — check that QEMU (or the server) is running with that socket path`,
            { cause: err },
          ),
        );
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve();
      });
    });
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.linkClosed(err));
    socket.on('close', () => this.linkClosed());
    this.socket = socket;
  }

  protected async closeLink(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      socket.destroySoon();
    });
  }

  protected async writeLink(data: Uint8Array): Promise<void> {
    const socket = this.requireSocket();
    await new Promise<void>((resolve, reject) => {
      socket.write(data, (err) => {
        if (err) {
          reject(new TransportError('E_TRANSPORT_WRITE', `write to ${this.address} failed: ${err.message} — is the peer still running?`, { cause: err }));
        } else {
          resolve();
        }
      });
    });
  }

  protected async drainLink(): Promise<void> {
    const socket = this.requireSocket();
    if (socket.writableLength === 0) return;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        socket.off('drain', onDrain);
        reject(new TransportError('E_TRANSPORT_WRITE', `drain on ${this.address} failed: ${err.message} — is the peer still running?`, { cause: err }));
      };
      const onDrain = (): void => {
        socket.off('error', onError);
        resolve();
      };
      socket.once('drain', onDrain);
      socket.once('error', onError);
    });
  }

  private requireSocket(): Socket {
    if (!this.socket) {
      throw new TransportError('E_TRANSPORT_CLOSED', `${this.address} is closed — open it first`);
    }
    return this.socket;
  }
}
