/**
 * `config` in `signet/runtime`: a small key-value store for settings a service changes at run
 * time (a router's Wi-Fi name), and the files and secrets provisioned per device (a TLS
 * certificate and its key), kept in the state partition with the boot state's power-cut rules
 * (docs/boot-state.md §Config store, docs/runtime.md). On a device the boot stage provides it
 * (`__signet_host.config`); under Node it is a file (SIGNET_CONFIG_FILE) or memory.
 *
 * Every bad call throws an Error with a stable `code`: E_CONFIG_KEY, E_CONFIG_VALUE,
 * E_CONFIG_TOO_LARGE, E_CONFIG_FULL, E_CONFIG_MISSING, E_CONFIG_NO_STORE. Messages never
 * contain a value.
 */
import type { HostConfig } from './config-types';
import { codedError } from './host';
import { nodeConfig } from './config-node';

declare const __signet_host: { config?: HostConfig } | undefined;

let backend: HostConfig | null | undefined;

function store(): HostConfig {
  if (backend === undefined) {
    const host = typeof __signet_host !== 'undefined' ? __signet_host : undefined;
    backend = host && host.config ? host.config : nodeConfig();
  }
  if (!backend) throw codedError('E_CONFIG_NO_STORE', 'config: this host has no config store (not a Signet device, not Node)');
  return backend;
}

/** A setting, or undefined when it was never set. */
export function get(key: string): string | undefined {
  return store().get(key);
}

/** Store a setting (a string of at most 1024 UTF-8 bytes); written to flash before it returns. */
export function set(key: string, value: string): void {
  store().set(key, value);
}

/** Remove a setting; false when there was none. */
export function remove(key: string): boolean {
  return store().delete(key);
}
export { remove as delete };

/** The names of the settings, sorted. */
export function keys(): string[] {
  return store().keys();
}

/** A file provisioned for this device (e.g. its certificate), as text. */
export function file(name: string): string {
  return store().file(name);
}

/** A secret provisioned for this device (e.g. its TLS private key), as text. Never log it. */
export function secret(name: string): string {
  return store().secret(name);
}
