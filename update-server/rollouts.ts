/**
 * Rollouts as an admin sees them: create (per board and channel, a percentage and a halt
 * threshold), pause, resume, promote (raise the percentage), and status with progress.
 *
 * States: active → paused → active; active → halted (by the halt rule; resume clears it after
 * a person looked); active|paused → superseded (a newer rollout for the same board and channel).
 */
import { BOARD_ID, SEMVER } from '../sdk/image/manifest';
import { ServerError } from './errors';
import { CHANNEL, DEFAULT_CHANNEL, type RolloutStatus } from './types';
import type { Repository } from './repository';
import { rolloutsChanged } from './checkin-cache';
import { failureRate } from './rollout';
import type { DeviceBoot, RolloutRecord, Storage } from './storage';

export type { RolloutStatus } from './types';

export const DEFAULT_MIN_DEVICES = 3;

/** One device of a rollout's board and channel, as `GET /api/v1/rollouts/<id>/devices` lists it. */
export interface RolloutDeviceView {
  id: string;
  version: string;
  slot: string;
  boot: DeviceBoot | null;
  /** Its status in this rollout (null: not offered). */
  status: string | null;
  code: string | null;
  lastCheckin: number;
}

export class Rollouts {
  constructor(
    private readonly storage: Storage,
    private readonly repo: Repository,
    private readonly clock: () => number,
  ) {}

  async create(body: Record<string, unknown>): Promise<RolloutStatus> {
    const board = body.board;
    const version = body.version;
    const channel = body.channel ?? DEFAULT_CHANNEL;
    const percent = body.percent;
    const rate = body.haltFailureRate;
    const minDevices = body.minDevices ?? DEFAULT_MIN_DEVICES;
    if (typeof board !== 'string' || !BOARD_ID.test(board)) throw new ServerError('E_BAD_REQUEST', '"board" must be a board id');
    if (typeof version !== 'string' || !SEMVER.test(version)) throw new ServerError('E_BAD_REQUEST', '"version" must be a semantic version');
    if (typeof channel !== 'string' || !CHANNEL.test(channel)) throw new ServerError('E_BAD_REQUEST', '"channel" must be a channel name');
    if (typeof percent !== 'number' || !Number.isInteger(percent) || percent < 0 || percent > 100) {
      throw new ServerError('E_BAD_REQUEST', '"percent" must be an integer 0..100');
    }
    if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) throw new ServerError('E_BAD_REQUEST', '"haltFailureRate" must be 0..1');
    if (typeof minDevices !== 'number' || !Number.isInteger(minDevices) || minDevices < 1 || minDevices > 1_000_000) {
      throw new ServerError('E_BAD_REQUEST', '"minDevices" must be a positive integer');
    }
    const kind = body.kind ?? 'app';
    if (kind !== 'app' && kind !== 'boot') throw new ServerError('E_BAD_REQUEST', '"kind" must be "app" or "boot"');
    const targets = await this.repo.currentTargets();
    const matches = Object.keys(targets?.signed.targets ?? {}).filter((n) => {
      const c = targets!.signed.targets[n].custom;
      return c.board === board && c.version === version && (c.kind === 'boot') === (kind === 'boot') && (body.name === undefined || c.name === body.name);
    });
    if (matches.length === 0) throw new ServerError('E_NOT_FOUND', `no published ${kind === 'boot' ? 'boot image' : 'target'} for ${board} version ${version}; publish it first`);
    if (matches.length > 1) throw new ServerError('E_BAD_REQUEST', `several targets match (${matches.join(', ')}); give "name"`);
    const now = this.clock();
    const r = await this.storage.createRollout({
      board, channel, version, target: matches[0], percent, haltFailureRate: rate, minDevices, state: 'active', reason: null,
      createdAt: now, updatedAt: now,
    });
    rolloutsChanged(this.storage);
    return this.status(r.id);
  }

  async status(id: string): Promise<RolloutStatus> {
    const r = await this.storage.rollout(id);
    if (!r) throw new ServerError('E_NOT_FOUND', 'no rollout ' + id);
    const counts = await this.storage.rolloutCounts(id);
    const eligible = await this.storage.countDevices(r.board, r.channel);
    return { ...r, counts, failureRate: failureRate(counts), eligible, expected: Math.round((eligible * r.percent) / 100) };
  }

  /**
   * The devices in a rollout's scope (its board and channel) with what each last reported
   * running: app version and, on A/B boot slots, boot image version, counter and slot.
   */
  async devicesOf(id: string, limit = 1000): Promise<RolloutDeviceView[]> {
    const r = await this.need(id);
    const out: RolloutDeviceView[] = [];
    for (const d of await this.storage.devices(limit * 4)) {
      if (d.board !== r.board || d.channel !== r.channel) continue;
      const rd = await this.storage.rolloutDevice(id, d.id);
      out.push({ id: d.id, version: d.version, slot: d.slot, boot: d.boot ?? null, status: rd ? rd.status : null, code: rd ? rd.code : null, lastCheckin: d.lastCheckin });
      if (out.length >= limit) break;
    }
    return out;
  }

  async list(): Promise<RolloutStatus[]> {
    const all = await this.storage.rollouts();
    const out: RolloutStatus[] = [];
    for (const r of all) out.push(await this.status(r.id));
    return out;
  }

  async pause(id: string): Promise<RolloutStatus> {
    const r = await this.need(id);
    if (r.state !== 'active') throw new ServerError('E_ROLLOUT_STATE', `rollout ${id} is ${r.state}, only an active rollout can be paused`);
    await this.storage.updateRollout(id, { state: 'paused', reason: 'paused by an admin', at: this.clock(), from: ['active'] });
    rolloutsChanged(this.storage);
    return this.status(id);
  }

  async resume(id: string): Promise<RolloutStatus> {
    const r = await this.need(id);
    if (r.state !== 'paused' && r.state !== 'halted') {
      throw new ServerError('E_ROLLOUT_STATE', `rollout ${id} is ${r.state}, only a paused or halted rollout can be resumed`);
    }
    await this.storage.updateRollout(id, { state: 'active', reason: null, at: this.clock(), from: ['paused', 'halted'] });
    rolloutsChanged(this.storage);
    return this.status(id);
  }

  /** Raise the percentage (default 100). A halted rollout must be resumed first. */
  async promote(id: string, body: Record<string, unknown>): Promise<RolloutStatus> {
    const r = await this.need(id);
    const percent = body.percent ?? 100;
    if (typeof percent !== 'number' || !Number.isInteger(percent) || percent < r.percent || percent > 100) {
      throw new ServerError('E_BAD_REQUEST', `"percent" must be an integer from ${r.percent} to 100`);
    }
    if (r.state !== 'active' && r.state !== 'paused') {
      throw new ServerError('E_ROLLOUT_STATE', `rollout ${id} is ${r.state}; resume it before promoting`);
    }
    await this.storage.updateRollout(id, { percent, at: this.clock(), from: ['active', 'paused'] });
    rolloutsChanged(this.storage);
    return this.status(id);
  }

  private async need(id: string): Promise<RolloutRecord> {
    const r = await this.storage.rollout(id);
    if (!r) throw new ServerError('E_NOT_FOUND', 'no rollout ' + id);
    return r;
  }
}
