// The guest brings up its own network, for real: a qemu-virt-arm64 guest on QEMU's user network
// (`signet run --net user`, U-Boot verified boot) gets its address by DHCP from QEMU's server
// (host/init log it, the service sees it with networkInfo(), and its DNS server, 10.0.2.3, from
// DHCP's option 6); then the service points its resolver at a DNS server this test runs on the
// host's loopback (the guest reaches it as 10.0.2.2:PORT; never 10.0.2.3, which would forward to
// this machine's real resolver), looks a name up, and fetches by name over HTTP and HTTPS from
// servers here. A second boot of the same image with a board that gives a static address and
// its own DNS server still works as before. Then two direct boots whose network card's far end is
// this test (QEMU socket netdev on loopback, tests/helpers/dhcp-l2.ts): nobody answering DHCP
// (the boot goes on without an address), and a scripted server (garbage, a short lease, a
// renewal, a NAK). Four boots.
//
// Timeouts are liveness bounds, not assertions.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '../sdk/board';
import { startArm64 } from '../sdk/disk/run-arm64';
import { issueCertificate } from '../sdk/keys/device-x509';
import { createVendorCa } from '../sdk/keys/x509';
import { CLI, ROOT, signet } from './helpers/cli';
import { startDhcpWire, type DhcpRequest, type DhcpWire } from './helpers/dhcp-l2';
import { startDnsServer, type DnsTestServer } from './helpers/dns-server';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 600_000; // TCG on a loaded 2-core machine; a liveness bound only
const NAME = 'signet-host.test';

/** The service: prints what it sees of its network, then (DHCP boot) resolves and fetches by name. */
const MAIN = `import { dns, exit, fetch, log, networkInfo, timers } from 'signet/runtime';
import { CA_PEM, DNS_PORT, HTTP_PORT, HTTPS_PORT } from './targets';

function codeOf(e: unknown): string {
  return String((e as { code?: string }).code);
}

async function main(): Promise<void> {
  const info = networkInfo();
  log('app[NET] ' + JSON.stringify(info));
  log('app[DNS-SERVERS] ' + dns.getServers().join(','));
  if (!info || info.source !== 'dhcp') {
    exit(0);
    return;
  }
  if (info.dns.join() !== '10.0.2.3') {
    // Not QEMU's user net (the socket boots): report every change. Without an address a lookup
    // cannot even be sent: it fails at once with the system's reason.
    if (info.address === null) {
      dns.setServers(['10.9.8.7']);
      dns.lookup('${NAME}', function (err) {
        log('app[NO-NET-LOOKUP] ' + (err ? codeOf(err) : 'answered'));
      });
    }
    let last = JSON.stringify(info);
    let ticks = 0;
    const t = timers.setInterval(function () {
      const now = JSON.stringify(networkInfo());
      if (now !== last) log('app[NET-NOW] ' + now);
      last = now;
      if (++ticks === 240) {
        timers.clearInterval(t);
        exit(0);
      }
    }, 250);
    return;
  }
  // The test's DNS server on the host's loopback, never the user network's own 10.0.2.3.
  dns.setServers(['10.0.2.2:' + DNS_PORT]);
  const a = await dns.promises.lookup('${NAME}');
  log('app[LOOKUP] ' + JSON.stringify(a));
  log('app[LOCALHOST] ' + JSON.stringify(await dns.promises.lookup('localhost')));
  try {
    await dns.promises.lookup('missing.test');
    log('app[MISSING] found');
  } catch (e) {
    log('app[MISSING] ' + codeOf(e));
  }
  const r = await fetch('http://${NAME}:' + HTTP_PORT + '/by-name');
  log('app[FETCH-NAME] ' + r.status + ' ' + (await r.text()));
  const s = await fetch('https://${NAME}:' + HTTPS_PORT + '/tls-by-name', { ca: CA_PEM });
  log('app[FETCH-TLS-NAME] ' + s.status + ' ' + (await s.text()));
  exit(0);
}

main().then(undefined, function (e) {
  log('app[FAILED] ' + codeOf(e) + ' ' + String(e));
  exit(1);
});
`;

/** One `signet run` to its end (the service exits, the guest powers off); the console. */
function boot(disk: string, keyDtb: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const run = spawn(process.execPath, [CLI, 'run', disk, '--board', board.id, '--key-dtb', keyDtb, '--net', 'user', '--halt', '--timeout', String(BOOT_TIMEOUT / 1000)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    run.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    run.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    run.on('error', reject);
    run.on('exit', () => resolve(out));
  });
}

