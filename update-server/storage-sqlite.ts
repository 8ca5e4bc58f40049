/**
 * The default storage: one SQLite file (WAL) plus a blob folder, under the server's --data
 * folder. No setup: the schema is created on first open.
 *
 * Durability: check-ins use synchronous=NORMAL (safe against a killed process, which is what
 * matters for them); repository commits switch to synchronous=FULL so that metadata devices
 * may already have seen is never lost on power failure and never re-signed differently.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, lstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ensureOutputFolder } from '../sdk/util/fs-atomic';
import type { MetadataRole } from '../sdk/ota/repository';
import { BlobFolder } from './blob-folder';
import { ServerError } from './errors';
import { LastSeenBatch } from './last-seen';
import { ReadBatch } from './read-batch';
import {
  emptyCounts, type AuditRecord, type CheckinState, type DeviceCheckin, type DeviceRecord, type FleetRow, type MetadataRecord, type RevocationRecord, type RolloutCounts,
  type HaltAudit, type HaltRule, type RolloutDeviceRecord, type RolloutPatch, type RolloutRecord, type RolloutState, type Storage, type TargetRecord, type UpdateStatus,
} from './storage';

/** 2: the audit table; 3: the devices' boot image columns (older files are upgraded in place on open). */
const SCHEMA_VERSION = 3;

/** Columns added after schema 2, added to an older file's table on open. */
const ADDED_COLUMNS: { table: string; column: string; type: string }[] = [
  { table: 'devices', column: 'boot_version', type: 'TEXT' },
  { table: 'devices', column: 'boot_counter', type: 'INTEGER' },
  { table: 'devices', column: 'boot_slot', type: 'TEXT' },
];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS metadata (
  role TEXT NOT NULL, version INTEGER NOT NULL, bytes BLOB NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (role, version));
CREATE TABLE IF NOT EXISTS targets (
  name TEXT NOT NULL, sha256 TEXT NOT NULL, length INTEGER NOT NULL, board TEXT NOT NULL, version TEXT NOT NULL,
  security_counter INTEGER NOT NULL, app TEXT NOT NULL, targets_version INTEGER NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (name, sha256));
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, board TEXT NOT NULL, version TEXT NOT NULL, security_counter INTEGER NOT NULL, slot TEXT NOT NULL,
  channel TEXT NOT NULL, status TEXT, first_seen INTEGER NOT NULL, last_checkin INTEGER NOT NULL,
  last_error TEXT, last_error_at INTEGER, cert_serial TEXT, boot_version TEXT, boot_counter INTEGER, boot_slot TEXT);
