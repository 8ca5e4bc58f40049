/**
 * What can go wrong with the config store (docs/boot-state.md §Config store). Closed set; the
 * runtime's `config` throws these (`e.code`) to the service. Messages name the key, never a
 * value: a value may be a secret.
 */
import { hintedError } from '../../sdk/util/errors';

export type ConfigErrorCode =
  | 'E_CONFIG_KEY' // a key or name outside the pattern
  | 'E_CONFIG_VALUE' // a value that is not a string (or bytes, for files and secrets)
  | 'E_CONFIG_TOO_LARGE' // one value over its cap
  | 'E_CONFIG_FULL' // the store would exceed its total cap
  | 'E_CONFIG_MISSING' // a file or secret that was never provisioned
  | 'E_CONFIG_NO_STORE'; // no state partition, or one too small to hold the store

export class ConfigError extends hintedError<ConfigErrorCode>('ConfigError', {
  E_CONFIG_KEY: 'use 1-48 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
  E_CONFIG_VALUE: 'store a string (settings) or a string/bytes (provisioned files and secrets)',
  E_CONFIG_TOO_LARGE: 'settings hold at most 1024 bytes, files and secrets 4096 (UTF-8)',
  E_CONFIG_FULL: 'delete settings you no longer need; the store holds 8160 bytes of keys and values',
  E_CONFIG_MISSING: 'provision it with `signet device provision`',
  E_CONFIG_NO_STORE: 'the board\'s state partition must be at least 33 KiB',
}) {}
