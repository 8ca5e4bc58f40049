// The guest's DHCP messages (bootloader/native/dhcp.c), the C that reads what the network sends
// before anything else runs: compiled for this machine with AddressSanitizer and UBSan and a
// small harness (tests/helpers/dhcp-fuzz.c), then given answers shaped like libslirp's (QEMU
// user net), each refusal case, and thousands of mutated and random packets. Any read past a
// packet's end aborts the harness; every packet gets a verdict, and what is accepted is sane.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli';
import { mulberry32 } from './helpers/prng';

const hasCc = spawnSync('sh', ['-c', 'command -v gcc']).status === 0;
const XID = 0x1234abcd;
const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const MAC_TEXT = MAC.map((b) => b.toString(16).padStart(2, '0')).join(':');

/** A seeded PRNG (mulberry32): the fuzz run is the same every time. */
const prng = mulberry32;

const ip = (s: string) => s.split('.').map(Number);
type Opt = [number, number[]];

/** A BOOTREPLY as libslirp's bootp.c sends it: fixed part, cookie, options, padded to 548 bytes. */
function reply(opts: Opt[], o: { xid?: number; mac?: number[]; yiaddr?: string; op?: number; pad?: number; end?: boolean; cookie?: number[] } = {}): Uint8Array {
  const b: number[] = new Array(236).fill(0);
  b[0] = o.op ?? 2;
  b[1] = 1;
  b[2] = 6;
  const xid = o.xid ?? XID;
  b[4] = xid >>> 24;
  b[5] = (xid >>> 16) & 255;
  b[6] = (xid >>> 8) & 255;
  b[7] = xid & 255;
  ip(o.yiaddr ?? '10.0.2.15').forEach((v, i) => (b[16 + i] = v));
  ip('10.0.2.2').forEach((v, i) => (b[20 + i] = v));
  (o.mac ?? MAC).forEach((v, i) => (b[28 + i] = v));
  b.push(...(o.cookie ?? [99, 130, 83, 99]));
  for (const [code, value] of opts) b.push(code, value.length, ...value);
  if (o.end !== false) b.push(255);
  while (b.length < (o.pad ?? 548)) b.push(0);
  return Uint8Array.from(b);
}

