// The runtime's resolver (sdk/runtime/dns.ts) and its answer parser (dns-packet.ts): golden
// answers, every refusal, tens of thousands of mutated answers (the parser faces the network:
// it returns or throws EBADRESP, nothing else, and never loops), then lookups under Node against
// a real DNS server on 127.0.0.1 (tests/helpers/dns-server.ts): servers in turn, timeouts,
// spoofed and malformed answers, no query for literals, and net.connect/fetch by name.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeQuery, parseAnswer, TYPE_A, TYPE_AAAA } from '../sdk/runtime/dns-packet';
import { createSocket as nodeUdp } from 'node:dgram';
import * as dgram from '../sdk/runtime/dgram';
import * as dns from '../sdk/runtime/dns';
import { fetch } from '../sdk/runtime/fetch';
import * as net from '../sdk/runtime/net';
import { issueCertificate } from '../sdk/keys/device-x509';
import { createVendorCa } from '../sdk/keys/x509';
import { answerFor, startDnsServer, type DnsTestServer, type DnsZone } from './helpers/dns-server';

const ZONE: DnsZone = {
  'host.test': { a: ['127.0.0.1'] },
  'two.test': { a: ['10.1.2.3', '10.1.2.4'] },
  'www.test': { cname: 'alias.test' },
  'alias.test': { cname: 'host.test' },
  'six.test': { aaaa: ['2001:db8::1', 'fe80::1:0:0:2'] },
  'both.test': { a: ['10.9.9.9'], aaaa: ['::1'] },
  'loop1.test': { cname: 'loop2.test' },
  'loop2.test': { cname: 'loop1.test' },
  'empty.test': {},
  'silent.test': { a: ['10.0.0.1'], behave: 'silent' },
  'fail.test': { behave: 'servfail' },
  'garbage.test': { behave: 'garbage' },
  'spoofed.test': { a: ['127.0.0.1'], behave: 'spoof-first' },
};

function answer(name: string, type = TYPE_A, id = 0x4242, zone: DnsZone = ZONE): Uint8Array {
  return new Uint8Array(answerFor(zone, Buffer.from(encodeQuery(id, name, type)))!);
}

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'none';
  } catch (e) {
    return (e as { code?: string }).code ?? 'no code: ' + String(e);
  }
}

