/**
 * PostgreSQL storage (`signet server --db postgres://…`): everything SqliteStorage keeps, in
 * one database that several stateless server replicas share. Blobs live in the database too
 * (1 MiB bytea chunks), so a replica needs no shared folder and a blob commits like any row.
 *
 * Concurrency (docs/update-server.md "PostgreSQL and replicas"):
 * - schema migrations run at start-up under a session advisory lock, one replica at a time;
 *   `schema_version` records what was applied, so a later replica applies nothing;
 * - a report, its count and the halt it may cause are one transaction holding the rollout's
 *   row lock (SELECT … FOR UPDATE), so every replica counts the same reports in one order;
 * - the repository's writers (publish, root update, snapshot/timestamp signing) run under
 *   `exclusive()`, a session advisory lock, so two replicas never sign the same version.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { MetadataRole } from '../sdk/ota/repository';
import { ServerError } from './errors';
import { LastSeenBatch } from './last-seen';
import { ReadBatch } from './read-batch';
import {
  emptyCounts, type AuditRecord, type BlobCheck, type HaltAudit, type HaltRule, type CheckinState, type BlobStore, type DeviceCheckin, type DeviceRecord, type FleetRow, type MetadataRecord,
  type RevocationRecord, type RolloutCounts, type RolloutDeviceRecord, type RolloutPatch, type RolloutRecord, type RolloutState, type Storage,
  type TargetRecord, type UpdateStatus,
} from './storage';

/** Each entry is one schema version, applied in order in its own transaction. */
export const MIGRATIONS: string[] = [
  // 1: the schema of SQLite schema 2, in PostgreSQL types.
  `CREATE TABLE metadata (role TEXT NOT NULL, version INTEGER NOT NULL, bytes BYTEA NOT NULL, created_at BIGINT NOT NULL,
     PRIMARY KEY (role, version));
   CREATE TABLE targets (name TEXT NOT NULL, sha256 TEXT NOT NULL, length BIGINT NOT NULL, board TEXT NOT NULL, version TEXT NOT NULL,
     security_counter BIGINT NOT NULL, app TEXT NOT NULL, targets_version INTEGER NOT NULL, created_at BIGINT NOT NULL,
     PRIMARY KEY (name, sha256));
   CREATE TABLE devices (id TEXT PRIMARY KEY, board TEXT NOT NULL, version TEXT NOT NULL, security_counter BIGINT NOT NULL,
     slot TEXT NOT NULL, channel TEXT NOT NULL, status TEXT, first_seen BIGINT NOT NULL, last_checkin BIGINT NOT NULL,
     last_error TEXT, last_error_at BIGINT, cert_serial TEXT);
   CREATE INDEX devices_board ON devices (board, channel);
   CREATE TABLE revocations (id TEXT PRIMARY KEY, reason TEXT NOT NULL, at BIGINT NOT NULL);
   CREATE TABLE rollouts (seq BIGINT PRIMARY KEY, id TEXT UNIQUE NOT NULL, board TEXT NOT NULL, channel TEXT NOT NULL,
     version TEXT NOT NULL, target TEXT NOT NULL, percent INTEGER NOT NULL, halt_failure_rate DOUBLE PRECISION NOT NULL,
     min_devices INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
   CREATE TABLE rollout_devices (rollout_id TEXT NOT NULL, device_id TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
     code TEXT, updated_at BIGINT NOT NULL, PRIMARY KEY (rollout_id, device_id));
   CREATE INDEX rollout_devices_target ON rollout_devices (device_id, target, status);
   CREATE TABLE audit (seq BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
     subject TEXT NOT NULL, detail TEXT NOT NULL);
   CREATE INDEX audit_at ON audit (at);`,
  // 2: target blobs, content-addressed, in chunks (a Range read fetches only the chunks it needs).
  `CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, length BIGINT NOT NULL, stored_at BIGINT NOT NULL);
   CREATE TABLE blob_chunks (sha256 TEXT NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE, idx INTEGER NOT NULL,
     bytes BYTEA NOT NULL, PRIMARY KEY (sha256, idx));
   ALTER TABLE blob_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;`,
  // 3: the boot image a device with A/B boot slots runs (as SQLite schema 3).
  `ALTER TABLE devices ADD COLUMN boot_version TEXT, ADD COLUMN boot_counter BIGINT, ADD COLUMN boot_slot TEXT;`,
];

