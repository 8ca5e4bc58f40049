/**
 * The guest's network: how /init brings it up (board.network: DHCP by default, or a static
 * address; DNS servers), and the QEMU options for `signet run --net user --forward HOST:GUEST`.
 * Forwarded ports listen on 127.0.0.1 only.
 */
import type { Board } from '../board/schema';
import { DiskError } from './errors';

/** QEMU user-mode networking: its DHCP server gives 10.0.2.15/24 via 10.0.2.2 and DNS 10.0.2.3. */
export const QEMU_USER_NETWORK = { interface: 'eth0', address: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3' } as const;

/**
 * What /init reads from /signet/network (bootloader/native/net.c): a first line
 * `<ifname> dhcp` or `<ifname> <address> <prefix> [gateway]`, then one `dns <address>` line per
 * server the board names. No `network` in the board: DHCP on eth0 (a device on a real network
 * gets its address that way, and under QEMU user net the answer is what a static default would
 * have been, plus the DNS server).
 */
export function networkConfLine(board: Board): string {
  const n = board.network ?? {};
  const ifname = n.interface ?? 'eth0';
  const staticMode = n.mode === 'static' || (n.mode === undefined && n.address !== undefined);
  let first: string;
  if (staticMode) {
    if (!n.address) throw new DiskError('E_BOARD_NETWORK', `board ${board.id}: network mode "static" without an address`, 'give network.address as a.b.c.d/prefix, or use mode "dhcp"');
    const [address, prefix] = n.address.split('/');
    first = [ifname, address, prefix, ...(n.gateway ? [n.gateway] : [])].join(' ');
  } else {
    first = `${ifname} dhcp`;
  }
  return [first, ...(n.dns ?? []).map((d) => `dns ${d}`)].join('\n') + '\n';
}

export interface PortForward {
  proto: 'tcp' | 'udp';
  /** Port on the host's 127.0.0.1. */
  host: number;
  guest: number;
}

export interface GuestNetwork {
  /** QEMU's user-mode network (slirp): no privileges, the host reachable as the gateway. */
  mode: 'user';
  forwards: PortForward[];
}

function port(text: string, spec: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    throw new DiskError('E_FORWARD', `--forward ${spec}: '${text}' is not a port number (1-65535)`, 'write --forward HOST_PORT:GUEST_PORT, or udp:HOST_PORT:GUEST_PORT');
  }
  return n;
}

/** `8080:80` (TCP), `tcp:8080:80` or `udp:5353:53`. */
export function parseForward(spec: string): PortForward {
  const parts = spec.split(':');
  let proto: 'tcp' | 'udp' = 'tcp';
  if (parts.length === 3) {
    if (parts[0] !== 'tcp' && parts[0] !== 'udp') {
      throw new DiskError('E_FORWARD', `--forward ${spec}: '${parts[0]}' is not tcp or udp`, 'write --forward HOST_PORT:GUEST_PORT, or udp:HOST_PORT:GUEST_PORT');
    }
    proto = parts.shift() as 'tcp' | 'udp';
  }
  if (parts.length !== 2) {
    throw new DiskError('E_FORWARD', `--forward ${spec} is not HOST_PORT:GUEST_PORT`, 'write --forward HOST_PORT:GUEST_PORT, or udp:HOST_PORT:GUEST_PORT');
  }
  return { proto, host: port(parts[0]!, spec), guest: port(parts[1]!, spec) };
}

/** The same host port twice for one protocol cannot work: refuse before QEMU starts. */
export function checkForwards(forwards: readonly PortForward[]): void {
  const seen = new Set<string>();
  for (const f of forwards) {
    const key = `${f.proto}:${f.host}`;
    if (seen.has(key)) throw new DiskError('E_FORWARD', `--forward: host ${f.proto} port ${f.host} is forwarded twice`, 'forward each host port once');
    seen.add(key);
  }
}

/** QEMU options: a virtio-net card on the user-mode network with the forwards, on 127.0.0.1 only. */
export function qemuNetworkArgs(n: GuestNetwork): string[] {
  checkForwards(n.forwards);
  const fwd = n.forwards.map((f) => `,hostfwd=${f.proto}:127.0.0.1:${f.host}-:${f.guest}`).join('');
  return ['-netdev', `user,id=n0${fwd}`, '-device', 'virtio-net-pci,netdev=n0,romfile='];
}
