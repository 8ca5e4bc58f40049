// GET/PUT /api/config/wifi-name: a Wi-Fi network name kept in the device's config store across
// reboots, validated and size-capped. Shared by examples/http-hello and examples/router-admin.
import { config, type http } from 'signet/runtime';

export const WIFI_NAME_PATH = '/api/config/wifi-name';
/** A Wi-Fi network name: 1-32 printable ASCII characters (an 802.11 SSID is at most 32 bytes). */
const WIFI_NAME = /^[\x20-\x7e]{1,32}$/;
const MAX_BODY = 256;

export function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** GET/PUT /api/config/wifi-name: a setting kept in the device's config store across reboots. */
export function wifiName(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method === 'GET') {
    json(res, 200, { 'wifi-name': config.get('wifi-name') ?? null });
    return;
  }
  let body = '';
  let tooBig = false;
  req.on('data', (d: Uint8Array) => {
    for (let i = 0; i < d.length && !tooBig; i++) {
      body += String.fromCharCode(d[i]);
      if (body.length > MAX_BODY) tooBig = true;
    }
  });
  req.on('end', () => {
    if (tooBig) return json(res, 413, { error: 'E_TOO_LARGE' });
    const name = body; // one character per byte: anything outside printable ASCII is refused
    if (!WIFI_NAME.test(name)) return json(res, 400, { error: 'E_WIFI_NAME' });
    try {
      config.set('wifi-name', name);
    } catch (e) {
      return json(res, 500, { error: (e as { code?: string }).code || 'E_CONFIG' });
    }
    json(res, 200, { 'wifi-name': name });
  });
}
