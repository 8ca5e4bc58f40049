/**
 * `signet run --engine node` gives the service QEMU's user-network view of its host: 10.0.2.2 is
 * the host (127.0.0.1), for TCP and UDP, and answers from the host come back from 10.0.2.2, as
 * they do in a QEMU guest (a DNS resolver there only trusts the server it asked).
 */
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { loopbackBinding } from '../sdk/disk/run-node';
import { nodeBinding } from '../sdk/runtime/node-binding';

describe('run --engine node: the guest view of the host', () => {
  it('a datagram to 10.0.2.2 reaches the host on loopback, and its answer comes from 10.0.2.2', async () => {
    const host = createSocket('udp4');
    await new Promise<void>((r) => host.bind(0, '127.0.0.1', r));
    host.on('message', (m, from) => host.send(Buffer.concat([Buffer.from('re:'), m]), from.port, from.address));
    const port = (host.address() as { port: number }).port;
    const b = loopbackBinding(nodeBinding()!);
    try {
      const got = await new Promise<{ text: string; from: unknown; port: unknown }>((resolve, reject) => {
        const id = b.udpBind((event, a, from, p) => {
          if (event === 'listening') b.udpSend(id, new TextEncoder().encode('ping'), '10.0.2.2', port);
          if (event === 'message') {
            b.close(id);
            resolve({ text: new TextDecoder().decode(a as Uint8Array), from, port: p });
          }
          if (event === 'error') reject(new Error(String(a)));
        }, '0.0.0.0', 0);
      });
      expect(got).toEqual({ text: 're:ping', from: '10.0.2.2', port });
    } finally {
      host.close();
    }
  });
});