/**
 * A direct boot (no U-Boot) whose network card's other end is `wire` (QEMU socket netdev on
 * loopback) instead of QEMU's user net; returns the console once `until` shows, then stops it.
 */
async function bootOnWire(disk: string, keyDtb: string, wire: DhcpWire, until: RegExp): Promise<string> {
  let out = '';
  const started = await startArm64({ board, disk, direct: true, keyDtb: readFileSync(keyDtb), halt: true, extraArgs: wire.qemuArgs, onOutput: (c) => (out += c) });
  try {
    await started.guest.waitFor(until, BOOT_TIMEOUT);
  } finally {
    await started.guest.close();
    started.cleanup();
  }
  return out;
}

describe.skipIf(!available)('a qemu-virt-arm64 guest brings up its network: DHCP, DNS servers, lookups by name', () => {
  let work: string;
  let dnsServer: DnsTestServer;
  let http: Server;
  let https: HttpsServer;
  let dhcpConsole = '';
  let staticConsole = '';
  let silentConsole = '';
  let scriptedConsole = '';
  let silentRequests: DhcpRequest[] = [];
  let scriptedRequests: DhcpRequest[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    mkdirSync(cacheRoot, { recursive: true });
    work = mkdtempSync(join(cacheRoot, 'guest-network-'));
    const ok = (r: { code: number; stderr: string; stdout: string }) => expect(r.code, r.stderr + r.stdout).toBe(0);
    // The host side: a DNS server answering NAME with the host as the guest sees it, and HTTP(S)
    // servers on loopback; the certificate names NAME, from a CA the service carries.
    dnsServer = await startDnsServer({ [NAME]: { a: ['10.0.2.2'] } });
    const ca = createVendorCa('Guest network test CA', 2);
    const leaf = issueCertificate({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, commonName: NAME, role: 'server', days: 2, dnsNames: [NAME] });
    http = createServer((req, res) => {
      requests.push(`http ${req.url} ${req.headers.host}`);
      res.end('hello ' + req.headers.host);
    });
    https = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem! }, (req, res) => {
      requests.push(`https ${req.url} ${req.headers.host}`);
      res.end('secure hello ' + req.headers.host);
    });
    await Promise.all([new Promise<void>((r) => http.listen(0, '127.0.0.1', r)), new Promise<void>((r) => https.listen(0, '127.0.0.1', r))]);

    const keys = join(work, 'keys');
    ok(signet(['keys', 'init', '--dir', keys]));
    const project = join(work, 'net-probe');
    mkdirSync(join(project, 'src'), { recursive: true });
    cpSync(join(ROOT, 'examples', 'hello', 'signet.json'), join(project, 'signet.json'));
    writeFileSync(join(project, 'signet.json'), readFileSync(join(project, 'signet.json'), 'utf8').replace('"hello"', '"net-probe"'));
    writeFileSync(join(project, 'tsconfig.json'), readFileSync(join(ROOT, 'examples', 'hello', 'tsconfig.json'), 'utf8').replace('../../sdk/', join(ROOT, 'sdk') + '/'));
    writeFileSync(join(project, 'src', 'main.ts'), MAIN);
    writeFileSync(join(project, 'src', 'targets.ts'), [
      `export const DNS_PORT = ${dnsServer.port};`,
      `export const HTTP_PORT = ${(http.address() as AddressInfo).port};`,
      `export const HTTPS_PORT = ${(https.address() as AddressInfo).port};`,
      `export const CA_PEM = ${JSON.stringify(ca.certPem)};`,
      '',
    ].join('\n'));
    const app = join(work, 'net-probe.simg');
    ok(signet(['build', '--project', project, '--version', '1.2.3', '--security-counter', '1', '--keys', keys, '--out', app]));

    // Disk 1: the board as it ships (no network field: DHCP). Disk 2: the same board id from a
    // folder named by SIGNET_BOARDS, with a static address and the board's own DNS server.
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', join(work, 'dhcp.img'), '--key-dtb', join(work, 'pub.dtb')], { timeout: 300_000 }));
    const boards = join(work, 'boards');
    mkdirSync(join(boards, board.id), { recursive: true });
    writeFileSync(join(boards, board.id, 'board.json'), JSON.stringify({ ...board, network: { address: '10.0.2.15/24', gateway: '10.0.2.2', dns: ['10.0.2.2'] } }, null, 2));
    // The same kernel fragment: the copy builds (finds in the cache) the board's minimal kernel.
    const fragment = join(ROOT, 'boards', board.id, 'kernel.config');
    if (existsSync(fragment)) cpSync(fragment, join(boards, board.id, 'kernel.config'));
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', join(work, 'static.img')], { timeout: 300_000, env: { SIGNET_BOARDS: boards } }));

    dhcpConsole = await boot(join(work, 'dhcp.img'), join(work, 'pub.dtb'));
    staticConsole = await boot(join(work, 'static.img'), join(work, 'pub.dtb'), { SIGNET_BOARDS: boards });

    // A network where nobody answers DHCP: the boot goes on without an address.
    const silent = await startDhcpWire();
    try {
      silentConsole = await bootOnWire(join(work, 'dhcp.img'), join(work, 'pub.dtb'), silent, /app\[NO-NET-LOOKUP\] [^\r\n]*\r?\n/);
      silentRequests = silent.requests;
    } finally {
      await silent.close();
    }

    // A scripted DHCP server: garbage first, then an offer; a 12 s lease (T1 4 s, T2 8 s), one
    // renewal granted, the next refused (NAK), then silence.
    const scripted = await startDhcpWire();
    const lease = { yiaddr: '10.0.3.15', server: '10.0.3.1', mask: '255.255.255.0', router: '10.0.3.1', dns: ['10.0.3.53'], lease: 12, t1: 4, t2: 8 };
    let renewals = 0;
    scripted.onRequest = (r) => {
      if (r.type === 1 && scripted.requests.filter((x) => x.type === 1).length === 1) {
        const bad = Buffer.alloc(300);
        bad.writeUInt32BE(0x02010600, 0);
        bad.writeUInt32BE(r.xid, 4);
        r.mac.copy(bad, 28);
        bad.writeUInt32BE(0x63825363, 236);
        Buffer.from([53, 1, 2, 54, 4, 10, 0, 3, 1, 6, 200, 1, 2]).copy(bad, 240); // option 6 runs past the end
        scripted.raw(bad.subarray(0, 253));
        scripted.reply(r, 2, { ...lease, router: '10.9.9.9' }); // router off the subnet
        scripted.reply({ ...r, xid: (r.xid ^ 1) >>> 0 }, 2, lease); // another transaction: dropped silently
        scripted.reply(r, 2, lease);
      } else if (r.type === 3 && r.ciaddr === '0.0.0.0' && r.requested === lease.yiaddr && renewals === 0) {
        scripted.reply(r, 5, lease);
      } else if (r.type === 3 && r.ciaddr === lease.yiaddr) {
        scripted.reply(r, renewals++ === 0 ? 5 : 6, lease);
      }
    };
    try {
      scriptedConsole = await bootOnWire(join(work, 'dhcp.img'), join(work, 'pub.dtb'), scripted, /eth0 dhcp: no answer after 3 tries[^\r\n]*\r?\n/);
      scriptedRequests = scripted.requests;
    } finally {
      await scripted.close();
    }
  }, 4 * BOOT_TIMEOUT + 300_000);

  afterAll(async () => {
    await dnsServer?.close();
    http?.close();
    https?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('gets its address, router and DNS server by DHCP from QEMU user net, logged by /init', () => {
    expect(dhcpConsole, dhcpConsole.slice(-3000)).toContain('boot[OK] slot=a version=1.2.3');
    expect(dhcpConsole).toMatch(/host\[NET\] eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2 dhcp server=10\.0\.2\.2 lease=\d+s dns=10\.0\.2\.3\r?\n/);
    expect(dhcpConsole).not.toMatch(/host\[(WARN|ERROR)\]|app\[FAILED\]/);
  });

  it('the service sees the lease and the DNS server DHCP named', () => {
    const info = JSON.parse(/app\[NET\] (.*)/.exec(dhcpConsole)![1]!);
    expect(info).toMatchObject({ interface: 'eth0', source: 'dhcp', address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2', dns: ['10.0.2.3'], dhcpServer: '10.0.2.2' });
    expect(info.leaseSeconds).toBeGreaterThan(0);
    expect(dhcpConsole).toMatch(/app\[DNS-SERVERS\] 10\.0\.2\.3\r?\n/);
  });

  it('resolves a name through the DNS server it was pointed at (10.0.2.2:PORT, this host) and nothing else', () => {
    expect(dhcpConsole).toContain('app[LOOKUP] {"address":"10.0.2.2","family":4}');
    expect(dhcpConsole).toContain('app[LOCALHOST] {"address":"127.0.0.1","family":4}');
    expect(dhcpConsole).toContain('app[MISSING] ENOTFOUND');
    // Asked: the name (twice more for the fetches, no cache) and the missing one; never localhost.
    expect([...new Set(dnsServer.questions)].sort()).toEqual(['missing.test A', `${NAME} A`]);
  });

  it('fetches by name over HTTP and HTTPS (the certificate checked against the name)', () => {
    const httpPort = (http.address() as AddressInfo).port;
    const httpsPort = (https.address() as AddressInfo).port;
    expect(dhcpConsole).toContain(`app[FETCH-NAME] 200 hello ${NAME}:${httpPort}`);
    expect(dhcpConsole).toContain(`app[FETCH-TLS-NAME] 200 secure hello ${NAME}:${httpsPort}`);
    expect(requests).toEqual([`http /by-name ${NAME}:${httpPort}`, `https /tls-by-name ${NAME}:${httpsPort}`]);
  });

  it('on a network where nobody answers: three DISCOVERs, a clear line, and the boot stage and service still run', () => {
    expect(silentRequests.map((r) => r.type)).toEqual([1, 1, 1]);
    expect(silentConsole).toMatch(/host\[NET\] eth0 dhcp: no answer after 3 tries; going on without an address, asking again every 60 s\r?\n[\s\S]*boot\[OK\] slot=a version=1\.2\.3/);
    expect(JSON.parse(/app\[NET\] (.*)/.exec(silentConsole)![1]!)).toEqual({ interface: 'eth0', source: 'dhcp', address: null, prefix: null, gateway: null, dns: [] });
    // A lookup fails with why it could not be sent (no route), not after its tries time out.
    expect(silentConsole).toMatch(/app\[NO-NET-LOOKUP\] ENETUNREACH\r?\n/);
  });

  it('refuses hostile answers, takes a lease, renews it from its server, and starts over on a NAK', () => {
    expect(scriptedConsole).toContain('host[WARN] network: dhcp: refused an answer on eth0: E_DHCP_OPTION');
    expect(scriptedConsole).toContain('host[WARN] network: dhcp: refused an answer on eth0: E_DHCP_ADDRESS');
    expect(scriptedConsole).not.toContain('E_DHCP_XID'); // another client's answer is not news
    expect(scriptedConsole).toMatch(/host\[NET\] eth0 10\.0\.3\.15\/24 via 10\.0\.3\.1 dhcp server=10\.0\.3\.1 lease=12s dns=10\.0\.3\.53\r?\n/);
    expect(scriptedConsole).toContain('host[NET] eth0 dhcp renewed 10.0.3.15 lease=12s');
    expect(scriptedConsole).toContain('host[NET] eth0 dhcp: the server refused 10.0.3.15 (NAK); asking again');
    // The renewals went to the server itself (unicast, ciaddr set), not to everyone.
    const renews = scriptedRequests.filter((r) => r.type === 3 && r.ciaddr === '10.0.3.15');
    expect(renews.length).toBe(2);
    for (const r of renews) expect([r.to, r.requested]).toEqual(['10.0.3.1', '']);
    // The service saw the lease, then the address go.
    const first = JSON.parse(/app\[NET\] (.*)/.exec(scriptedConsole)![1]!);
    expect(first).toMatchObject({ source: 'dhcp', address: '10.0.3.15', prefix: 24, gateway: '10.0.3.1', dns: ['10.0.3.53'], dhcpServer: '10.0.3.1', leaseSeconds: 12 });
    const later = [...scriptedConsole.matchAll(/app\[NET-NOW\] (.*)/g)].map((m) => JSON.parse(m[1]!));
    expect(later.at(-1)).toMatchObject({ address: null, dns: [] });
  });

  it('with a static board: the address from the board file, its DNS server, no DHCP', () => {
    expect(staticConsole, staticConsole.slice(-3000)).toContain('boot[OK] slot=a version=1.2.3');
    expect(staticConsole).toMatch(/host\[NET\] eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2 dns=10\.0\.2\.2\r?\n/);
    expect(staticConsole).not.toMatch(/host\[NET\].*dhcp/);
    const info = JSON.parse(/app\[NET\] (.*)/.exec(staticConsole)![1]!);
    expect(info).toEqual({ interface: 'eth0', source: 'static', address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2', dns: ['10.0.2.2'] });
    expect(staticConsole).toMatch(/app\[DNS-SERVERS\] 10\.0\.2\.2\r?\n/);
    expect(staticConsole).not.toMatch(/host\[(WARN|ERROR)\]|app\[FAILED\]/);
  });
});
