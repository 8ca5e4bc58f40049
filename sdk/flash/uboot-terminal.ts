/**
 * `signet console`: a plain terminal on a board's serial console (usually U-Boot, then the
 * kernel). Bytes go both ways untouched; Ctrl-] (0x1d, as in telnet) ends the session.
 */
import { openTransport, type Transport } from './transport';
import { TransportError } from './transport-errors';

export const QUIT_BYTE = 0x1d;

export interface TerminalInput {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  resume(): unknown;
  pause(): unknown;
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export interface TerminalOptions {
  port: string;
  baud?: number;
  input: TerminalInput;
  output: { write(data: Uint8Array): unknown };
  /** Where to open the link; tests pass a link directly. */
  link?: Transport;
}

export interface TerminalResult {
  /** Why the session ended: Ctrl-] typed, or the board side closed. */
  ended: 'quit' | 'closed';
  bytesIn: number;
  bytesOut: number;
}

export async function runTerminal(o: TerminalOptions): Promise<TerminalResult> {
  const link = o.link ?? (await openTransport(o.port, { baud: o.baud }));
  const stop = new AbortController();
  let ended: TerminalResult['ended'] = 'closed';
  let bytesIn = 0;
  let bytesOut = 0;
  const raw = o.input.isTTY === true && typeof o.input.setRawMode === 'function';
  let writes = Promise.resolve();
  const onData = (chunk: Buffer): void => {
    const quit = chunk.indexOf(QUIT_BYTE);
    const send = quit >= 0 ? chunk.subarray(0, quit) : chunk;
    if (send.length > 0) {
      bytesOut += send.length;
      writes = writes.then(() => link.write(send)).catch(() => stop.abort());
    }
    if (quit >= 0) {
      ended = 'quit';
      stop.abort();
    }
  };
  if (raw) o.input.setRawMode!(true);
  o.input.on('data', onData);
  o.input.resume();
  try {
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await link.read(65_536, 60_000, stop.signal);
      } catch (e) {
        if (e instanceof TransportError && (e.code === 'E_TRANSPORT_ABORTED' || e.code === 'E_TRANSPORT_CLOSED')) break;
        throw e;
      }
      if (chunk.length > 0) {
        bytesIn += chunk.length;
        o.output.write(chunk);
      }
    }
    await writes;
  } finally {
    o.input.off('data', onData);
    o.input.pause();
    if (raw) o.input.setRawMode!(false);
    if (!o.link) await link.close().catch(() => undefined);
  }
  return { ended, bytesIn, bytesOut };
}
