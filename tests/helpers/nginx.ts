/**
 * nginx from Debian as a test peer, run as the test user with its own configuration in a temp
 * folder (`-p DIR -c DIR/nginx.conf`, `daemon off`, pid, logs and temp paths inside DIR,
 * 127.0.0.1 on a free port): no system service, nothing outside the folder.
 *
 * Configurations (generators, so a test can read or vary the text):
 *   - `mirrorSiteConf`: a static HTTPS site over a mirror folder (what a CDN or bucket does),
 *     dotfiles refused, one access-log line per request.
 *   - `passThroughConf`: the load balancer of docs/update-server.md "In front": the `stream`
 *     module passes TCP through to the replicas, which terminate TLS themselves, so mutual TLS
 *     identifies the device end to end. Needs Debian's libnginx-mod-stream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './ports';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX = '/usr/sbin/nginx';
export const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export { freePort };

/** The lines every configuration starts with: all paths inside `dir`. */
function head(dir: string, modules: string[] = []): string {
  return [
    ...modules.map((m) => `load_module ${m};`),
    // Run as root (CI containers), workers would drop to nobody and not read a 0700 temp folder.
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log;`,
    'events { worker_connections 1024; }',
  ].join('\n');
}

function temps(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/tmp/${t};`).join('\n  ');
}

export interface MirrorSite {
  port: number;
  /** The folder served at `/` (mirror folders below it, e.g. `/a/metadata/timestamp.json`). */
  root: string;
  certPath: string;
  keyPath: string;
}

export function mirrorSiteConf(dir: string, s: MirrorSite): string {
  return `${head(dir)}
http {
  ${temps(dir)}
  types { application/json json; }
  default_type application/octet-stream;
  log_format mirror '$remote_addr $request_method $uri $status $body_bytes_sent';
  access_log ${dir}/access.log mirror;
  sendfile on;
  server {
    listen 127.0.0.1:${s.port} ssl;
    ssl_certificate ${s.certPath};
    ssl_certificate_key ${s.keyPath};
    ssl_protocols TLSv1.2 TLSv1.3;
    root ${s.root};
    location ~ /\\. { return 404; }
    location ~ /timestamp\\.json$ { add_header Cache-Control no-cache; }
  }
}
`;
}

export interface PassThrough {
  port: number;
  /** Replica addresses, host:port; each terminates TLS with client certificates itself. */
  upstreams: string[];
}

export function passThroughConf(dir: string, p: PassThrough): string {
  return `${head(dir, [STREAM_MODULE])}
stream {
  log_format lb '$remote_addr $upstream_addr $status $bytes_sent $bytes_received';
  access_log ${dir}/access.log lb;
  upstream replicas {
${p.upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=2s;`).join('\n')}
  }
  server {
    listen 127.0.0.1:${p.port};
    proxy_pass replicas;
    proxy_connect_timeout 2s;
    # A replica that refuses the connection (killed) is skipped for the next one.
    proxy_next_upstream on;
  }
}
`;
}

export interface Nginx {
  dir: string;
  port: number;
  url: string;
  child: ChildProcess;
  /** Access-log lines so far. */
  accessLines(): string[];
  stop(): Promise<void>;
}

export function nginxAvailable(stream = false): boolean {
  return existsSync(NGINX) && (!stream || existsSync(STREAM_MODULE));
}

/** Start nginx with the configuration `conf(dir)` builds; resolves when it accepts connections on `port`. */
export async function startNginx(port: number, conf: (dir: string) => string, scheme = 'https'): Promise<Nginx> {
  if (!existsSync(NGINX)) throw new Error('nginx is not installed (.ci/setup installs Debian\'s nginx)');
  const dir = mkdtempSync(join(tmpdir(), 'signet-nginx-'));
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), conf(dir));
  const child = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' });
  const stop = (): Promise<void> => {
    const done = () => rmSync(dir, { recursive: true, force: true });
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(done());
    return new Promise((resolve) => {
      child.once('exit', () => resolve(done()));
      child.kill('SIGTERM');
    });
  };
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (up) {
      return {
        dir, port, url: `${scheme}://127.0.0.1:${port}`, child, stop,
        accessLines: () => (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8').split('\n').filter(Boolean) : []),
      };
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '';
  await stop();
  throw new Error('nginx did not start: ' + log);
}
