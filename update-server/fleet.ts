/**
 * Devices talking to the server: check-in (record state, maybe offer an update) and status
 * reports (progress of an offered update; failures count towards the rollout's halt rule).
 */
import { consistentTargetPath } from '../sdk/ota/repository';
import { BOARD_ID, SEMVER } from '../sdk/image/manifest';
import { refuseRevoked, type Caller } from './auth';
import { ActiveRollouts, CurrentTargets, rolloutsChanged } from './checkin-cache';
import { ServerError } from './errors';
import type { Metrics } from './metrics';
import type { Repository } from './repository';
import { haltReason, isBootRollout, whyNoOffer } from './rollout';
import { CHANNEL, DEFAULT_CHANNEL, ERROR_CODE, type CheckinResult } from './types';
import { REPORT_STATUSES, type CheckinState, type DeviceBoot, type DeviceRecord, type RolloutRecord, type Storage, type UpdateStatus } from './storage';

export { CHANNEL, DEFAULT_CHANNEL, ERROR_CODE, type CheckinResult, type Offer } from './types';

function str(body: Record<string, unknown>, key: string, re: RegExp, what: string, optional = false): string | null {
  const v = body[key];
  if (v === undefined && optional) return null;
  if (typeof v !== 'string' || !re.test(v)) throw new ServerError('E_BAD_REQUEST', `"${key}" must be ${what}`);
  return v;
}

