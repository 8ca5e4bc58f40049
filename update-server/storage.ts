/**
 * Everything the server keeps, behind one interface: TUF metadata and the targets it names,
 * target blobs, devices, revocations and rollouts. `storage-sqlite.ts` (SQLite file + blob
 * folder) is the default; `storage-postgres.ts` is the one several server replicas share.
 * Every call is async, blobs are streamed, repository changes are one `commitMetadata`, and
 * whatever must stay exact across replicas (a report and the halt it causes, an offer, a
 * rollout transition) is one call, done in one transaction by the storage, never read-modify-
 * write by the caller.
 */
import type { MetadataRole } from '../sdk/ota/repository';

export interface MetadataRecord {
  role: MetadataRole;
  version: number;
  bytes: Uint8Array;
  createdAt: number; // unix seconds
}

export interface TargetRecord {
  name: string; // <board>/<name>-<version>.simg
  sha256: string;
  length: number;
  board: string;
  version: string;
  securityCounter: number;
  app: string;
  targetsVersion: number; // first targets version that named it
  createdAt: number;
}

export interface DeviceCheckin {
  id: string;
  board: string;
  version: string;
  securityCounter: number;
  slot: string;
  channel: string;
  status: string | null;
  code: string | null; // an error code the device reports with its check-in
  certSerial: string | null;
  at: number;
  /** The boot image the device runs from its A/B boot slots (absent: none reported). */
  boot?: DeviceBoot | null;
}

/** What a device with A/B boot slots reports about its boot image. */
export interface DeviceBoot {
  version: string;
  securityCounter: number;
  slot: string;
}

export interface DeviceRecord {
  id: string;
  board: string;
  version: string;
  securityCounter: number;
  slot: string;
  channel: string;
  status: string | null;
  firstSeen: number;
  lastCheckin: number;
  lastError: string | null;
  lastErrorAt: number | null;
  certSerial: string | null;
  /** Its boot image as last reported (null: the device reported none). */
  boot?: DeviceBoot | null;
}

export interface RevocationRecord {
  id: string;
  reason: string;
  at: number;
}

/**
 * Everything a check-in reads about one device, read together (`Storage.checkinState`): on
 * PostgreSQL one statement, one round trip, instead of one per read.
 */
export interface CheckinState {
  /** The device's revocation, if it is revoked (the check-in refuses it before anything else). */
  revocation: RevocationRecord | null;
  device: DeviceRecord | null;
  /** Of the targets asked about, those the device has reported `failed` for, in any rollout. */
  failed: string[];
  /** Of the rollouts asked about, those holding a row for the device (it was offered their target). */
  offered: string[];
}

export type RolloutState = 'active' | 'paused' | 'halted' | 'superseded';
export const ROLLOUT_STATES: RolloutState[] = ['active', 'paused', 'halted', 'superseded'];

export interface RolloutRecord {
  id: string;
  board: string;
  channel: string;
  version: string;
  target: string; // target name in targets metadata
  percent: number; // 0..100
  haltFailureRate: number; // 0..1
  minDevices: number; // reports needed before the halt rule applies
  state: RolloutState;
  reason: string | null; // why it is halted/paused/superseded
  createdAt: number;
  updatedAt: number;
}

export type UpdateStatus = 'offered' | 'downloading' | 'staged' | 'booted-trial' | 'confirmed' | 'failed';
export const REPORT_STATUSES: UpdateStatus[] = ['downloading', 'staged', 'booted-trial', 'confirmed', 'failed'];

export interface RolloutDeviceRecord {
  rolloutId: string;
  deviceId: string;
  target: string;
  status: UpdateStatus;
  code: string | null;
  updatedAt: number;
}

export type RolloutCounts = Record<UpdateStatus, number>;

/** A change to a rollout; with `from`, made only if its state is one of them (else E_ROLLOUT_STATE), in the same step. */
export interface RolloutPatch {
  state?: RolloutState;
  reason?: string | null;
  percent?: number;
  at: number;
  from?: RolloutState[];
}

/** The halt rule a report is checked against, inside the storage's transaction: a reason to halt, or null. */
export type HaltRule = (rollout: RolloutRecord, counts: RolloutCounts) => string | null;

/** The audit row of a halt (`rollout.halt`), written in the transaction that halts: a halt is never recorded without it. */
export type HaltAudit = (reason: string) => Omit<AuditRecord, 'seq'>;

export interface FleetRow {
  board: string;
  version: string;
  count: number;
}

/**
 * One admin action (or one thing the server did on its own, actor `server`), kept for good:
 * who did what to which subject, when. `detail` is a small JSON object (reason, percent, …).
 */
export interface AuditRecord {
  seq: number;
  at: number;
  /** The certificate CN of the admin, `vendor-ca` for an enrollment, or `server`. */
  actor: string;
  action: AuditAction;
  /** What it was done to: a rollout id, a device id, a target name, a blob hash. */
  subject: string;
  detail: Record<string, unknown>;
}

export type AuditAction =
  | 'rollout.create' | 'rollout.pause' | 'rollout.resume' | 'rollout.promote' | 'rollout.halt'
  | 'device.enroll' | 'device.revoke' | 'blob.upload' | 'blob.collect' | 'publish' | 'root.update';