describe('DNS answers (sdk/runtime/dns-packet.ts)', () => {
  it('encodes a query: id, RD, one question, the name as labels, type and class IN', () => {
    expect(Buffer.from(encodeQuery(0x1234, 'Host.Test.', TYPE_A)).toString('hex')).toBe('123401000001000000000000' + '04486f7374' + '0454657374' + '00' + '0001' + '0001');
    for (const bad of ['', 'a..b', '-a.test', 'a-.test', 'x'.repeat(64) + '.test', 'a b.test', ('a'.repeat(60) + '.').repeat(5)]) {
      expect(codeOf(() => encodeQuery(1, bad, TYPE_A))).toBe('EBADNAME');
    }
  });

  it('reads A records, follows CNAMEs (compressed names), reads AAAA in RFC 5952 text, tells NXDOMAIN', () => {
    expect(parseAnswer(answer('host.test'), 0x4242, 'host.test', TYPE_A)).toEqual({ rcode: 0, truncated: false, addresses: ['127.0.0.1'], ttl: 60 });
    expect(parseAnswer(answer('two.test'), 0x4242, 'two.test', TYPE_A).addresses).toEqual(['10.1.2.3', '10.1.2.4']);
    expect(parseAnswer(answer('www.test'), 0x4242, 'WWW.test', TYPE_A)).toEqual({ rcode: 0, truncated: false, addresses: ['127.0.0.1'], ttl: 60 });
    expect(parseAnswer(answer('six.test', TYPE_AAAA), 0x4242, 'six.test', TYPE_AAAA).addresses).toEqual(['2001:db8::1', 'fe80::1:0:0:2']);
    expect(parseAnswer(answer('nowhere.test'), 0x4242, 'nowhere.test', TYPE_A)).toMatchObject({ rcode: 3, addresses: [] });
    expect(parseAnswer(answer('empty.test'), 0x4242, 'empty.test', TYPE_A)).toMatchObject({ rcode: 0, addresses: [] });
  });

  it('believes no record for a name off the CNAME chain', () => {
    const m = answer('empty.test'); // header and question, no answers
    const offChain = [5, ...Buffer.from('other'), 4, ...Buffer.from('test'), 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 6, 6, 6];
    const onChain = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 7, 7, 7];
    const two = Uint8Array.from([...m, ...offChain, ...onChain]);
    two[7] = 2;
    expect(parseAnswer(two, 0x4242, 'empty.test', TYPE_A).addresses).toEqual(['10.7.7.7']);
  });

  it('refuses each malformed or foreign answer with EBADRESP', () => {
    const good = answer('host.test');
    const set = (b: Uint8Array, at: number, ...v: number[]) => {
      const c = Uint8Array.from(b);
      v.forEach((x, i) => (c[at + i] = x));
      return c;
    };
    const q = 12 + 'host.test'.length + 2 + 4; // start of the answer section
    const cases: Uint8Array[] = [
      good.subarray(0, 11), // no header
      set(good, 0, 0x42, 0x43), // another id
      set(good, 2, 0x01), // not a response
      set(good, 2, 0x81 | (2 << 3)), // opcode STATUS
      set(good, 4, 0, 2), // two questions
      set(good, 13, 'j'.charCodeAt(0)), // another name asked
      set(good, q - 3, 28), // another type asked
      set(good, q, 0xc0, q), // answer name points at itself
      set(good, q, 0xc0, 0xff), // pointer forwards, past the end
      set(good, q, 0x80, 12), // label type 10
      set(good, q, 0x40, 12), // label type 01 (EDNS0 extended)
      set(good, q + 10, 0, 5), // an A record of 5 bytes (runs past the end, too)
      Uint8Array.from([...good, 0]).map((x, i, a) => (i === q + 11 ? 5 : x)).subarray(0, good.length + 1), // A of 5 bytes, fully present
      set(good, 7, 2), // two answers, one there
      Uint8Array.from([...good.subarray(0, 12), 0x3f + 1, ...new Array(70).fill(0x61), 0]), // label over 63
      Uint8Array.from([...good.subarray(0, 12), ...[...new Array(5)].flatMap(() => [63, ...new Array(63).fill(0x61)]), 0, 0, 1, 0, 1]), // name over 255
      new Uint8Array(4097), // too long
    ];
    for (const [i, c] of cases.entries()) expect([i, codeOf(() => parseAnswer(c, 0x4242, 'host.test', TYPE_A))]).toEqual([i, 'EBADRESP']);
    expect(codeOf(() => parseAnswer(answer('loop1.test'), 0x4242, 'loop1.test', TYPE_A))).toBe('EBADRESP'); // CNAME loop
    const chain: DnsZone = { 'c0.test': { cname: 'c1.test' } };
    for (let i = 1; i < 10; i++) chain[`c${i}.test`] = { cname: `c${i + 1}.test` };
    chain['c10.test'] = { a: ['10.0.0.1'] };
    expect(codeOf(() => parseAnswer(answer('c0.test', TYPE_A, 0x4242, chain), 0x4242, 'c0.test', TYPE_A))).toBe('EBADRESP'); // 10 CNAMEs
    chain['c8.test'] = { a: ['10.0.0.8'] };
    expect(parseAnswer(answer('c0.test', TYPE_A, 0x4242, chain), 0x4242, 'c0.test', TYPE_A).addresses).toEqual(['10.0.0.8']); // 8 are fine
  });

  it('every prefix of an answer, and 60 000 mutated ones, give an answer or EBADRESP: nothing else, no hang', () => {
    const seeds = [answer('host.test'), answer('www.test'), answer('six.test', TYPE_AAAA), answer('two.test'), answer('nowhere.test')];
    const names = ['host.test', 'www.test', 'six.test', 'two.test', 'nowhere.test'];
    const types = [TYPE_A, TYPE_A, TYPE_AAAA, TYPE_A, TYPE_A];
    let seed = 0x9e3779b9;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    const int = (n: number) => Math.floor(rnd() * n);
    const verdicts = new Map<string, number>();
    const check = (m: Uint8Array, k: number) => {
      let v: string;
      try {
        const r = parseAnswer(m, 0x4242, names[k]!, types[k]!);
        for (const a of r.addresses) expect(net.isIP(a)).toBe(types[k] === TYPE_A ? 4 : 6);
        v = 'ok';
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        expect((e as { code?: string }).code).toBe('EBADRESP');
        v = 'EBADRESP';
      }
      verdicts.set(v, (verdicts.get(v) ?? 0) + 1);
    };
    for (const [k, s] of seeds.entries()) for (let n = 0; n < s.length; n++) check(s.subarray(0, n), k);
    for (let i = 0; i < 60_000; i++) {
      const k = int(seeds.length);
      let m = Uint8Array.from(seeds[k]!);
      const edits = 1 + int(6);
      for (let e = 0; e < edits; e++) {
        const at = int(m.length);
        switch (int(6)) {
          case 0: m[at] = int(256); break;
          case 1: m[at] = 0xc0 | int(4); m[(at + 1) % m.length] = int(256); break; // a pointer anywhere
          case 2: m[at] = [0, 1, 5, 28, 63, 64, 0xc0][int(7)]!; break;
          case 3: m = m.subarray(0, int(m.length + 1)); break;
          case 4: m = Uint8Array.from([...m, ...Array.from({ length: int(40) }, () => int(256))]); break;
          case 5: m[6] = 0; m[7] = int(256); break; // any answer count
        }
        if (m.length === 0) break;
      }
      check(m, k);
    }
    expect(verdicts.get('ok') ?? 0).toBeGreaterThan(1000);
    expect(verdicts.get('EBADRESP') ?? 0).toBeGreaterThan(1000);
  }, 120_000);
});

