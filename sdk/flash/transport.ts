/**
 * Opens a byte link to a board by address: `unix:/path` (a socket such as QEMU's console) or a
 * device path (a serial port or pty). The interface is in transport-types.ts, the shared
 * buffering in transport-buffered.ts, the adapters in transport-serial.ts and transport-unix.ts.
 */
import { TransportError } from './transport-errors';
import type { OpenTransportOptions, Transport } from './transport-types';

export { TransportError } from './transport-errors';
export type { TransportErrorCode } from './transport-errors';
export type { OpenTransportOptions, Transport } from './transport-types';

const UNIX_PREFIX = 'unix:';

/**
 * Opens `unix:/path` (a stream socket such as QEMU's `-chardev socket,path=...`) or a
 * serial device / pty slave path (via node-serialport). Adapters load lazily so that code
 * which only uses the mock never loads the serialport native binding.
 */
export async function openTransport(address: string, options: OpenTransportOptions = {}): Promise<Transport> {
  let transport: Transport;
  if (address.startsWith(UNIX_PREFIX)) {
    const path = address.slice(UNIX_PREFIX.length);
    if (path.length === 0) {
      throw new TransportError('E_TRANSPORT_ADDRESS', `empty socket path in "${address}" — use unix:/path/to/socket`);
    }
    const { UnixSocketTransport } = await import('./transport-unix');
    transport = new UnixSocketTransport(path);
  } else if (address.startsWith('/')) {
    const { SerialTransport } = await import('./transport-serial');
    transport = new SerialTransport(address, { baud: options.baud ?? 115200 });
  } else {
    throw new TransportError(
      'E_TRANSPORT_ADDRESS',
      `unsupported link address "${address}" — use a device path like /dev/ttyUSB0 or unix:/path/to/socket`,
    );
  }
  await transport.open();
  return transport;
}
