/**
 * One HTTPS request to a guest's forwarded port, https://localhost:PORT, with the server's
 * certificate checked against a CA file: curl when it is installed (a client that is not Node's),
 * else Node's https module. Used by the serving tests on arm64 and Xen.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const hasCurl = spawnSync('sh', ['-c', 'command -v curl']).status === 0;
/** Which client checks the certificate, for test names. */
export const HTTPS_CLIENT = hasCurl ? 'curl --cacert' : 'Node https';

export async function httpsToGuest(port: number, caFile: string, path: string, method = 'GET', body?: string): Promise<{ status: number; body: string }> {
  if (hasCurl) {
    const args = ['-sS', '--max-time', '120', '--cacert', caFile, '-X', method, '-w', '\n%{http_code}', ...(body !== undefined ? ['--data-binary', body] : []), `https://localhost:${port}${path}`];
    const r = spawnSync('curl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`curl failed (${r.status}): ${r.stderr.trim()}`);
    const cut = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', servername: 'localhost', port, path, method, ca: readFileSync(caFile), agent: false, timeout: 120_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('no HTTPS answer from the guest')));
    req.on('error', reject);
    req.end(body);
  });
}