describe('dns.lookup under Node against a DNS server on 127.0.0.1', () => {
  let server: DnsTestServer;
  let second: DnsTestServer;
  let http: Server;
  let httpPort: number;

  beforeAll(async () => {
    server = await startDnsServer(ZONE);
    second = await startDnsServer({ 'silent.test': { a: ['10.0.0.2'] }, 'garbage.test': { a: ['10.0.0.3'] }, 'fail.test': { a: ['10.0.0.4'] } });
    http = createServer((req, res) => res.end('by name: ' + req.headers.host));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    httpPort = (http.address() as AddressInfo).port;
  });

  afterAll(async () => {
    dns.setServers([]);
    await server?.close();
    await second?.close();
    http?.close();
  });

  const lookup = (name: string, o: dns.LookupOptions = {}) => dns.promises.lookup(name, o);
  const codeOfAsync = (p: Promise<unknown>) => p.then(() => 'none', (e: { code?: string }) => e.code ?? 'no code');

  it('asks nobody without a server (ECONNREFUSED), and takes servers as IPv4[:port], at most 3', async () => {
    dns.setServers([]);
    expect(dns.getServers()).toEqual([]);
    expect(await codeOfAsync(lookup('host.test'))).toBe('ECONNREFUSED');
    for (const bad of [['dns.example'], ['::1'], ['10.0.0.1:0'], ['10.0.0.1:70000'], ['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4']]) {
      expect(codeOf(() => dns.setServers(bad))).toMatch(/^ERR_INVALID_(IP_ADDRESS|ARG_VALUE)$/);
    }
    dns.setServers([`127.0.0.1:${server.port}`, '10.0.2.3']);
    expect(dns.getServers()).toEqual([`127.0.0.1:${server.port}`, '10.0.2.3']);
    dns.setServers([`127.0.0.1:${server.port}`]);
  });

  it('answers IP literals and localhost without a query', async () => {
    const before = server.questions.length;
    expect(await lookup('192.0.2.7')).toEqual({ address: '192.0.2.7', family: 4 });
    expect(await lookup('::1')).toEqual({ address: '::1', family: 6 });
    expect(await lookup('localhost')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(await lookup('api.localhost', { family: 6 })).toEqual({ address: '::1', family: 6 });
    expect(await codeOfAsync(lookup('192.0.2.7', { family: 6 }))).toBe('ENOTFOUND');
    expect(server.questions.length).toBe(before);
  });

  it('looks names up: A, all, CNAME chains, AAAA, family 0 falling back to AAAA; callback and promise forms', async () => {
    expect(await lookup('host.test')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(await lookup('two.test', { all: true })).toEqual([{ address: '10.1.2.3', family: 4 }, { address: '10.1.2.4', family: 4 }]);
    expect(await lookup('www.test')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(await lookup('six.test', { family: 6 })).toEqual({ address: '2001:db8::1', family: 6 });
    expect(await lookup('six.test')).toEqual({ address: '2001:db8::1', family: 6 });
    expect(await lookup('both.test')).toEqual({ address: '10.9.9.9', family: 4 });
    expect(await dns.promises.resolve4('two.test')).toEqual(['10.1.2.3', '10.1.2.4']);
    expect(await dns.promises.resolve6('six.test')).toEqual(['2001:db8::1', 'fe80::1:0:0:2']);
    const viaCallback = await new Promise((resolve) => dns.lookup('host.test', 4, (err, address, family) => resolve([err, address, family])));
    expect(viaCallback).toEqual([null, '127.0.0.1', 4]);
  });

  it('fails with Node codes: ENOTFOUND (no such name, no address), EBADNAME, ESERVFAIL, EBADRESP', async () => {
    const e = await lookup('nowhere.test').catch((x: Error & { hostname?: string; code?: string }) => x);
    expect([(e as { code?: string }).code, (e as { hostname?: string }).hostname]).toEqual(['ENOTFOUND', 'nowhere.test']);
    expect(await codeOfAsync(lookup('empty.test'))).toBe('ENOTFOUND');
    expect(await codeOfAsync(dns.promises.resolve4('empty.test'))).toBe('ENODATA');
    expect(await codeOfAsync(dns.promises.resolve4('bad..name'))).toBe('EBADNAME');
    expect(await codeOfAsync(lookup('fail.test'))).toBe('ESERVFAIL');
    expect(await codeOfAsync(lookup('garbage.test'))).toBe('EBADRESP');
    expect(await codeOfAsync(lookup('loop1.test'))).toBe('EBADRESP');
  });

  it('ignores an answer with another id and takes the real one', async () => {
    expect(await lookup('spoofed.test')).toEqual({ address: '127.0.0.1', family: 4 });
  });

  it('asks the next server when one is silent, fails or answers nonsense; ETIMEOUT when all are silent', async () => {
    dns.setServers([`127.0.0.1:${server.port}`, `127.0.0.1:${second.port}`]);
    try {
      expect(await lookup('garbage.test')).toEqual({ address: '10.0.0.3', family: 4 });
      expect(await lookup('fail.test')).toEqual({ address: '10.0.0.4', family: 4 });
      expect(await lookup('silent.test')).toEqual({ address: '10.0.0.2', family: 4 }); // after one 2 s try
      dns.setServers([`127.0.0.1:${server.port}`]);
      const asked = server.questions.length;
      expect(await codeOfAsync(lookup('silent.test'))).toBe('ETIMEOUT');
      expect(server.questions.length - asked).toBe(2); // two tries, then it gives up
    } finally {
      dns.setServers([`127.0.0.1:${server.port}`]);
    }
  }, 30_000);

  it('net.connect and fetch take a host name (looked up here, not by the system)', async () => {
    const s = net.connect({ port: httpPort, host: 'host.test' });
    s.write('GET / HTTP/1.1\r\nHost: host.test\r\nConnection: close\r\n\r\n'); // before the lookup is done
    let text = '';
    s.on('data', (d: Uint8Array) => (text += Buffer.from(d).toString()));
    await new Promise((r) => s.on('close', r));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*by name: host\.test$/);
    const r = await fetch(`http://www.test:${httpPort}/`);
    expect(await r.text()).toBe(`by name: www.test:${httpPort}`);
    const refused = net.connect({ port: httpPort, host: 'nowhere.test' });
    const err = await new Promise<{ code?: string }>((resolve) => refused.on('error', resolve));
    expect(err.code).toBe('ENOTFOUND');
    expect(await codeOfAsync(fetch(`http://nowhere.test:${httpPort}/`))).toBe('ENOTFOUND');
  });

  it('dgram.send takes a host name too', async () => {
    const echo = nodeUdp('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
    const s = dgram.createSocket('udp4');
    try {
      const got = new Promise<string>((resolve) => s.on('message', (m: Uint8Array) => resolve(Buffer.from(m).toString())));
      s.send('ping by name', echo.address().port, 'host.test');
      expect(await got).toBe('ping by name');
      const err = await new Promise<Error | undefined>((resolve) => s.send('x', echo.address().port, 'nowhere.test', resolve));
      expect((err as { code?: string }).code).toBe('ENOTFOUND');
    } finally {
      s.close();
      echo.close();
    }
  });

  it('fetch over HTTPS by name checks the certificate against that name', async () => {
    const ca = createVendorCa('DNS test CA', 2);
    const leaf = issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: 'host.test', role: 'server', days: 2, dnsNames: ['host.test'] });
    const https = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem! }, (_req, res) => res.end('secure by name'));
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    const port = (https.address() as AddressInfo).port;
    try {
      expect(await (await fetch(`https://host.test:${port}/`, { ca: ca.certPem })).text()).toBe('secure by name');
      expect(await codeOfAsync(fetch(`https://www.test:${port}/`, { ca: ca.certPem }))).toBe('E_TLS_HOSTNAME'); // same address, another name
    } finally {
      https.close();
    }
  });
});