/** Target bytes by SHA-256. A blob becomes visible only complete, hashed and durable. */
export interface BlobStore {
  /**
   * Stream `length` bytes in; they become readable under `sha256` only once they hashed to
   * it and are on disk (E_UPLOAD_MISMATCH otherwise, and nothing is left behind).
   */
  put(sha256: string, length: number, body: AsyncIterable<Uint8Array>, check?: BlobCheck): Promise<'stored' | 'existed'>;
  /** Every stored blob with when it was stored (unix seconds; an upload of held bytes renews it). */
  list(): Promise<{ sha256: string; length: number; storedAt: number }[]>;
  remove(sha256: string): Promise<void>;
  stat(sha256: string): Promise<{ length: number } | null>;
  /** Bytes [start, end] inclusive. */
  read(sha256: string, start: number, end: number): AsyncIterable<Uint8Array>;
  readAll(sha256: string): Promise<Uint8Array>;
  /** Remove what interrupted uploads left; called on start. */
  recover(): Promise<{ removed: number }>;
}

/**
 * Called with the complete, hashed bytes of a new blob before it becomes visible; throwing
 * refuses the upload and nothing is kept.
 */
export type BlobCheck = (bytes: Uint8Array) => void | Promise<void>;

export interface Storage {
  readonly blobs: BlobStore;

  latestMetadata(role: MetadataRole): Promise<MetadataRecord | null>;
  /** The latest version of `role` (0 = none), without its bytes: what a cache keyed by version checks per request. */
  latestVersion(role: MetadataRole): Promise<number>;
  metadata(role: MetadataRole, version: number): Promise<MetadataRecord | null>;
  /**
   * Make new metadata, and the targets it names, visible in one transaction. Refused with
   * E_CONFLICT when a role's latest version is no longer `expect[role]` (0 = none yet).
   */
  commitMetadata(records: MetadataRecord[], targets: TargetRecord[], expect: Partial<Record<MetadataRole, number>>): Promise<void>;
  target(name: string, sha256: string): Promise<TargetRecord | null>;

  recordCheckin(c: DeviceCheckin): Promise<DeviceRecord>;
  /**
   * A check-in that changed nothing but the time: the device's last-seen time becomes `at` (if
   * later), written within a second together with others' (last-seen.ts). This storage's own
   * reads see it at once; a process killed before the write loses only these times.
   */
  touchCheckin(id: string, at: number): Promise<void>;
  device(id: string): Promise<DeviceRecord | null>;
  /**
   * `revocation(id)`, `device(id)`, `hasFailed(id, target)` for each rollout's target and
   * whether `rolloutDevice(rollout, id)` exists for each rollout, as one read.
   */
  checkinState(id: string, rollouts: readonly Pick<RolloutRecord, 'id' | 'target'>[]): Promise<CheckinState>;
  devices(limit: number): Promise<DeviceRecord[]>;
  fleet(): Promise<FleetRow[]>;
  countDevices(board: string, channel: string): Promise<number>;
  setDeviceError(id: string, code: string, at: number): Promise<void>;
  revoke(r: RevocationRecord): Promise<void>;
  revocation(id: string): Promise<RevocationRecord | null>;
  revocations(): Promise<RevocationRecord[]>;

  /** Insert a rollout; active or paused rollouts of the same board and channel become superseded. */
  createRollout(r: Omit<RolloutRecord, 'id'>): Promise<RolloutRecord>;
  rollout(id: string): Promise<RolloutRecord | null>;
  rollouts(filter?: { board?: string; channel?: string; states?: RolloutState[] }): Promise<RolloutRecord[]>;
  updateRollout(id: string, patch: RolloutPatch): Promise<RolloutRecord>;
  rolloutDevice(rolloutId: string, deviceId: string): Promise<RolloutDeviceRecord | null>;
  /** Insert or replace the device's status in the rollout. */
  recordRolloutDevice(r: RolloutDeviceRecord): Promise<void>;
  /** Insert the device's `offered` row unless it has one; true if this call inserted it. */
  offerRolloutDevice(r: RolloutDeviceRecord): Promise<boolean>;
  /**
   * Record a device's report and, if the rollout is active and `halt` gives a reason on the
   * counts including this report, halt it: one transaction, reports of one rollout in one
   * order across every replica, so the halt happens at one exact count and exactly once
   * (`halted` is the reason only for the report that halted it). The halt's audit row
   * (`haltAudit`) is part of the same transaction: if it cannot be written, nothing is.
   */
  recordReport(r: RolloutDeviceRecord, halt: HaltRule | null, haltAudit?: HaltAudit): Promise<{ rollout: RolloutRecord; halted: string | null }>;
  rolloutCounts(rolloutId: string): Promise<RolloutCounts>;
  /** Has this device ever reported `failed` for this target, in any rollout? */
  hasFailed(deviceId: string, target: string): Promise<boolean>;

  /** Every target sha256 any stored targets metadata names (blobs the collector must keep). */
  referencedBlobs(): Promise<Set<string>>;

  audit(r: Omit<AuditRecord, 'seq'>): Promise<void>;
  /** Oldest first, from `since` (unix seconds) on, at most `limit` (the newest ones). */
  auditLog(filter?: { since?: number; limit?: number }): Promise<AuditRecord[]>;

  /**
   * Run `f` as the repository's only writer across every process sharing this storage (a
   * publish, a root update, snapshot/timestamp signing), so two replicas never sign the same
   * version. SQLite: one process owns the file, so the caller's own queue suffices.
   */
  exclusive<T>(f: () => Promise<T>): Promise<T>;

  close(): Promise<void>;
}

export function emptyCounts(): RolloutCounts {
  return { offered: 0, downloading: 0, staged: 0, 'booted-trial': 0, confirmed: 0, failed: 0 };
}