const u32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const SLIRP_OFFER: Opt[] = [[53, [2]], [54, ip('10.0.2.2')], [1, ip('255.255.255.0')], [3, ip('10.0.2.2')], [6, ip('10.0.2.3')], [51, u32(86400)]];
const SLIRP_ACK: Opt[] = SLIRP_OFFER.map(([c, v]) => (c === 53 ? [53, [5]] : [c, v]) as Opt);

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe.skipIf(!hasCc)('DHCP messages (bootloader/native/dhcp.c under ASan/UBSan)', () => {
  let dir: string;
  let harness: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'signet-dhcp-'));
    harness = join(dir, 'dhcp-fuzz');
    const native = join(ROOT, 'bootloader', 'native');
    const cc = spawnSync('gcc', [
      '-std=gnu99', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
      `-I${native}`, join(native, 'dhcp.c'), join(ROOT, 'tests', 'helpers', 'dhcp-fuzz.c'), '-o', harness,
    ], { encoding: 'utf8' });
    expect(cc.status, cc.stderr).toBe(0);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function parse(packets: Uint8Array[]): string[] {
    const r = spawnSync(harness, ['parse', String(XID), MAC_TEXT], {
      input: packets.map(hex).join('\n') + '\n',
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' },
    });
    expect(r.stderr).toBe(''); // a sanitizer report is a failure
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines.length).toBe(packets.length);
    return lines;
  }

  it("reads QEMU user net's OFFER and ACK: address, mask, router, DNS server, lease", () => {
    expect(parse([reply(SLIRP_OFFER), reply(SLIRP_ACK)])).toEqual([
      'OK type=2 yiaddr=10.0.2.15 server=10.0.2.2 mask=255.255.255.0 router=10.0.2.2 dns=10.0.2.3 lease=86400 t1=0 t2=0',
      'OK type=5 yiaddr=10.0.2.15 server=10.0.2.2 mask=255.255.255.0 router=10.0.2.2 dns=10.0.2.3 lease=86400 t1=0 t2=0',
    ]);
  });

  it('keeps the first three usable DNS servers, the first router, T1 and T2; skips options it does not use', () => {
    const [line] = parse([reply([
      [53, [5]], [54, ip('192.168.1.1')], [1, ip('255.255.255.0')], [3, [...ip('192.168.1.1'), ...ip('192.168.1.254')]],
      [12, [...Buffer.from('router')]], [6, [...ip('0.0.0.0'), ...ip('192.168.1.53'), ...ip('224.0.0.1'), ...ip('9.9.9.9'), ...ip('1.1.1.1'), ...ip('8.8.8.8')]],
      [51, u32(0xffffffff)], [58, u32(100)], [59, u32(200)], [0, []],
    ], { yiaddr: '192.168.1.20' })]);
    expect(line).toBe('OK type=5 yiaddr=192.168.1.20 server=192.168.1.1 mask=255.255.255.0 router=192.168.1.1 dns=192.168.1.53,9.9.9.9,1.1.1.1 lease=4294967295 t1=100 t2=200');
  });

  it('refuses each malformed or foreign answer with its own code', () => {
    const ackWithout = (code: number) => SLIRP_ACK.filter(([c]) => c !== code);
    const cases: Array<[string, Uint8Array]> = [
      ['E_DHCP_SHORT', reply(SLIRP_OFFER).subarray(0, 239)],
      ['E_DHCP_LONG', reply(SLIRP_OFFER, { pad: 1501 })],
      ['E_DHCP_HEADER', reply(SLIRP_OFFER, { op: 1 })],
      ['E_DHCP_XID', reply(SLIRP_OFFER, { xid: XID + 1 })],
      ['E_DHCP_CHADDR', reply(SLIRP_OFFER, { mac: [0x52, 0x54, 0, 0x12, 0x34, 0x57] })],
      ['E_DHCP_COOKIE', reply(SLIRP_OFFER, { cookie: [99, 130, 83, 98] })],
      ['E_DHCP_OPTION', reply(SLIRP_OFFER, { end: false, pad: 0 })], // no end option, packet ends
      ['E_DHCP_OPTION', reply([...SLIRP_OFFER, [12, [...Buffer.from('signet')]]], { end: false, pad: 0 }).subarray(0, 240 + 3 + 6 + 6 + 6 + 6 + 6 + 2 + 4)], // cut inside an option
      ['E_DHCP_OPTION', Uint8Array.from([...reply(SLIRP_OFFER, { end: false, pad: 0 }), 6])], // a code with no length byte
      ['E_DHCP_LENGTH', reply([[53, [2, 2]], [54, ip('10.0.2.2')]])],
      ['E_DHCP_LENGTH', reply([[53, [2]], [54, ip('10.0.2.2')], [1, [255, 255, 255]]])],
      ['E_DHCP_LENGTH', reply([[53, [2]], [54, ip('10.0.2.2')], [6, [10, 0, 2, 3, 9]]])],
      ['E_DHCP_LENGTH', reply([[53, [2]], [54, ip('10.0.2.2')], [3, []]])],
      ['E_DHCP_REPEAT', reply([...SLIRP_OFFER, [53, [5]]])],
      ['E_DHCP_REPEAT', reply([...SLIRP_OFFER, [6, ip('10.0.2.4')]])],
      ['E_DHCP_TYPE', reply(SLIRP_OFFER.filter(([c]) => c !== 53))],
      ['E_DHCP_TYPE', reply([[53, [1]], [54, ip('10.0.2.2')]])], // a DISCOVER is not an answer
      ['E_DHCP_MISSING', reply(ackWithout(54))],
      ['E_DHCP_MISSING', reply(ackWithout(51))], // an ACK must give the lease
      ['E_DHCP_MISSING', reply([...ackWithout(51), [51, u32(0)]])],
      ['E_DHCP_ADDRESS', reply(SLIRP_OFFER, { yiaddr: '0.0.0.0' })],
      ['E_DHCP_ADDRESS', reply(SLIRP_OFFER, { yiaddr: '127.0.0.1' })],
      ['E_DHCP_ADDRESS', reply(SLIRP_OFFER, { yiaddr: '255.255.255.255' })],
      ['E_DHCP_ADDRESS', reply(SLIRP_OFFER, { yiaddr: '239.1.2.3' })],
      ['E_DHCP_ADDRESS', reply([[53, [2]], [54, ip('255.255.255.255')]])],
      ['E_DHCP_ADDRESS', reply([[53, [2]], [54, ip('10.0.2.2')], [1, ip('255.0.255.0')]])], // not contiguous
      ['E_DHCP_ADDRESS', reply([[53, [2]], [54, ip('10.0.2.2')], [1, ip('255.255.255.255')]])],
      ['E_DHCP_ADDRESS', reply([[53, [2]], [54, ip('10.0.2.2')], [1, ip('255.255.255.0')], [3, ip('10.0.3.2')]])], // router off the subnet
      ['E_DHCP_ADDRESS', reply([[53, [2]], [54, ip('10.0.2.2')], [3, ip('10.0.2.15')]])], // router is us
    ];
    expect(parse(cases.map(([, p]) => p))).toEqual(cases.map(([code]) => code));
    // A NAK needs no address, only its server.
    expect(parse([reply([[53, [6]], [54, ip('10.0.2.2')]], { yiaddr: '0.0.0.0' })])[0]).toMatch(/^OK type=6 /);
  });

  it('gives every one of 30 000 mutated, cut, stretched and random packets a verdict, reading nothing past its end', () => {
    const rnd = prng(0x5167e7);
    const int = (n: number) => Math.floor(rnd() * n);
    const seeds = [reply(SLIRP_OFFER), reply(SLIRP_ACK), reply(SLIRP_OFFER, { pad: 0 }), reply([[53, [6]], [54, ip('10.0.2.2')]], { pad: 0 })];
    const packets: Uint8Array[] = [];
    for (let i = 0; i < 30_000; i++) {
      const kind = i % 6;
      if (kind === 5) {
        // garbage that starts like an answer to us, or not at all
        const p = Uint8Array.from({ length: int(1600) }, () => int(256));
        if (p.length >= 240 && rnd() < 0.7) p.set(seeds[0]!.subarray(0, 240));
        packets.push(p);
        continue;
      }
      const seed = seeds[int(seeds.length)]!;
      let p = Uint8Array.from(seed);
      const edits = 1 + int(8);
      for (let e = 0; e < edits; e++) {
        const at = 240 + int(Math.max(1, p.length - 240));
        switch (int(5)) {
          case 0: p[at] = int(256); break; // any byte in the options
          case 1: p[at] = [0, 1, 3, 6, 51, 53, 54, 58, 59, 255][int(10)]!; break; // an option code we read
          case 2: p[at] = [0, 1, 3, 4, 5, 8, 255][int(7)]!; break; // a telling length
          case 3: p = p.subarray(0, int(p.length + 1)); break; // cut anywhere
          case 4: p[int(Math.min(p.length, 240))] ^= 1 << int(8); break; // a header bit
        }
      }
      packets.push(Uint8Array.from(p));
    }
    const verdicts = parse(packets);
    const counts = new Map<string, number>();
    for (const v of verdicts) {
      const key = v.split(' ')[0]!;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      expect(key).toMatch(/^(OK|E_DHCP_(SHORT|LONG|HEADER|XID|CHADDR|COOKIE|OPTION|LENGTH|REPEAT|TYPE|ADDRESS|MISSING))$/);
      if (key === 'OK') {
        const m = /^OK type=(\d) yiaddr=([\d.]+) server=([\d.]+) /.exec(v)!;
        expect(['2', '5', '6']).toContain(m[1]);
        const first = (a: string) => Number(a.split('.')[0]);
        expect(first(m[3]!)).toBeGreaterThan(0);
        expect(first(m[3]!)).toBeLessThan(224);
        if (m[1] !== '6') expect(first(m[2]!) > 0 && first(m[2]!) < 224 && first(m[2]!) !== 127).toBe(true);
      }
    }
    // The run reached deep: both acceptances and most refusal kinds happened.
    expect(counts.get('OK') ?? 0).toBeGreaterThan(100);
    expect(counts.size).toBeGreaterThanOrEqual(8);
  }, 120_000);

  it('builds a DISCOVER and REQUESTs libslirp will read: 548 bytes, broadcast flag until the client has an address', () => {
    const build = (...a: string[]) => {
      const r = spawnSync(harness, ['build', ...a], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      return Buffer.from(r.stdout.trim(), 'hex');
    };
    const discover = build('1', String(XID), MAC_TEXT, '-', '-', '-');
    expect(discover.length).toBe(548);
    expect([...discover.subarray(0, 3)]).toEqual([1, 1, 6]);
    expect(discover.readUInt32BE(4)).toBe(XID);
    expect(discover[10]).toBe(0x80); // broadcast flag
    expect([...discover.subarray(28, 34)]).toEqual(MAC);
    expect([...discover.subarray(236, 243)]).toEqual([99, 130, 83, 99, 53, 1, 1]);
    expect([...discover.subarray(243, 251)]).toEqual([55, 6, 1, 3, 6, 51, 58, 59]);

    const request = build('3', String(XID), MAC_TEXT, '-', '10.0.2.15', '10.0.2.2');
    expect([...request.subarray(240, 255)]).toEqual([53, 1, 3, 50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2]);
    const renew = build('3', String(XID), MAC_TEXT, '10.0.2.15', '-', '-');
    expect(renew[10]).toBe(0); // it can take a unicast answer now
    expect([...renew.subarray(12, 16)]).toEqual([10, 0, 2, 15]);
    expect([...renew.subarray(240, 246)]).toEqual([53, 1, 3, 55, 6, 1]); // no 50/54 when renewing
  });
});
