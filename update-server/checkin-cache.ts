/**
 * What every check-in reads and what rarely changes, kept for a moment in each server process
 * (docs/update-server.md "What a check-in costs"): the active rollouts of a board and channel,
 * and the current targets metadata. Writes made by this process drop the cached rollouts at
 * once (`rolloutsChanged`); what another replica changed is seen within `CHECKIN_CACHE_MS`.
 *
 * Only offers are answered from these: a report, its count and the halt it causes are always
 * the storage's one transaction (the rollout's state is read there, under its lock).
 */
import type { Repository } from './repository';
import type { RolloutRecord, Storage } from './storage';

/** How long a check-in may answer from rollouts and targets another replica has since changed. */
export const CHECKIN_CACHE_MS = 1000;

const generations = new WeakMap<object, number>();

/** This process changed rollouts in `storage` (created, paused, resumed, promoted, halted). */
export function rolloutsChanged(storage: Storage): void {
  generations.set(storage, (generations.get(storage) ?? 0) + 1);
}

const MAX_KEYS = 10_000;

export class ActiveRollouts {
  private readonly cache = new Map<string, { at: number; generation: number; value: RolloutRecord[] }>();

  constructor(private readonly storage: Storage, private readonly ttlMs = CHECKIN_CACHE_MS) {}

  /** The active rollouts of a board and channel, newest first. */
  async get(board: string, channel: string): Promise<RolloutRecord[]> {
    const key = board + '\n' + channel;
    // Taken before the read: a change made while it runs makes the next call read again.
    const generation = generations.get(this.storage) ?? 0;
    const at = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.generation === generation && at - hit.at < this.ttlMs) return hit.value;
    const value = await this.storage.rollouts({ board, channel, states: ['active'] });
    if (this.cache.size >= MAX_KEYS) this.cache.clear();
    this.cache.set(key, { at, generation, value });
    return value;
  }
}

type Targets = Awaited<ReturnType<Repository['currentTargets']>>;

export class CurrentTargets {
  private cached: { at: number; value: Targets } | null = null;

  constructor(private readonly repo: Repository, private readonly ttlMs = CHECKIN_CACHE_MS) {}

  /** The current targets metadata; `fresh` asks the storage (a rollout names a target the cached copy lacks). */
  async get(fresh = false): Promise<Targets> {
    const at = Date.now();
    if (!fresh && this.cached && at - this.cached.at < this.ttlMs) return this.cached.value;
    const value = await this.repo.currentTargets();
    this.cached = { at, value };
    return value;
  }
}