function uint(body: Record<string, unknown>, key: string): number {
  const v = body[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ServerError('E_BAD_REQUEST', `"${key}" must be an integer 0..2^32-1`);
  return v;
}

/** The check-in's optional `boot` object: the boot image a device with A/B boot slots runs. */
function bootOf(v: unknown): DeviceBoot | null {
  if (v === undefined) return null;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ServerError('E_BAD_REQUEST', '"boot" must be { version, securityCounter, slot }');
  const b = v as Record<string, unknown>;
  return {
    version: str(b, 'version', SEMVER, 'a semantic version')!,
    securityCounter: uint(b, 'securityCounter'),
    slot: str(b, 'slot', /^[ab]$/, 'a boot slot letter ("a" or "b")')!,
  };
}

/** What a check-in says of the device is what is stored (only its time is new): nothing to write but the last-seen time. */
function unchanged(before: DeviceRecord, c: Parameters<Storage['recordCheckin']>[0]): boolean {
  if (c.code !== null) return false;
  for (const k of Object.keys(c) as (keyof typeof c)[]) {
    if (k === 'id' || k === 'at' || k === 'code') continue;
    if (JSON.stringify((before as unknown as Record<string, unknown>)[k] ?? null) !== JSON.stringify(c[k] ?? null)) return false;
  }
  return true;
}

export class Fleet {
  /** Read by every check-in, changed rarely: kept a moment (checkin-cache.ts). */
  private readonly activeRollouts: ActiveRollouts;
  private readonly targets: CurrentTargets;

  constructor(
    private readonly storage: Storage,
    repo: Repository,
    private readonly metrics: Metrics,
    private readonly clock: () => number,
  ) {
    this.activeRollouts = new ActiveRollouts(storage);
    this.targets = new CurrentTargets(repo);
  }

  /**
   * A device's check-in. `caller` is identified by its certificate but not yet checked against
   * revocations: that is the first thing done here, from the check-in's one read
   * (`Storage.checkinState`), before the body is read or anything is written.
   */
  async checkin(caller: Caller, readBody: () => Promise<Record<string, unknown>>): Promise<CheckinResult> {
    // The rollouts of the certificate's board and channel: checkBinding below refuses any other.
    const active = caller.board ? await this.activeRollouts.get(caller.board, caller.channel ?? DEFAULT_CHANNEL) : [];
    const state = await this.storage.checkinState(caller.id, active);
    refuseRevoked(caller.id, state.revocation);
    const body = await readBody();
    const board = str(body, 'board', BOARD_ID, 'a board id')!;
    const version = str(body, 'version', SEMVER, 'a semantic version')!;
    const securityCounter = uint(body, 'securityCounter');
    const slot = str(body, 'slot', /^[a-z]$/, 'a slot letter ("a" or "b")')!;
    const claimed = str(body, 'channel', CHANNEL, 'a channel name', true);
    const status = str(body, 'status', /^[a-z][a-z-]{0,31}$/, 'a status word', true);
    const code = str(body, 'code', ERROR_CODE, 'an error code like E_DIGEST', true);
    const boot = bootOf(body.boot);
    // Before anything is written: the board and channel are the certificate's, not the body's.
    const { channel } = this.checkBinding(caller, board, claimed);
    const now = this.clock();
    // Enrollment happens offline (the vendor CA signs the certificate): the server learns of it
    // when a certificate first checks in, and records that as the device's enrollment.
    const before = state.device;
    if (!before || before.certSerial !== caller.serial) {
      await this.storage.audit({ at: now, actor: 'vendor-ca', action: 'device.enroll', subject: caller.id,
        detail: { board: caller.board, channel, serial: caller.serial, ...(before ? { previousSerial: before.certSerial } : {}) } });
    }
    const c = { id: caller.id, board, version, securityCounter, slot, channel, status, code, certSerial: caller.serial, at: now, boot };
    // Most check-ins change nothing but the time: that is written batched (last-seen.ts), not as one write each.
    let device: DeviceRecord;
    if (before && unchanged(before, c)) {
      await this.storage.touchCheckin(c.id, now);
      device = { ...before, lastCheckin: Math.max(before.lastCheckin, now) };
    } else {
      device = await this.storage.recordCheckin(c);
    }
    this.metrics.checkins++;
    return this.offerFor(device, active, state);
  }

  private async offerFor(device: DeviceRecord, active: RolloutRecord[], state: CheckinState): Promise<CheckinResult> {
    // One active rollout per board, channel and kind (app image, boot image): creating one
    // supersedes the previous of its kind, so a combined release is an app and a boot rollout.
    const app = await this.offerOf(active.find((r) => !isBootRollout(r)), device, state);
    // Only a device that reported its boot image (it has A/B boot slots) hears about boot images.
    if (!device.boot) return app;
    const boot = await this.offerOf(active.find(isBootRollout), { ...device, version: device.boot.version, securityCounter: device.boot.securityCounter }, state);
    return { ...app, bootOffer: boot.offer, ...(boot.reason ? { bootReason: boot.reason } : {}) };
  }

  /** The offer of one rollout to a device (for a boot rollout: the device as its boot image). */
  private async offerOf(rollout: RolloutRecord | undefined, device: DeviceRecord, state: CheckinState): Promise<CheckinResult> {
    if (!rollout) return { offer: null, reason: 'no-rollout' };
    // A rollout newer than the cached targets names a target they lack: ask the storage then.
    const entry = (await this.targets.get())?.signed.targets[rollout.target] ?? (await this.targets.get(true))?.signed.targets[rollout.target] ?? null;
    const why = whyNoOffer(rollout, entry ? entry.custom : null, device, state.failed.includes(rollout.target));
    if (why) return { offer: null, reason: why };
    const f = entry!;
    // Insert-if-absent in one statement: a device checking in on two replicas at once is offered
    // once, and an offer never overwrites a status it already reported. A row the check-in's
    // read already found (rows are never deleted) needs no insert: it would change nothing.
    if (!state.offered.includes(rollout.id)) {
      const fresh = await this.storage.offerRolloutDevice({
        rolloutId: rollout.id, deviceId: device.id, target: rollout.target, status: 'offered', code: null, updatedAt: this.clock(),
      });
      if (fresh) this.metrics.offers++;
    }
    return {
      offer: {
        target: rollout.target, version: f.custom.version, securityCounter: f.custom.securityCounter, length: f.length,
        sha256: f.hashes.sha256, rollout: rollout.id, path: consistentTargetPath(rollout.target, f.hashes.sha256),
      },
    };
  }

  async report(caller: Caller, body: Record<string, unknown>): Promise<{ ok: true; rollout: RolloutRecord }> {
    const rolloutId = str(body, 'rollout', /^r\d{1,9}$/, 'a rollout id')!;
    const target = typeof body.target === 'string' ? body.target : '';
    const status = body.status as UpdateStatus;
    if (!REPORT_STATUSES.includes(status)) throw new ServerError('E_BAD_REQUEST', `"status" must be one of ${REPORT_STATUSES.join(', ')}`);
    const code = str(body, 'code', ERROR_CODE, 'an error code like E_DIGEST', true);
    const bound = this.checkBinding(caller, str(body, 'board', BOARD_ID, 'a board id', true), str(body, 'channel', CHANNEL, 'a channel name', true));
    const rollout = await this.storage.rollout(rolloutId);
    if (!rollout) throw new ServerError('E_NOT_FOUND', 'no rollout ' + rolloutId);
    // A report moves a rollout's counts (and can halt it): only devices of its board and channel.
    if (rollout.board !== bound.board || rollout.channel !== bound.channel) {
      throw new ServerError('E_DEVICE_BOARD', `${caller.id} is enrolled for ${bound.board}/${bound.channel}; rollout ${rolloutId} is for ${rollout.board}/${rollout.channel}`);
    }
    if (rollout.target !== target) throw new ServerError('E_BAD_REQUEST', `rollout ${rolloutId} is for ${rollout.target}, not ${target}`);
    // Only devices the rollout offered its target to may move its counts.
    const prev = await this.storage.rolloutDevice(rolloutId, caller.id);
    if (!prev) throw new ServerError('E_BAD_REQUEST', `${caller.id} was not offered ${target} in rollout ${rolloutId}`);
    const now = this.clock();
    // The report, the counts it moves and the halt it may cause are one transaction in the
    // storage (the rollout row locked): concurrent reports on any number of replicas halt the
    // rollout at the same count as one by one, and only one of them halts it. The halt's audit
    // row is written in that transaction too: a crash cannot leave a halt without its audit line.
    const finished = status === 'failed' || status === 'confirmed';
    const { rollout: current, halted } = await this.storage.recordReport(
      { rolloutId, deviceId: caller.id, target, status, code, updatedAt: now }, finished ? haltReason : null,
      (reason) => ({ at: now, actor: 'server', action: 'rollout.halt', subject: rolloutId, detail: { reason, lastReport: caller.id } }));
    this.metrics.reports[status] = (this.metrics.reports[status] ?? 0) + 1;
    if (status === 'failed') {
      this.metrics.failures++;
      await this.storage.setDeviceError(caller.id, code ?? 'E_UPDATE_FAILED', now);
    }
    if (halted) {
      rolloutsChanged(this.storage);
      this.metrics.halts++;
    }
    return { ok: true, rollout: current };
  }

  /**
   * The board and channel bound to the caller's certificate at enrollment; a claim of another
   * is refused (E_DEVICE_BOARD), as is a certificate enrolled before binding (fail closed).
   */
  private checkBinding(caller: Caller, board: string | null, channel: string | null): { board: string; channel: string } {
    if (!caller.board) {
      throw new ServerError('E_DEVICE_BOARD', `the certificate of ${caller.id} names no board (enrolled before boards were bound to devices); enroll it again with --board`);
    }
    const boundChannel = caller.channel ?? DEFAULT_CHANNEL;
    if (board !== null && board !== caller.board) {
      throw new ServerError('E_DEVICE_BOARD', `${caller.id} is enrolled for board ${caller.board}, not ${board}`);
    }
    if (channel !== null && channel !== boundChannel) {
      throw new ServerError('E_DEVICE_BOARD', `${caller.id} is enrolled for channel ${boundChannel}, not ${channel}`);
    }
    return { board: caller.board, channel: boundChannel };
  }

  async devices(limit = 1000): Promise<DeviceRecord[]> {
    return this.storage.devices(limit);
  }

  async revoke(id: string, reason: string): Promise<{ id: string; reason: string; at: number }> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) throw new ServerError('E_BAD_REQUEST', 'bad identity id');
    const r = { id, reason: reason.slice(0, 200) || 'revoked by an admin', at: this.clock() };
    await this.storage.revoke(r);
    return r;
  }
}
