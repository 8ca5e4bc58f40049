// A small network service: HTTP on port 8080, the same over HTTPS on 8443 (a test certificate it
// carries), a UDP echo on port 7007, and timers whose order it logs; then it fetches over HTTPS
// from the servers in fetch-targets.ts, checked against its test CA. Runs on the device (Duktape,
// lowered to ES5, libuv and mbed TLS underneath) and under Node alike.
import { board, confirm, dgram, fetch, http, log, timers, version } from 'signet/runtime';
import { FETCH_TARGETS } from './fetch-targets';
import { TEST_CA_PEM, TEST_CERT_PEM, TEST_KEY_PEM } from './test-tls';
import { WIFI_NAME_PATH, wifiName } from './wifi-name';

export const HTTP_PORT = 8080;
export const HTTPS_PORT = 8443;
export const UDP_PORT = 7007;

const started = Date.now();
let requests = 0;

/** Timers set out of order fire by due time; equal due times in the order they were set. */
function timerOrder(): Promise<string[]> {
  return new Promise((resolve) => {
    const fired: string[] = [];
    let ticks = 0;
    timers.setTimeout(() => fired.push('t30'), 30);
    timers.setTimeout(() => fired.push('t10'), 10);
    timers.setTimeout(() => fired.push('t30b'), 30);
    const tick = timers.setInterval(() => {
      fired.push('tick' + ++ticks);
      if (ticks === 3) timers.clearInterval(tick);
    }, 2);
    timers.setTimeout(() => resolve(fired), 60);
  });
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  requests++;
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello from signet on ' + board + ' v' + version + '\n');
  } else if (req.method === 'GET' && req.url === '/status') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ service: 'http-hello', version, board, uptimeS: Math.floor((Date.now() - started) / 1000), requests }));
  } else if (req.method === 'POST' && req.url === '/echo') {
    const parts: Uint8Array[] = [];
    req.on('data', (d: Uint8Array) => parts.push(d));
    req.on('end', () => {
      res.setHeader('content-type', 'application/octet-stream');
      res.end(parts.length > 0 ? parts[0] : '');
    });
  } else if (req.url === WIFI_NAME_PATH && (req.method === 'GET' || req.method === 'PUT')) {
    wifiName(req, res);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }
}

async function main(): Promise<void> {
  log('app[TIMERS] ' + (await timerOrder()).join(' '));
  const server = http.createServer(handle);
  await new Promise<void>((resolve) => server.listen(HTTP_PORT, resolve));
  const secure = http.createServer({ tls: { cert: TEST_CERT_PEM, key: TEST_KEY_PEM } }, handle);
  await new Promise<void>((resolve) => secure.listen(HTTPS_PORT, resolve));
  const udp = dgram.createSocket('udp4', (msg, from) => udp.send(msg, from.port, from.address));
  await new Promise<void>((resolve) => udp.bind(UDP_PORT, resolve));
  log('app[SERVING] http=' + HTTP_PORT + ' https=' + HTTPS_PORT + ' udp=' + UDP_PORT);
  confirm();
  for (const t of FETCH_TARGETS) {
    try {
      const r = await fetch('https://10.0.2.2:' + t.port + '/from-guest', { ca: TEST_CA_PEM, servername: t.servername });
      log('app[FETCH] ' + t.port + ' ' + r.status + ' ' + (await r.text()));
    } catch (e) {
      log('app[FETCH] ' + t.port + ' refused ' + ((e as { code?: string }).code || String(e)));
    }
  }
}

main().catch((e: Error) => log('app[FAILED] ' + e.message));
