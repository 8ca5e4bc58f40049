/**
 * Shapes and patterns the server's services share: check-in answers, rollout status, audit
 * records. Kept apart from the classes that produce them so that fleet, rollouts, metrics and
 * the dashboard import types from here and never from each other (no import circle).
 */
import { CHANNEL_NAME, DEFAULT_DEVICE_CHANNEL } from '../sdk/keys/device';
import type { NoOfferReason } from './rollout';
import type { RolloutCounts, RolloutRecord } from './storage';

export const CHANNEL = CHANNEL_NAME;
export const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,47}$/;
export const DEFAULT_CHANNEL = DEFAULT_DEVICE_CHANNEL;

export interface Offer {
  target: string;
  version: string;
  securityCounter: number;
  length: number;
  sha256: string;
  rollout: string;
  /** Where to fetch it: `/tuf/targets/<path>` (the consistent-snapshot name). */
  path: string;
}

export interface CheckinResult {
  offer: Offer | null;
  /** Why there is no offer (advice for logs; the device decides nothing from it). */
  reason?: NoOfferReason;
  /** A boot image (FIT) for a device that reported A/B boot slots, from the board's boot-image rollout. */
  bootOffer?: Offer | null;
  bootReason?: NoOfferReason;
}

export interface RolloutStatus extends RolloutRecord {
  counts: RolloutCounts;
  failureRate: number;
  /** Devices of this board and channel that have checked in. */
  eligible: number;
  /** About how many of them the percentage covers. */
  expected: number;
}
