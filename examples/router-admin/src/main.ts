// The HTTPS admin service of a home router: GET /api/status, GET/PUT /api/config/wifi-name (in
// the device's config store) and a small page on /. Its TLS key and certificate are per device,
// written into the state partition by `signet device provision --issue` (issued by the vendor CA),
// never carried in the image: without them the service says so and does not confirm the boot.
import { board, config, confirm, http, log, version } from 'signet/runtime';
import { json, WIFI_NAME_PATH, wifiName } from '../../http-hello/src/wifi-name';

export const HTTPS_PORT = 443;
const started = Date.now();

const PAGE =
  '<!doctype html><html><head><meta charset="utf-8"><title>Router admin</title></head><body>' +
  '<h1>Router admin</h1><p>Status: <code id="s">…</code></p>' +
  '<form id="f"><label>Wi-Fi name <input id="n" maxlength="32" required></label> <button>Save</button></form>' +
  '<script>' +
  "function load(){fetch('/api/status').then(function(r){return r.json()}).then(function(j){document.getElementById('s').textContent=JSON.stringify(j)});" +
  "fetch('" + WIFI_NAME_PATH + "').then(function(r){return r.json()}).then(function(j){document.getElementById('n').value=j['wifi-name']||''})}" +
  "document.getElementById('f').onsubmit=function(e){e.preventDefault();fetch('" + WIFI_NAME_PATH + "',{method:'PUT',body:document.getElementById('n').value}).then(load)};load();" +
  '</script></body></html>\n';

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  } else if (req.method === 'GET' && req.url === '/api/status') {
    json(res, 200, { service: 'router-admin', version, board, uptimeS: Math.floor((Date.now() - started) / 1000) });
  } else if (req.url === WIFI_NAME_PATH && (req.method === 'GET' || req.method === 'PUT')) {
    wifiName(req, res);
  } else {
    json(res, 404, { error: 'E_NOT_FOUND' });
  }
}

/** The device's TLS key and certificate from the config store, or undefined (logged) when missing. */
function provisionedTls(): { cert: string; key: string } | undefined {
  try {
    return { cert: config.file('admin.crt'), key: config.secret('admin.key') };
  } catch (e) {
    const code = (e as { code?: string }).code || 'E_CONFIG';
    log('app[NO-TLS] ' + code + ': no TLS key and certificate on this device — run `signet device provision --issue` on its disk');
    return undefined;
  }
}

function main(): void {
  const tls = provisionedTls();
  if (!tls) return; // not confirmed: the boot stays a trial, the fallback applies
  const server = http.createServer({ tls }, handle);
  server.listen(HTTPS_PORT, () => {
    log('app[SERVING] https=' + HTTPS_PORT);
    confirm();
  });
}

main();
