// The guest brings up its own network, for real: a qemu-virt-arm64 guest on QEMU's user network
// (`signet run --net user`, U-Boot verified boot) gets its address by DHCP from QEMU's server
// (host/init log it, the service sees it with networkInfo(), and its DNS server, 10.0.2.3, from
// DHCP's option 6); then the service points its resolver at a DNS server this test runs on the
// host's loopback (the guest reaches it as 10.0.2.2:PORT; never 10.0.2.3, which would forward to
// this machine's real resolver), looks a name up, and fetches by name over HTTP and HTTPS from
// servers here. A second boot of the same image with a board that gives a static address and
// its own DNS server still works as before. Two boots.
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
import { issueCertificate } from '../sdk/keys/device-x509';
import { createVendorCa } from '../sdk/keys/x509';
import { CLI, ROOT, signet } from './helpers/cli';
import { startDnsServer, type DnsTestServer } from './helpers/dns-server';

const board = loadBoard('qemu-virt-arm64');
const available = existsSync(board.qemu!.firmware!) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
const cacheRoot = process.env.SIGNET_CACHE ?? join(ROOT, '.cache', 'signet');
const BOOT_TIMEOUT = 600_000; // TCG on a loaded 2-core machine; a liveness bound only
const NAME = 'signet-host.test';

/** The service: prints what it sees of its network, then (DHCP boot) resolves and fetches by name. */
const MAIN = `import { dns, exit, fetch, log, networkInfo } from 'signet/runtime';
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

describe.skipIf(!available)('a qemu-virt-arm64 guest brings up its network: DHCP, DNS servers, lookups by name', () => {
  let work: string;
  let dnsServer: DnsTestServer;
  let http: Server;
  let https: HttpsServer;
  let dhcpConsole = '';
  let staticConsole = '';
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
    ok(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', join(work, 'static.img')], { timeout: 300_000, env: { SIGNET_BOARDS: boards } }));

    dhcpConsole = await boot(join(work, 'dhcp.img'), join(work, 'pub.dtb'));
    staticConsole = await boot(join(work, 'static.img'), join(work, 'pub.dtb'), { SIGNET_BOARDS: boards });
  }, 2 * BOOT_TIMEOUT + 300_000);

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