/** Advisory lock keys (pg_advisory_lock takes a bigint): one for migrations, one for the repository's writers. */
const LOCK_MIGRATE = 0x5349474e01; // "SIGN" 1
const LOCK_REPOSITORY = 0x5349474e02;

const CHUNK = 1024 * 1024;
const SHA256 = /^[0-9a-f]{64}$/;

/** int8 (COUNT, BIGINT columns) as a JS number: every value here is far below 2^53. */
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}

interface Row { [k: string]: unknown }
type Db = pg.Pool | pg.PoolClient;

function rolloutOf(r: Row): RolloutRecord {
  return {
    id: r.id as string, board: r.board as string, channel: r.channel as string, version: r.version as string, target: r.target as string,
    percent: r.percent as number, haltFailureRate: r.halt_failure_rate as number, minDevices: r.min_devices as number,
    state: r.state as RolloutState, reason: r.reason as string | null, createdAt: r.created_at as number, updatedAt: r.updated_at as number,
  };
}

function deviceOf(r: Row): DeviceRecord {
  return {
    id: r.id as string, board: r.board as string, version: r.version as string, securityCounter: r.security_counter as number,
    slot: r.slot as string, channel: r.channel as string, status: r.status as string | null, firstSeen: r.first_seen as number,
    lastCheckin: r.last_checkin as number, lastError: r.last_error as string | null, lastErrorAt: r.last_error_at as number | null,
    certSerial: r.cert_serial as string | null,
    boot: r.boot_version !== null && r.boot_version !== undefined
      ? { version: r.boot_version as string, securityCounter: (r.boot_counter as number | null) ?? 0, slot: (r.boot_slot as string | null) ?? '' }
      : null,
  };
}

function metaOf(r: Row): MetadataRecord {
  return { role: r.role as MetadataRole, version: r.version as number, bytes: new Uint8Array(r.bytes as Buffer), createdAt: r.created_at as number };
}

async function countsOf(db: Db, rolloutId: string): Promise<RolloutCounts> {
  const counts = emptyCounts();
  const { rows } = await db.query('SELECT status, COUNT(*) AS n FROM rollout_devices WHERE rollout_id = $1 GROUP BY status', [rolloutId]);
  for (const r of rows) if (r.status in counts) counts[r.status as UpdateStatus] = r.n;
  return counts;
}

/** Run `f` in one transaction on one pooled connection; rolled back if it throws. */
async function insertAudit(c: pg.Pool | pg.PoolClient, r: Omit<AuditRecord, 'seq'>): Promise<void> {
  await c.query('INSERT INTO audit (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)',
    [r.at, r.actor, r.action, r.subject, JSON.stringify(r.detail)]);
}

