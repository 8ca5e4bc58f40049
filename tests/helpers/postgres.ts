/**
 * A throw-away PostgreSQL cluster for tests and benchmarks: Debian's postgresql (initdb and
 * pg_ctl from /usr/lib/postgresql/N/bin) in a temp folder, listening on 127.0.0.1 on a free
 * port and on a unix socket in that folder, trust authentication, no system service. Started
 * once per process on first use (`sharedPostgres()`), each caller gets its own database, and
 * `stopPostgres()` (afterAll) stops the cluster and removes the folder.
 *
 * PostgreSQL refuses to run as root: as root, the cluster runs as `nobody` (runuser).
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { freePort } from './ports';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PgCluster {
  dir: string;
  port: number;
  /** The URL of database `db` (default postgres) as the cluster's superuser. */
  url(db?: string): string;
  /** A new empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  stop(): Promise<void>;
}

const USER = 'signet';

/** The newest installed PostgreSQL's bin folder, or null when none is installed. */
export function postgresBin(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(base, versions[0], 'bin') : null;
}

function run(cmd: string, args: string[], asNobody: boolean): Promise<string> {
  const [file, argv] = asNobody ? ['runuser', ['-u', 'nobody', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: 60_000, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(String(stdout));
    });
  });
}


let dbCounter = 0;

export async function startPostgres(): Promise<PgCluster> {
  const bin = postgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed (/usr/lib/postgresql/N/bin); run bash .ci/setup');
  const asNobody = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'signet-pg-'));
  if (asNobody) chownSync(dir, 65534, 65534);
  const data = join(dir, 'data');
  await run(join(bin, 'initdb'), ['-D', data, '-U', USER, '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'], asNobody);
  const port = await freePort();
  const opts = [`-p ${port}`, `-k ${dir}`, "-c listen_addresses='127.0.0.1'", '-c fsync=off', '-c synchronous_commit=off',
    '-c full_page_writes=off', '-c max_connections=200'].join(' ');
  await run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', opts, '-w', '-t', '60', 'start'], asNobody);
  const url = (db = 'postgres') => `postgres://${USER}@127.0.0.1:${port}/${db}`;
  return {
    dir, port, url,
    async createDatabase(name) {
      const db = name ?? `t${process.pid}_${++dbCounter}`;
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${db}"`);
      } finally {
        await c.end();
      }
      return url(db);
    },
    async stop() {
      await run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], asNobody).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let shared: Promise<PgCluster> | null = null;

/** One cluster for this process, started on first use. */
export function sharedPostgres(): Promise<PgCluster> {
  shared ??= startPostgres();
  return shared;
}

export async function stopPostgres(): Promise<void> {
  if (!shared) return;
  const p = shared;
  shared = null;
  await (await p).stop();
}