CREATE INDEX IF NOT EXISTS devices_board ON devices (board, channel);
CREATE TABLE IF NOT EXISTS revocations (id TEXT PRIMARY KEY, reason TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, board TEXT NOT NULL, channel TEXT NOT NULL,
  version TEXT NOT NULL, target TEXT NOT NULL, percent INTEGER NOT NULL, halt_failure_rate REAL NOT NULL,
  min_devices INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rollout_devices (
  rollout_id TEXT NOT NULL, device_id TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, code TEXT,
  updated_at INTEGER NOT NULL, PRIMARY KEY (rollout_id, device_id));
CREATE INDEX IF NOT EXISTS rollout_devices_target ON rollout_devices (device_id, target, status);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  subject TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
`;

interface RolloutRow {
  id: string; board: string; channel: string; version: string; target: string; percent: number;
  halt_failure_rate: number; min_devices: number; state: string; reason: string | null; created_at: number; updated_at: number;
}
interface DeviceRow {
  id: string; board: string; version: string; security_counter: number; slot: string; channel: string; status: string | null;
  first_seen: number; last_checkin: number; last_error: string | null; last_error_at: number | null; cert_serial: string | null;
  boot_version: string | null; boot_counter: number | null; boot_slot: string | null;
}

function rolloutOf(r: RolloutRow): RolloutRecord {
  return {
    id: r.id, board: r.board, channel: r.channel, version: r.version, target: r.target, percent: r.percent,
    haltFailureRate: r.halt_failure_rate, minDevices: r.min_devices, state: r.state as RolloutState, reason: r.reason,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

function deviceOf(r: DeviceRow): DeviceRecord {
  return {
    id: r.id, board: r.board, version: r.version, securityCounter: r.security_counter, slot: r.slot, channel: r.channel,
    status: r.status, firstSeen: r.first_seen, lastCheckin: r.last_checkin, lastError: r.last_error, lastErrorAt: r.last_error_at,
    certSerial: r.cert_serial,
    boot: r.boot_version !== null && r.boot_version !== undefined ? { version: r.boot_version, securityCounter: r.boot_counter ?? 0, slot: r.boot_slot ?? '' } : null,
  };
}

/**
 * The data folder is the server's alone, whatever the umask: the folder 0700, the database
 * and its WAL/SHM 0600 (SQLite gives those the database file's mode, so the file is made 0600
 * before SQLite opens it). An existing folder with wider modes is fixed on start, not refused:
 * the server owns it, and every later start then finds it right.
 */
export function prepareDataDir(dataDir: string): void {
  try {
    ensureOutputFolder(dataDir, 0o700); // one bounded step at a time: a recursive mkdir loops under /proc
    if (!lstatSync(dataDir).isDirectory()) throw new Error('not a folder');
    chmodSync(dataDir, 0o700);
    const db = join(dataDir, 'signet.db');
    if (!existsSync(db)) closeSync(openSync(db, 'a', 0o600));
    for (const f of ['signet.db', 'signet.db-wal', 'signet.db-shm', 'tls']) {
      const p = join(dataDir, f);
      if (existsSync(p)) chmodSync(p, lstatSync(p).isDirectory() ? 0o700 : 0o600);
    }
    const key = join(dataDir, 'tls', 'server.key');
    if (existsSync(key)) chmodSync(key, 0o600);
  } catch (e) {
    throw new ServerError('E_SERVER_CONFIG', `cannot prepare the data folder ${dataDir}: ${(e as Error).message}`, e);
  }
}

const AUDIT_SQL = 'SELECT * FROM (SELECT * FROM audit WHERE at >= ? ORDER BY seq DESC LIMIT ?) ORDER BY seq';

function auditRows(st: Database.Statement, filter: { since?: number; limit?: number }): AuditRecord[] {
  const rows = st.all(filter.since ?? 0, filter.limit ?? 1_000_000) as { seq: number; at: number; actor: string; action: string; subject: string; detail: string }[];
  return rows.map((r) => ({ seq: r.seq, at: r.at, actor: r.actor, action: r.action as AuditRecord['action'], subject: r.subject, detail: JSON.parse(r.detail) }));
}

/**
 * The audit log of a data folder, read-only (`signet server audit`): works while the server
 * runs (WAL readers do not block it) and changes nothing.
 */
export function readAuditLog(dataDir: string, filter: { since?: number; limit?: number } = {}): AuditRecord[] {
  const file = join(dataDir, 'signet.db');
  if (!existsSync(file)) throw new ServerError('E_SERVER_CONFIG', `no database in ${dataDir} (signet.db is missing)`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 5000 });
  } catch (e) {
    throw new ServerError('E_SERVER_CONFIG', `cannot open the database in ${dataDir}: ${(e as Error).message}`, e);
  }
  try {
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'").get()) {
      throw new ServerError('E_SERVER_CONFIG', `the database in ${dataDir} has no audit log yet; start this version of signet server on it once`);
    }
    return auditRows(db.prepare(AUDIT_SQL), filter);
  } catch (e) {
    if (e instanceof ServerError) throw e;
    throw new ServerError('E_SERVER_CONFIG', `cannot read the audit log in ${dataDir}: ${(e as Error).message}`, e);
  } finally {
    db.close();
  }
}

export class SqliteStorage implements Storage {
  readonly blobs: BlobFolder;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** Last-seen times of unchanged check-ins, one transaction for all of a second's. */
  private readonly lastSeen = new LastSeenBatch(async (rows) => {
    if (!this.db.open) return;
    const set = this.stmt('UPDATE devices SET last_checkin = MAX(last_checkin, ?) WHERE id = ?');
    this.db.transaction(() => {
      for (const [id, at] of rows) set.run(at, id);
    })();
  });

  /** Check-ins' reads, batched (`readCheckins`). */
  private readonly checkinReads = new ReadBatch(async (qs: { id: string; rollouts: readonly Pick<RolloutRecord, 'id' | 'target'>[] }[]) => this.readCheckins(qs));

  private constructor(dataDir: string) {
    prepareDataDir(dataDir);
    this.blobs = new BlobFolder(join(dataDir, 'blobs'));
    try {
      this.db = new Database(join(dataDir, 'signet.db'), { timeout: 5000 });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      const v = this.db.pragma('user_version', { simple: true }) as number;
      if (v > SCHEMA_VERSION) {
        throw new ServerError('E_SERVER_CONFIG', `the database in ${dataDir} has schema ${v}, newer than this server's ${SCHEMA_VERSION}`);
      }
      this.db.exec(SCHEMA);
      for (const a of ADDED_COLUMNS) {
        const cols = this.db.prepare(`PRAGMA table_info(${a.table})`).all() as { name: string }[];
        if (!cols.some((c) => c.name === a.column)) this.db.exec(`ALTER TABLE ${a.table} ADD COLUMN ${a.column} ${a.type}`);
      }
      this.db.pragma('user_version = ' + SCHEMA_VERSION);
    } catch (e) {
      if (e instanceof ServerError) throw e;
      throw new ServerError('E_SERVER_CONFIG', `cannot open the database in ${dataDir}: ${(e as Error).message}`, e);
    }
  }

  /** Open (creating if needed) and remove what an interrupted upload left behind. */
  static async open(dataDir: string): Promise<SqliteStorage> {
    const s = new SqliteStorage(dataDir);
    await s.blobs.recover();
    return s;
  }

  /** Prepared once per SQL text: compiling is most of the cost of a small query. */
  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** PRAGMA integrity_check: 'ok' for a consistent file. */
  integrityCheck(): string {
    return String(this.db.pragma('integrity_check', { simple: true }));
  }

  async latestMetadata(role: MetadataRole): Promise<MetadataRecord | null> {
    const r = this.stmt('SELECT role, version, bytes, created_at FROM metadata WHERE role = ? ORDER BY version DESC LIMIT 1').get(role) as
      { role: MetadataRole; version: number; bytes: Buffer; created_at: number } | undefined;
    return r ? { role: r.role, version: r.version, bytes: new Uint8Array(r.bytes), createdAt: r.created_at } : null;
  }

  async latestVersion(role: MetadataRole): Promise<number> {
    return (this.stmt('SELECT COALESCE(MAX(version), 0) AS v FROM metadata WHERE role = ?').get(role) as { v: number }).v;
  }

  async metadata(role: MetadataRole, version: number): Promise<MetadataRecord | null> {
    const r = this.stmt('SELECT role, version, bytes, created_at FROM metadata WHERE role = ? AND version = ?').get(role, version) as
      { role: MetadataRole; version: number; bytes: Buffer; created_at: number } | undefined;
    return r ? { role: r.role, version: r.version, bytes: new Uint8Array(r.bytes), createdAt: r.created_at } : null;
  }

  async commitMetadata(records: MetadataRecord[], targets: TargetRecord[], expect: Partial<Record<MetadataRole, number>>): Promise<void> {
    const latest = this.stmt('SELECT COALESCE(MAX(version), 0) AS v FROM metadata WHERE role = ?');
    const insertMeta = this.stmt('INSERT INTO metadata (role, version, bytes, created_at) VALUES (?, ?, ?, ?)');
    const insertTarget = this.stmt(
      'INSERT OR IGNORE INTO targets (name, sha256, length, board, version, security_counter, app, targets_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)');
    const tx = this.db.transaction(() => {
      for (const role of Object.keys(expect) as MetadataRole[]) {
        const v = (latest.get(role) as { v: number }).v;
        if (v !== expect[role]) throw new ServerError('E_CONFLICT', `${role} metadata is at version ${v}, expected ${expect[role]}`);
      }
      for (const t of targets) {
        insertTarget.run(t.name, t.sha256, t.length, t.board, t.version, t.securityCounter, t.app, t.targetsVersion, t.createdAt);
      }
      for (const m of records) insertMeta.run(m.role, m.version, Buffer.from(m.bytes), m.createdAt);
    });
    this.db.pragma('synchronous = FULL');
    try {
      tx();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  async target(name: string, sha256: string): Promise<TargetRecord | null> {
    const r = this.stmt('SELECT * FROM targets WHERE name = ? AND sha256 = ?').get(name, sha256) as
      | { name: string; sha256: string; length: number; board: string; version: string; security_counter: number; app: string; targets_version: number; created_at: number }
      | undefined;
    return r
      ? { name: r.name, sha256: r.sha256, length: r.length, board: r.board, version: r.version, securityCounter: r.security_counter,
        app: r.app, targetsVersion: r.targets_version, createdAt: r.created_at }
      : null;
  }

  async recordCheckin(c: DeviceCheckin): Promise<DeviceRecord> {
    const boot = c.boot ?? null;
    this.stmt(`INSERT INTO devices (id, board, version, security_counter, slot, channel, status, first_seen, last_checkin, last_error, last_error_at, cert_serial,
        boot_version, boot_counter, boot_slot)
      VALUES (@id, @board, @version, @securityCounter, @slot, @channel, @status, @at, @at, @code, CASE WHEN @code IS NULL THEN NULL ELSE @at END, @certSerial,
        @bootVersion, @bootCounter, @bootSlot)
      ON CONFLICT (id) DO UPDATE SET board = @board, version = @version, security_counter = @securityCounter, slot = @slot,
        channel = @channel, status = @status, last_checkin = @at, cert_serial = @certSerial,
        boot_version = @bootVersion, boot_counter = @bootCounter, boot_slot = @bootSlot,
        last_error = COALESCE(@code, last_error), last_error_at = CASE WHEN @code IS NULL THEN last_error_at ELSE @at END`).run({
      id: c.id, board: c.board, version: c.version, securityCounter: c.securityCounter, slot: c.slot, channel: c.channel, status: c.status,
      at: c.at, code: c.code, certSerial: c.certSerial,
      bootVersion: boot ? boot.version : null, bootCounter: boot ? boot.securityCounter : null, bootSlot: boot ? boot.slot : null,
    });
    return (await this.device(c.id))!;
  }

  async touchCheckin(id: string, at: number): Promise<void> {
    this.lastSeen.touch(id, at);
  }

  async device(id: string): Promise<DeviceRecord | null> {
    return this.deviceNow(id);
  }

  private deviceNow(id: string): DeviceRecord | null {
    const r = this.stmt('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
    if (!r) return null;
    const d = deviceOf(r);
    d.lastCheckin = Math.max(d.lastCheckin, this.lastSeen.seen(id) ?? 0);
    return d;
  }

  async checkinState(id: string, rollouts: readonly Pick<RolloutRecord, 'id' | 'target'>[]): Promise<CheckinState> {
    return this.checkinReads.get({ id, rollouts });
  }

  /**
   * The reads of the check-ins that arrived in one turn of the event loop, in one read
   * transaction (read-batch.ts). The statements are in-process and cheap; what the batch saves
   * is the work around them: every check-in of the turn is parsed (its body too) before any
   * is answered, and the answers go out together, as a server with an event loop of its own
   * (nginx) does.
   */
  private readCheckins(qs: { id: string; rollouts: readonly Pick<RolloutRecord, 'id' | 'target'>[] }[]): CheckinState[] {
    const revocation = this.stmt('SELECT id, reason, at FROM revocations WHERE id = ?');
    const failed = this.stmt("SELECT 1 FROM rollout_devices WHERE device_id = ? AND target = ? AND status = 'failed' LIMIT 1");
    const offered = this.stmt('SELECT 1 FROM rollout_devices WHERE rollout_id = ? AND device_id = ?');
    return this.db.transaction(() => qs.map(({ id, rollouts }) => ({
      revocation: (revocation.get(id) as RevocationRecord | undefined) ?? null,
      device: this.deviceNow(id),
      failed: [...new Set(rollouts.filter((r) => failed.get(id, r.target)).map((r) => r.target))],
      offered: rollouts.filter((r) => offered.get(r.id, id)).map((r) => r.id),
    })))();
  }

  async devices(limit: number): Promise<DeviceRecord[]> {
    await this.lastSeen.flush();
    return (this.stmt('SELECT * FROM devices ORDER BY last_checkin DESC, id LIMIT ?').all(limit) as DeviceRow[]).map(deviceOf);
  }

  async fleet(): Promise<FleetRow[]> {
    return this.stmt('SELECT board, version, COUNT(*) AS count FROM devices GROUP BY board, version ORDER BY board, version').all() as FleetRow[];
  }

  async countDevices(board: string, channel: string): Promise<number> {
    return (this.stmt('SELECT COUNT(*) AS n FROM devices WHERE board = ? AND channel = ?').get(board, channel) as { n: number }).n;
  }

  async setDeviceError(id: string, code: string, at: number): Promise<void> {
    this.stmt('UPDATE devices SET last_error = ?, last_error_at = ? WHERE id = ?').run(code, at, id);
  }

  async revoke(r: RevocationRecord): Promise<void> {
    this.stmt('INSERT OR REPLACE INTO revocations (id, reason, at) VALUES (?, ?, ?)').run(r.id, r.reason, r.at);
  }

  async revocation(id: string): Promise<RevocationRecord | null> {
    return (this.stmt('SELECT id, reason, at FROM revocations WHERE id = ?').get(id) as RevocationRecord | undefined) ?? null;
  }

  async revocations(): Promise<RevocationRecord[]> {
    return this.stmt('SELECT id, reason, at FROM revocations ORDER BY at, id').all() as RevocationRecord[];
  }

  async createRollout(r: Omit<RolloutRecord, 'id'>): Promise<RolloutRecord> {
    const tx = this.db.transaction(() => {
      const seq = ((this.stmt("SELECT COALESCE(MAX(seq), 0) AS s FROM rollouts").get() as { s: number }).s) + 1;
      const id = 'r' + seq;
      // One active rollout per board, channel and kind: a boot-image rollout (.itb) supersedes only boot-image ones.
      this.stmt(`UPDATE rollouts SET state = 'superseded', reason = ?, updated_at = ?
        WHERE board = ? AND channel = ? AND state IN ('active', 'paused') AND (target LIKE '%.itb') = ?`)
        .run('superseded by rollout ' + id, r.createdAt, r.board, r.channel, r.target.endsWith('.itb') ? 1 : 0);
      this.stmt(`INSERT INTO rollouts (seq, id, board, channel, version, target, percent, halt_failure_rate, min_devices, state, reason, created_at, updated_at)
        VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`).run(seq, id, r.board, r.channel, r.version, r.target, r.percent, r.haltFailureRate,
        r.minDevices, r.state, r.reason, r.createdAt, r.updatedAt);
      return id;
    });
    return (await this.rollout(tx()))!;
  }

  async rollout(id: string): Promise<RolloutRecord | null> {
    const r = this.stmt('SELECT * FROM rollouts WHERE id = ?').get(id) as RolloutRow | undefined;
    return r ? rolloutOf(r) : null;
  }

  async rollouts(filter: { board?: string; channel?: string; states?: RolloutState[] } = {}): Promise<RolloutRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.board) { where.push('board = ?'); args.push(filter.board); }
    if (filter.channel) { where.push('channel = ?'); args.push(filter.channel); }
    if (filter.states?.length) { where.push(`state IN (${filter.states.map(() => '?').join(',')})`); args.push(...filter.states); }
    const sql = 'SELECT * FROM rollouts' + (where.length ? ' WHERE ' + where.join(' AND ') : '') + ' ORDER BY seq DESC';
    return (this.stmt(sql).all(...args) as RolloutRow[]).map(rolloutOf);
  }

  async updateRollout(id: string, patch: RolloutPatch): Promise<RolloutRecord> {
    // One statement: the state check and the change are one step.
    const from = patch.from ?? null;
    const r = this.stmt(`UPDATE rollouts SET state = COALESCE(?, state), reason = CASE WHEN ? THEN ? ELSE reason END,
        percent = COALESCE(?, percent), updated_at = ?
      WHERE id = ? AND (? IS NULL OR state IN (SELECT value FROM json_each(?))) RETURNING *`).get(
      patch.state ?? null, patch.reason !== undefined ? 1 : 0, patch.reason ?? null, patch.percent ?? null, patch.at, id,
      from ? 1 : null, JSON.stringify(from ?? [])) as RolloutRow | undefined;
    if (r) return rolloutOf(r);
    const cur = await this.rollout(id);
    if (!cur) throw new ServerError('E_NOT_FOUND', 'no rollout ' + id);
    throw new ServerError('E_ROLLOUT_STATE', `rollout ${id} is ${cur.state} now, not ${from!.join(' or ')}`);
  }

  async rolloutDevice(rolloutId: string, deviceId: string): Promise<RolloutDeviceRecord | null> {
    const r = this.stmt('SELECT * FROM rollout_devices WHERE rollout_id = ? AND device_id = ?').get(rolloutId, deviceId) as
      { rollout_id: string; device_id: string; target: string; status: UpdateStatus; code: string | null; updated_at: number } | undefined;
    return r ? { rolloutId: r.rollout_id, deviceId: r.device_id, target: r.target, status: r.status, code: r.code, updatedAt: r.updated_at } : null;
  }

  async recordRolloutDevice(r: RolloutDeviceRecord): Promise<void> {
    this.stmt('INSERT OR REPLACE INTO rollout_devices (rollout_id, device_id, target, status, code, updated_at) VALUES (?,?,?,?,?,?)')
      .run(r.rolloutId, r.deviceId, r.target, r.status, r.code, r.updatedAt);
  }

  async offerRolloutDevice(r: RolloutDeviceRecord): Promise<boolean> {
    return this.stmt('INSERT OR IGNORE INTO rollout_devices (rollout_id, device_id, target, status, code, updated_at) VALUES (?,?,?,?,?,?)')
      .run(r.rolloutId, r.deviceId, r.target, r.status, r.code, r.updatedAt).changes === 1;
  }

  async recordReport(r: RolloutDeviceRecord, halt: HaltRule | null, haltAudit?: HaltAudit): Promise<{ rollout: RolloutRecord; halted: string | null }> {
    // Synchronous: nothing else in this process runs between the insert, the count and the halt.
    const tx = this.db.transaction((): { rollout: RolloutRecord; halted: string | null } => {
      const row = this.stmt('SELECT * FROM rollouts WHERE id = ?').get(r.rolloutId) as RolloutRow | undefined;
      if (!row) throw new ServerError('E_NOT_FOUND', 'no rollout ' + r.rolloutId);
      const rollout = rolloutOf(row);
      this.stmt('INSERT OR REPLACE INTO rollout_devices (rollout_id, device_id, target, status, code, updated_at) VALUES (?,?,?,?,?,?)')
        .run(r.rolloutId, r.deviceId, r.target, r.status, r.code, r.updatedAt);
      if (!halt || rollout.state !== 'active') return { rollout, halted: null };
      const reason = halt(rollout, this.countsNow(r.rolloutId));
      if (!reason) return { rollout, halted: null };
      const next = this.stmt(`UPDATE rollouts SET state = 'halted', reason = ?, updated_at = ? WHERE id = ? RETURNING *`)
        .get(reason, r.updatedAt, r.rolloutId) as RolloutRow;
      if (haltAudit) this.insertAudit(haltAudit(reason));
      return { rollout: rolloutOf(next), halted: reason };
    });
    return tx();
  }

  private countsNow(rolloutId: string): RolloutCounts {
    const counts = emptyCounts();
    const rows = this.stmt('SELECT status, COUNT(*) AS n FROM rollout_devices WHERE rollout_id = ? GROUP BY status').all(rolloutId) as
      { status: UpdateStatus; n: number }[];
    for (const r of rows) if (r.status in counts) counts[r.status] = r.n;
    return counts;
  }

  async rolloutCounts(rolloutId: string): Promise<RolloutCounts> {
    return this.countsNow(rolloutId);
  }

  async hasFailed(deviceId: string, target: string): Promise<boolean> {
    return !!this.stmt("SELECT 1 FROM rollout_devices WHERE device_id = ? AND target = ? AND status = 'failed' LIMIT 1").get(deviceId, target);
  }

  async referencedBlobs(): Promise<Set<string>> {
    return new Set((this.stmt('SELECT DISTINCT sha256 FROM targets').all() as { sha256: string }[]).map((r) => r.sha256));
  }

  async audit(r: Omit<AuditRecord, 'seq'>): Promise<void> {
    this.insertAudit(r);
  }

  private insertAudit(r: Omit<AuditRecord, 'seq'>): void {
    this.stmt('INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)')
      .run(r.at, r.actor, r.action, r.subject, JSON.stringify(r.detail));
  }

  async auditLog(filter: { since?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    return auditRows(this.stmt(AUDIT_SQL), filter);
  }

  /** One process owns the file (the repository's own queue orders its writers). */
  async exclusive<T>(f: () => Promise<T>): Promise<T> {
    return f();
  }

  async close(): Promise<void> {
    await this.lastSeen.flush().catch(() => undefined);
    if (this.db.open) this.db.close();
  }
}