async function transaction<T>(pool: pg.Pool, f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const out = await f(c);
    await c.query('COMMIT');
    return out;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

class PostgresBlobs implements BlobStore {
  constructor(private readonly pool: pg.Pool) {}

  private check(sha256: string): void {
    if (!SHA256.test(sha256)) throw new ServerError('E_BAD_REQUEST', 'not a SHA-256: ' + sha256.slice(0, 80));
  }

  async put(sha256: string, length: number, body: AsyncIterable<Uint8Array>, check?: BlobCheck): Promise<'stored' | 'existed'> {
    this.check(sha256);
    const existed = (await this.stat(sha256)) !== null;
    const hash = createHash('sha256');
    const parts: Uint8Array[] = [];
    let n = 0;
    for await (const chunk of body) {
      n += chunk.length;
      // The cap is enforced while streaming, never after buffering.
      if (n > length) throw new ServerError('E_UPLOAD_MISMATCH', `upload is longer than the announced ${length} bytes`);
      hash.update(chunk);
      if (!existed) parts.push(chunk);
    }
    if (n !== length) throw new ServerError('E_UPLOAD_MISMATCH', `upload ended after ${n} of ${length} bytes`);
    const got = hash.digest('hex');
    if (got !== sha256) throw new ServerError('E_UPLOAD_MISMATCH', `uploaded bytes hash to ${got.slice(0, 16)}…, not ${sha256.slice(0, 16)}…`);
    const now = Math.floor(Date.now() / 1000);
    if (existed) {
      // Held bytes uploaded again are about to be published: restart the collector's grace period.
      await this.pool.query('UPDATE blobs SET stored_at = $2 WHERE sha256 = $1', [sha256, now]);
      return 'existed';
    }
    const bytes = Buffer.concat(parts);
    if (check) await check(new Uint8Array(bytes));
    return transaction(this.pool, async (c) => {
      // Two replicas storing the same bytes at once: the second finds the first's row.
      const ins = await c.query('INSERT INTO blobs (sha256, length, stored_at) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING', [sha256, length, now]);
      if (ins.rowCount === 0) return 'existed' as const;
      for (let i = 0, idx = 0; i < bytes.length || idx === 0; i += CHUNK, idx++) {
        await c.query('INSERT INTO blob_chunks (sha256, idx, bytes) VALUES ($1, $2, $3)', [sha256, idx, bytes.subarray(i, i + CHUNK)]);
      }
      return 'stored' as const;
    });
  }

  async list(): Promise<{ sha256: string; length: number; storedAt: number }[]> {
    const { rows } = await this.pool.query('SELECT sha256, length, stored_at FROM blobs ORDER BY sha256');
    return rows.map((r) => ({ sha256: r.sha256, length: r.length, storedAt: r.stored_at }));
  }

  async remove(sha256: string): Promise<void> {
    this.check(sha256);
    await this.pool.query('DELETE FROM blobs WHERE sha256 = $1', [sha256]);
  }

  async stat(sha256: string): Promise<{ length: number } | null> {
    this.check(sha256);
    const { rows } = await this.pool.query('SELECT length FROM blobs WHERE sha256 = $1', [sha256]);
    return rows.length ? { length: rows[0].length } : null;
  }

  async *read(sha256: string, start: number, end: number): AsyncIterable<Uint8Array> {
    this.check(sha256);
    const first = Math.floor(start / CHUNK);
    const last = Math.floor(end / CHUNK);
    for (let idx = first; idx <= last; idx++) {
      const { rows } = await this.pool.query('SELECT bytes FROM blob_chunks WHERE sha256 = $1 AND idx = $2', [sha256, idx]);
      if (!rows.length) throw new ServerError('E_NOT_FOUND', `blob ${sha256.slice(0, 16)}… has no chunk ${idx}`);
      const b = rows[0].bytes as Buffer;
      const from = idx === first ? start - idx * CHUNK : 0;
      const to = idx === last ? end - idx * CHUNK + 1 : b.length;
      yield new Uint8Array(b.subarray(from, to));
    }
  }

  async readAll(sha256: string): Promise<Uint8Array> {
    this.check(sha256);
    const { rows } = await this.pool.query('SELECT bytes FROM blob_chunks WHERE sha256 = $1 ORDER BY idx', [sha256]);
    if (!rows.length) throw new ServerError('E_NOT_FOUND', `no blob ${sha256.slice(0, 16)}…`);
    return new Uint8Array(Buffer.concat(rows.map((r) => r.bytes as Buffer)));
  }

  /** An interrupted upload never committed: nothing to remove. */
  async recover(): Promise<{ removed: number }> {
    return { removed: 0 };
  }
}

export interface PostgresOpenOptions {
  /** Connections per replica (default 10). */
  poolSize?: number;
}

export class PostgresStorage implements Storage {
  readonly blobs: BlobStore;
  /** Schema versions this open applied (empty when another replica had already migrated). */
  migrated: number[] = [];
  private closed = false;
  /** Last-seen times of unchanged check-ins, one UPDATE for all of a second's. */
  private readonly lastSeen = new LastSeenBatch(async (rows) => {
    await this.pool.query(`UPDATE devices SET last_checkin = GREATEST(devices.last_checkin, v.at)
      FROM unnest($1::text[], $2::bigint[]) AS v(id, at) WHERE devices.id = v.id`, [rows.map((r) => r[0]), rows.map((r) => r[1])]);
  });

  /** Check-ins' reads, batched (`readCheckins`). */
  private readonly checkinReads = new ReadBatch((qs: { id: string; rollouts: readonly Pick<RolloutRecord, 'id' | 'target'>[] }[]) => this.readCheckins(qs));

  private constructor(private readonly pool: pg.Pool) {
    this.blobs = new PostgresBlobs(pool);
  }

  /** Connect and bring the schema up to date (under an advisory lock, so replicas may start together). */
  static async open(url: string, o: PostgresOpenOptions = {}): Promise<PostgresStorage> {
    const pool = new pg.Pool({ connectionString: url, max: o.poolSize ?? 10, types: TYPES, application_name: 'signet-server' });
    // An idle connection the server drops (restart, failover) must not end the process.
    pool.on('error', () => undefined);
    const s = new PostgresStorage(pool);
    try {
      s.migrated = await migrate(pool);
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof ServerError) throw e;
      throw new ServerError('E_SERVER_CONFIG', `cannot open the database ${redactUrl(url)}: ${(e as Error).message}`, e);
    }
    return s;
  }

  async exclusive<T>(f: () => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('SELECT pg_advisory_lock($1)', [LOCK_REPOSITORY]);
      try {
        return await f();
      } finally {
        await c.query('SELECT pg_advisory_unlock($1)', [LOCK_REPOSITORY]).catch(() => undefined);
      }
    } finally {
      c.release();
    }
  }

  async schemaVersion(): Promise<number> {
    const { rows } = await this.pool.query('SELECT COALESCE(MAX(version), 0) AS v FROM schema_version');
    return rows[0].v;
  }

  async latestMetadata(role: MetadataRole): Promise<MetadataRecord | null> {
    const { rows } = await this.pool.query('SELECT role, version, bytes, created_at FROM metadata WHERE role = $1 ORDER BY version DESC LIMIT 1', [role]);
    return rows.length ? metaOf(rows[0]) : null;
  }

  async latestVersion(role: MetadataRole): Promise<number> {
    return (await this.pool.query('SELECT COALESCE(MAX(version), 0) AS v FROM metadata WHERE role = $1', [role])).rows[0].v;
  }

  async metadata(role: MetadataRole, version: number): Promise<MetadataRecord | null> {
    const { rows } = await this.pool.query('SELECT role, version, bytes, created_at FROM metadata WHERE role = $1 AND version = $2', [role, version]);
    return rows.length ? metaOf(rows[0]) : null;
  }

  async commitMetadata(records: MetadataRecord[], targets: TargetRecord[], expect: Partial<Record<MetadataRole, number>>): Promise<void> {
    await transaction(this.pool, async (c) => {
      // One committer at a time, whichever replica: the version check and the insert are one step.
      await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_REPOSITORY + 1]);
      for (const role of Object.keys(expect) as MetadataRole[]) {
        const { rows } = await c.query('SELECT COALESCE(MAX(version), 0) AS v FROM metadata WHERE role = $1', [role]);
        if (rows[0].v !== expect[role]) throw new ServerError('E_CONFLICT', `${role} metadata is at version ${rows[0].v}, expected ${expect[role]}`);
      }
      for (const t of targets) {
        await c.query(`INSERT INTO targets (name, sha256, length, board, version, security_counter, app, targets_version, created_at)
          VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING`,
        [t.name, t.sha256, t.length, t.board, t.version, t.securityCounter, t.app, t.targetsVersion, t.createdAt]);
      }
      for (const m of records) {
        await c.query('INSERT INTO metadata (role, version, bytes, created_at) VALUES ($1, $2, $3, $4)', [m.role, m.version, Buffer.from(m.bytes), m.createdAt]);
      }
    });
  }

  async target(name: string, sha256: string): Promise<TargetRecord | null> {
    const { rows } = await this.pool.query('SELECT * FROM targets WHERE name = $1 AND sha256 = $2', [name, sha256]);
    const r = rows[0];
    return r
      ? { name: r.name, sha256: r.sha256, length: r.length, board: r.board, version: r.version, securityCounter: r.security_counter,
        app: r.app, targetsVersion: r.targets_version, createdAt: r.created_at }
      : null;
  }

  async recordCheckin(c: DeviceCheckin): Promise<DeviceRecord> {
    const { rows } = await this.pool.query(
      `INSERT INTO devices (id, board, version, security_counter, slot, channel, status, first_seen, last_checkin, last_error, last_error_at, cert_serial,
         boot_version, boot_counter, boot_slot)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9::text, CASE WHEN $9::text IS NULL THEN NULL ELSE $8::bigint END, $10, $11, $12, $13)
       ON CONFLICT (id) DO UPDATE SET board = EXCLUDED.board, version = EXCLUDED.version, security_counter = EXCLUDED.security_counter,
         slot = EXCLUDED.slot, channel = EXCLUDED.channel, status = EXCLUDED.status, last_checkin = EXCLUDED.last_checkin,
         boot_version = EXCLUDED.boot_version, boot_counter = EXCLUDED.boot_counter, boot_slot = EXCLUDED.boot_slot,
         cert_serial = EXCLUDED.cert_serial, last_error = COALESCE(EXCLUDED.last_error, devices.last_error),
         last_error_at = CASE WHEN EXCLUDED.last_error IS NULL THEN devices.last_error_at ELSE EXCLUDED.last_error_at END
       RETURNING *`,
      [c.id, c.board, c.version, c.securityCounter, c.slot, c.channel, c.status, c.at, c.code, c.certSerial,
        c.boot ? c.boot.version : null, c.boot ? c.boot.securityCounter : null, c.boot ? c.boot.slot : null]);
    return deviceOf(rows[0]);
  }

  async touchCheckin(id: string, at: number): Promise<void> {
    this.lastSeen.touch(id, at);
  }

  async device(id: string): Promise<DeviceRecord | null> {
    const { rows } = await this.pool.query('SELECT * FROM devices WHERE id = $1', [id]);
    if (!rows.length) return null;
    const d = deviceOf(rows[0]);
    d.lastCheckin = Math.max(d.lastCheckin, this.lastSeen.seen(id) ?? 0);
    return d;
  }

  async checkinState(id: string, rollouts: readonly Pick<RolloutRecord, 'id' | 'target'>[]): Promise<CheckinState> {
    return this.checkinReads.get({ id, rollouts });
  }

  /**
   * The reads of every check-in waiting, in one statement and one round trip (read-batch.ts):
   * what were up to four queries per check-in, each a round trip and a wake-up of a backend.
   * Asked with the union of their rollouts and targets; each answer keeps only its own.
   */
  private async readCheckins(qs: { id: string; rollouts: readonly Pick<RolloutRecord, 'id' | 'target'>[] }[]): Promise<CheckinState[]> {
    const ids = [...new Set(qs.map((q) => q.id))];
    const targets = [...new Set(qs.flatMap((q) => q.rollouts.map((r) => r.target)))];
    const rolloutIds = [...new Set(qs.flatMap((q) => q.rollouts.map((r) => r.id)))];
    const { rows } = await this.pool.query({
      name: 'signet-checkin-state', // prepared once per connection
      text: `SELECT q.id,
          (SELECT row_to_json(v) FROM (SELECT r.id, r.reason, r.at FROM revocations r WHERE r.id = q.id) v) AS revocation,
          (SELECT row_to_json(d) FROM devices d WHERE d.id = q.id) AS device,
          ARRAY(SELECT DISTINCT rd.target FROM rollout_devices rd
            WHERE rd.device_id = q.id AND rd.status = 'failed' AND rd.target = ANY($2::text[])) AS failed,
          ARRAY(SELECT rd.rollout_id FROM rollout_devices rd WHERE rd.device_id = q.id AND rd.rollout_id = ANY($3::text[])) AS offered
        FROM unnest($1::text[]) AS q(id)`,
      values: [ids, targets, rolloutIds],
    });
    const byId = new Map<string, Row>(rows.map((r) => [r.id as string, r]));
    return qs.map((q) => {
      const r = byId.get(q.id);
      if (!r) throw new Error('the batched check-in read has no row for ' + q.id);
      let device: DeviceRecord | null = null;
      if (r.device) {
        device = deviceOf(r.device as Row);
        device.lastCheckin = Math.max(device.lastCheckin, this.lastSeen.seen(q.id) ?? 0);
      }
      const failed = r.failed as string[];
      const offered = r.offered as string[];
      return {
        revocation: (r.revocation as RevocationRecord | null) ?? null,
        device,
        failed: [...new Set(q.rollouts.map((x) => x.target))].filter((t) => failed.includes(t)),
        offered: q.rollouts.map((x) => x.id).filter((x) => offered.includes(x)),
      };
    });
  }

  async devices(limit: number): Promise<DeviceRecord[]> {
    await this.lastSeen.flush();
    const { rows } = await this.pool.query('SELECT * FROM devices ORDER BY last_checkin DESC, id LIMIT $1', [limit]);
    return rows.map(deviceOf);
  }

  async fleet(): Promise<FleetRow[]> {
    const { rows } = await this.pool.query('SELECT board, version, COUNT(*) AS count FROM devices GROUP BY board, version ORDER BY board, version');
    return rows as FleetRow[];
  }

  async countDevices(board: string, channel: string): Promise<number> {
    const { rows } = await this.pool.query('SELECT COUNT(*) AS n FROM devices WHERE board = $1 AND channel = $2', [board, channel]);
    return rows[0].n;
  }

  async setDeviceError(id: string, code: string, at: number): Promise<void> {
    await this.pool.query('UPDATE devices SET last_error = $1, last_error_at = $2 WHERE id = $3', [code, at, id]);
  }

  async revoke(r: RevocationRecord): Promise<void> {
    await this.pool.query(`INSERT INTO revocations (id, reason, at) VALUES ($1, $2, $3)
      ON CONFLICT (id) DO UPDATE SET reason = EXCLUDED.reason, at = EXCLUDED.at`, [r.id, r.reason, r.at]);
  }

  async revocation(id: string): Promise<RevocationRecord | null> {
    const { rows } = await this.pool.query('SELECT id, reason, at FROM revocations WHERE id = $1', [id]);
    return (rows[0] as RevocationRecord | undefined) ?? null;
  }

  async revocations(): Promise<RevocationRecord[]> {
    return (await this.pool.query('SELECT id, reason, at FROM revocations ORDER BY at, id')).rows as RevocationRecord[];
  }

  async createRollout(r: Omit<RolloutRecord, 'id'>): Promise<RolloutRecord> {
    return transaction(this.pool, async (c) => {
      // Ids are r1, r2, …: two replicas creating at once take turns (and supersede each other in order).
      await c.query('LOCK TABLE rollouts IN SHARE ROW EXCLUSIVE MODE');
      const seq = (await c.query('SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM rollouts')).rows[0].s as number;
      const id = 'r' + seq;
      // One active rollout per board, channel and kind: a boot-image rollout (.itb) supersedes only boot-image ones.
      await c.query(`UPDATE rollouts SET state = 'superseded', reason = $1, updated_at = $2
        WHERE board = $3 AND channel = $4 AND state IN ('active', 'paused') AND (target LIKE '%.itb') = $5`,
      ['superseded by rollout ' + id, r.createdAt, r.board, r.channel, r.target.endsWith('.itb')]);
      const { rows } = await c.query(`INSERT INTO rollouts (seq, id, board, channel, version, target, percent, halt_failure_rate, min_devices, state, reason, created_at, updated_at)
        VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING *`,
      [seq, id, r.board, r.channel, r.version, r.target, r.percent, r.haltFailureRate, r.minDevices, r.state, r.reason, r.createdAt, r.updatedAt]);
      return rolloutOf(rows[0]);
    });
  }

  async rollout(id: string): Promise<RolloutRecord | null> {
    const { rows } = await this.pool.query('SELECT * FROM rollouts WHERE id = $1', [id]);
    return rows.length ? rolloutOf(rows[0]) : null;
  }

  async rollouts(filter: { board?: string; channel?: string; states?: RolloutState[] } = {}): Promise<RolloutRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.board) { args.push(filter.board); where.push('board = $' + args.length); }
    if (filter.channel) { args.push(filter.channel); where.push('channel = $' + args.length); }
    if (filter.states?.length) { args.push(filter.states); where.push('state = ANY($' + args.length + '::text[])'); }
    const sql = 'SELECT * FROM rollouts' + (where.length ? ' WHERE ' + where.join(' AND ') : '') + ' ORDER BY seq DESC';
    return (await this.pool.query(sql, args)).rows.map(rolloutOf);
  }

  async updateRollout(id: string, patch: RolloutPatch): Promise<RolloutRecord> {
    // One statement: the state check and the change cannot be split by another replica.
    const { rows } = await this.pool.query(
      `UPDATE rollouts SET state = COALESCE($2, state), reason = CASE WHEN $3 THEN $4 ELSE reason END,
         percent = COALESCE($5, percent), updated_at = $6
       WHERE id = $1 AND ($7::text[] IS NULL OR state = ANY($7::text[])) RETURNING *`,
      [id, patch.state ?? null, patch.reason !== undefined, patch.reason ?? null, patch.percent ?? null, patch.at, patch.from ?? null]);
    if (rows.length) return rolloutOf(rows[0]);
    const cur = await this.rollout(id);
    if (!cur) throw new ServerError('E_NOT_FOUND', 'no rollout ' + id);
    throw new ServerError('E_ROLLOUT_STATE', `rollout ${id} is ${cur.state} now, not ${patch.from!.join(' or ')}`);
  }

  async rolloutDevice(rolloutId: string, deviceId: string): Promise<RolloutDeviceRecord | null> {
    const { rows } = await this.pool.query('SELECT * FROM rollout_devices WHERE rollout_id = $1 AND device_id = $2', [rolloutId, deviceId]);
    const r = rows[0];
    return r ? { rolloutId: r.rollout_id, deviceId: r.device_id, target: r.target, status: r.status, code: r.code, updatedAt: r.updated_at } : null;
  }

  async recordRolloutDevice(r: RolloutDeviceRecord): Promise<void> {
    await this.pool.query(`INSERT INTO rollout_devices (rollout_id, device_id, target, status, code, updated_at) VALUES ($1,$2,$3,$4,$5,$6)
      ON CONFLICT (rollout_id, device_id) DO UPDATE SET target = EXCLUDED.target, status = EXCLUDED.status, code = EXCLUDED.code,
        updated_at = EXCLUDED.updated_at`, [r.rolloutId, r.deviceId, r.target, r.status, r.code, r.updatedAt]);
  }

  async offerRolloutDevice(r: RolloutDeviceRecord): Promise<boolean> {
    const res = await this.pool.query(`INSERT INTO rollout_devices (rollout_id, device_id, target, status, code, updated_at) VALUES ($1,$2,$3,$4,$5,$6)
      ON CONFLICT (rollout_id, device_id) DO NOTHING`, [r.rolloutId, r.deviceId, r.target, r.status, r.code, r.updatedAt]);
    return res.rowCount === 1;
  }

  async recordReport(r: RolloutDeviceRecord, decide: HaltRule | null, haltAudit?: HaltAudit):
    Promise<{ rollout: RolloutRecord; halted: string | null }> {
    return transaction(this.pool, async (c) => {
      // The rollout's row lock orders every report of this rollout, on every replica.
      const locked = await c.query('SELECT * FROM rollouts WHERE id = $1 FOR UPDATE', [r.rolloutId]);
      if (!locked.rows.length) throw new ServerError('E_NOT_FOUND', 'no rollout ' + r.rolloutId);
      const rollout = rolloutOf(locked.rows[0]);
      await c.query(`INSERT INTO rollout_devices (rollout_id, device_id, target, status, code, updated_at) VALUES ($1,$2,$3,$4,$5,$6)
        ON CONFLICT (rollout_id, device_id) DO UPDATE SET target = EXCLUDED.target, status = EXCLUDED.status, code = EXCLUDED.code,
          updated_at = EXCLUDED.updated_at`, [r.rolloutId, r.deviceId, r.target, r.status, r.code, r.updatedAt]);
      if (!decide || rollout.state !== 'active') return { rollout, halted: null };
      const reason = decide(rollout, await countsOf(c, r.rolloutId));
      if (!reason) return { rollout, halted: null };
      const { rows } = await c.query(`UPDATE rollouts SET state = 'halted', reason = $2, updated_at = $3 WHERE id = $1 RETURNING *`,
        [r.rolloutId, reason, r.updatedAt]);
      if (haltAudit) await insertAudit(c, haltAudit(reason));
      return { rollout: rolloutOf(rows[0]), halted: reason };
    });
  }

  async rolloutCounts(rolloutId: string): Promise<RolloutCounts> {
    return countsOf(this.pool, rolloutId);
  }

  async hasFailed(deviceId: string, target: string): Promise<boolean> {
    const { rows } = await this.pool.query("SELECT 1 FROM rollout_devices WHERE device_id = $1 AND target = $2 AND status = 'failed' LIMIT 1", [deviceId, target]);
    return rows.length > 0;
  }

  async referencedBlobs(): Promise<Set<string>> {
    return new Set((await this.pool.query('SELECT DISTINCT sha256 FROM targets')).rows.map((r) => r.sha256 as string));
  }

  async audit(r: Omit<AuditRecord, 'seq'>): Promise<void> {
    await insertAudit(this.pool, r);
  }

  async auditLog(filter: { since?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    const { rows } = await this.pool.query('SELECT * FROM (SELECT * FROM audit WHERE at >= $1 ORDER BY seq DESC LIMIT $2) a ORDER BY seq',
      [filter.since ?? 0, filter.limit ?? 1_000_000]);
    return rows.map((r) => ({ seq: r.seq, at: r.at, actor: r.actor, action: r.action, subject: r.subject, detail: JSON.parse(r.detail) }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lastSeen.flush().catch(() => undefined);
    await this.pool.end();
  }
}

/**
 * Apply the migrations this database lacks, one transaction each, holding a session advisory
 * lock: replicas starting together take turns, and the ones after the first find nothing to do.
 * A database newer than this server is refused (an old replica must not write a newer schema).
 */
async function migrate(pool: pg.Pool): Promise<number[]> {
  const c = await pool.connect();
  const applied: number[] = [];
  try {
    await c.query('SELECT pg_advisory_lock($1)', [LOCK_MIGRATE]);
    try {
      await c.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
      const cur = (await c.query('SELECT COALESCE(MAX(version), 0) AS v FROM schema_version')).rows[0].v as number;
      if (cur > MIGRATIONS.length) {
        throw new ServerError('E_SERVER_CONFIG', `the database has schema ${cur}, newer than this server's ${MIGRATIONS.length}; upgrade this replica`);
      }
      for (let v = cur + 1; v <= MIGRATIONS.length; v++) {
        await c.query('BEGIN');
        try {
          await c.query(MIGRATIONS[v - 1]);
          await c.query('INSERT INTO schema_version (version) VALUES ($1)', [v]);
          await c.query('COMMIT');
        } catch (e) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
        applied.push(v);
      }
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [LOCK_MIGRATE]).catch(() => undefined);
    }
  } finally {
    c.release();
  }
  return applied;
}
