/**
 * The far end of a guest's network card for tests: QEMU's `-netdev socket,udp=…,localaddr=…`
 * carries each Ethernet frame as one UDP datagram on loopback, so this helper sees the guest's
 * DHCP requests as frames and answers with frames it builds (Ethernet, IPv4, UDP, BOOTP),
 * as a scripted DHCP server would: or with garbage, or not at all. Nothing leaves loopback.
 */
import { createSocket, type Socket } from 'node:dgram';

export interface DhcpRequest {
  /** 1 DISCOVER, 3 REQUEST, ... (option 53). */
  type: number;
  xid: number;
  mac: Buffer;
  ciaddr: string;
  /** Option 50, or '' */
  requested: string;
  /** IPv4 destination of the frame (255.255.255.255 or a server's address). */
  to: string;
  at: number;
}

export interface DhcpWire {
  /** The `-netdev`/`-device` options for QEMU. */
  qemuArgs: string[];
  requests: DhcpRequest[];
  /** The address ARP requests are answered for (the DHCP server's, for unicast renewals). */
  serverIp: string;
  /** Called for each request; send answers with `reply`/`raw`. */
  onRequest: (r: DhcpRequest) => void;
  reply(r: DhcpRequest, type: number, o: { yiaddr: string; server: string; mask?: string; router?: string; dns?: string[]; lease?: number; t1?: number; t2?: number }): void;
  /** A BOOTP payload sent as is (garbage tests), in a well-formed frame. */
  raw(payload: Buffer): void;
  close(): Promise<void>;
}

const ip = (s: string) => Buffer.from(s.split('.').map(Number));
const text = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
const SERVER_MAC = Buffer.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Ethernet + IPv4 + UDP (checksum 0: none, allowed for IPv4) around a BOOTP payload. */
function frame(payload: Buffer, src: string, dst: string, dstMac: Buffer): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(67, 0);
  udp.writeUInt16BE(68, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const iph = Buffer.alloc(20);
  iph[0] = 0x45;
  iph.writeUInt16BE(20 + 8 + payload.length, 2);
  iph[8] = 64;
  iph[9] = 17;
  ip(src).copy(iph, 12);
  ip(dst).copy(iph, 16);
  iph.writeUInt16BE(checksum(iph), 10);
  return Buffer.concat([dstMac, SERVER_MAC, Buffer.from([0x08, 0x00]), iph, udp, payload]);
}

function bootReply(r: DhcpRequest, type: number, o: Parameters<DhcpWire['reply']>[2]): Buffer {
  const b = Buffer.alloc(236);
  b[0] = 2;
  b[1] = 1;
  b[2] = 6;
  b.writeUInt32BE(r.xid, 4);
  ip(type === 6 ? '0.0.0.0' : o.yiaddr).copy(b, 16);
  r.mac.copy(b, 28);
  const opts: number[] = [99, 130, 83, 99, 53, 1, type, 54, 4, ...ip(o.server)];
  const u32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  if (type !== 6) {
    if (o.mask) opts.push(1, 4, ...ip(o.mask));
    if (o.router) opts.push(3, 4, ...ip(o.router));
    if (o.dns) opts.push(6, 4 * o.dns.length, ...o.dns.flatMap((d) => [...ip(d)]));
    if (o.lease !== undefined) opts.push(51, 4, ...u32(o.lease));
    if (o.t1 !== undefined) opts.push(58, 4, ...u32(o.t1));
    if (o.t2 !== undefined) opts.push(59, 4, ...u32(o.t2));
  }
  opts.push(255);
  const out = Buffer.concat([b, Buffer.from(opts)]);
  return out.length < 300 ? Buffer.concat([out, Buffer.alloc(300 - out.length)]) : out;
}

/** Parses a frame from the guest: a DHCP request, or null (ARP, IPv6, anything else). */
function request(f: Buffer): DhcpRequest | null {
  if (f.length < 14 + 20 + 8 + 240 || f.readUInt16BE(12) !== 0x0800) return null;
  const ihl = (f[14]! & 15) * 4;
  if (f[14 + 9] !== 17) return null;
  const udp = 14 + ihl;
  if (f.readUInt16BE(udp) !== 68 || f.readUInt16BE(udp + 2) !== 67) return null;
  const p = f.subarray(udp + 8);
  if (p[0] !== 1 || p.readUInt32BE(236) !== 0x63825363) return null;
  let type = 0;
  let requested = '';
  for (let i = 240; i < p.length && p[i] !== 255; ) {
    if (p[i] === 0) {
      i++;
      continue;
    }
    const code = p[i]!;
    const len = p[i + 1]!;
    if (code === 53) type = p[i + 2]!;
    if (code === 50) requested = text(p, i + 2);
    i += 2 + len;
  }
  return { type, xid: p.readUInt32BE(4), mac: Buffer.from(p.subarray(28, 34)), ciaddr: text(p, 12), requested, to: text(f, 14 + 16), at: Date.now() };
}

export function startDhcpWire(): Promise<DhcpWire> {
  const s: Socket = createSocket('udp4');
  let qemuPort = 0;
  const wire: DhcpWire = {
    qemuArgs: [],
    requests: [],
    serverIp: '10.0.3.1',
    onRequest: () => {},
    reply(r, type, o) {
      s.send(frame(bootReply(r, type, o), o.server, '255.255.255.255', Buffer.alloc(6, 0xff)), qemuPort, '127.0.0.1');
    },
    raw(payload) {
      s.send(frame(payload, '10.0.3.1', '255.255.255.255', Buffer.alloc(6, 0xff)), qemuPort, '127.0.0.1');
    },
    close: () => new Promise((r) => s.close(() => r())),
  };
  s.on('message', (f) => {
    // ARP who-has serverIp: answer, so the guest can send its renewal to the server directly.
    if (f.length >= 42 && f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1 && text(f, 38) === wire.serverIp) {
      const asker = f.subarray(22, 28);
      const arp = Buffer.concat([asker, SERVER_MAC, Buffer.from([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]), SERVER_MAC, ip(wire.serverIp), asker, f.subarray(28, 32)]);
      s.send(arp, qemuPort, '127.0.0.1');
      return;
    }
    const r = request(f);
    if (!r) return;
    wire.requests.push(r);
    wire.onRequest(r);
  });
  return new Promise((resolve) => {
    s.bind(0, '127.0.0.1', () => {
      // QEMU's end: a free port found the same way (bound then released).
      const probe = createSocket('udp4');
      probe.bind(0, '127.0.0.1', () => {
        qemuPort = probe.address().port;
        probe.close(() => {
          wire.qemuArgs = [
            '-netdev', `socket,id=n0,udp=127.0.0.1:${s.address().port},localaddr=127.0.0.1:${qemuPort}`,
            '-device', 'virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:77',
          ];
          resolve(wire);
        });
      });
    });
  });
}
