/**
 * The config store as a host offers it to the runtime (`__signet_host.config`): the boot stage
 * on a device (bootloader/src/device-main.ts), a file under Node (config-node.ts). Errors are
 * thrown with a stable `code` (bootloader/src/config-errors.ts).
 */
export interface HostConfig {
  get(key: string): string | undefined;
  set(key: string, value: unknown): void;
  delete(key: string): boolean;
  keys(): string[];
  file(name: string): string;
  secret(name: string): string;
}
