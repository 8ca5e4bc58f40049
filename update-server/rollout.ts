/**
 * Rollout rules, pure (docs/ota-protocol.md §3): which bucket a device falls in, whether a
 * rollout should halt, whether a device gets an offer, and semantic-version order.
 */
import { createHash } from 'node:crypto';
import type { DeviceRecord, RolloutCounts, RolloutRecord } from './storage';

/**
 * A device's bucket in a rollout, 0..99: the first 4 bytes of SHA-256(rolloutId ":" deviceId)
 * as a big-endian integer, mod 100. Stable per (rollout, device), and independent across
 * rollouts, so the same devices are not always the first to take a release.
 */
export function bucketOf(rolloutId: string, deviceId: string): number {
  const h = createHash('sha256').update(rolloutId + ':' + deviceId, 'utf8').digest();
  return h.readUInt32BE(0) % 100;
}

export function inRollout(rollout: Pick<RolloutRecord, 'id' | 'percent'>, deviceId: string): boolean {
  return bucketOf(rollout.id, deviceId) < rollout.percent;
}

/** failed / (failed + confirmed); 0 before any device finished. */
export function failureRate(c: RolloutCounts): number {
  const done = c.failed + c.confirmed;
  return done === 0 ? 0 : c.failed / done;
}

/**
 * The reason to halt, or null. A rollout halts when its failure rate is above its threshold
 * with at least `minDevices` finished devices (so one early failure in a big fleet does not
 * stop it, and a threshold of 0 halts on the first failure once enough devices reported).
 */
export function haltReason(r: Pick<RolloutRecord, 'haltFailureRate' | 'minDevices'>, c: RolloutCounts): string | null {
  const done = c.failed + c.confirmed;
  if (done < r.minDevices || c.failed === 0) return null;
  const rate = failureRate(c);
  if (rate <= r.haltFailureRate) return null;
  return `failure rate ${rate.toFixed(3)} (${c.failed} failed of ${done} finished) exceeded the halt threshold ${r.haltFailureRate}`;
}

export type NoOfferReason = 'no-rollout' | 'not-in-bucket' | 'up-to-date' | 'newer' | 'failed-before' | 'counter-below-floor' | 'target-missing';

/** A boot-image rollout (its target is a FIT, `<board>/boot-<version>.itb`) rather than an app rollout. */
export function isBootRollout(r: Pick<RolloutRecord, 'target'>): boolean {
  return /\.itb$/.test(r.target);
}

/**
 * Semantic-version precedence (semver.org §11): -1, 0, 1. Build metadata is ignored; a
 * pre-release sorts before its release.
 */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const noBuild = v.split('+')[0];
    const dash = noBuild.indexOf('-');
    const core = (dash < 0 ? noBuild : noBuild.slice(0, dash)).split('.').map((x) => Number(x));
    const pre = dash < 0 ? [] : noBuild.slice(dash + 1).split('.');
    return { core, pre };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.core[i] ?? 0) - (y.core[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  if (!x.pre.length || !y.pre.length) return x.pre.length === y.pre.length ? 0 : x.pre.length ? -1 : 1;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) {
      if (Number(p) !== Number(q)) return Number(p) < Number(q) ? -1 : 1;
    } else if (pn !== qn) return pn ? -1 : 1;
    else if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

export interface OfferTarget {
  version: string;
  securityCounter: number;
}

/** Whether a device gets this rollout's target now; null means yes. */
export function whyNoOffer(
  rollout: RolloutRecord,
  target: OfferTarget | null,
  device: Pick<DeviceRecord, 'id' | 'version' | 'securityCounter'>,
  failedBefore: boolean,
): NoOfferReason | null {
  if (!target) return 'target-missing';
  const cmp = compareVersions(device.version, target.version);
  if (cmp === 0) return 'up-to-date';
  if (cmp > 0) return 'newer';
  // The device would refuse it anyway (anti-rollback); do not make it download.
  if (target.securityCounter < device.securityCounter) return 'counter-below-floor';
  // A device whose update failed is not offered the same target again (no update loops).
  if (failedBefore) return 'failed-before';
  if (!inRollout(rollout, device.id)) return 'not-in-bucket';
  return null;
}
