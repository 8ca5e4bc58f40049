/**
 * A fresh SoftHSM 2 token (Debian's softhsm2) in a test's own folder: its config file, a token
 * labelled `signet` with user PIN 1234, and the env a CLI child (or this process) needs to see it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const TOKEN_PIN = '1234';

export interface SoftHsm {
  env: Record<string, string>;
  /** `pkcs11:token=signet;object=LABEL?module-path=…` (+ `extra` query attributes, e.g. `&pin-value=…`). */
  uri(object: string, extra?: string): string;
  /** Runs OpenSC's pkcs11-tool against the token, logged in. */
  tool(args: string[]): string;
}

export function initSoftHsm(dir: string): SoftHsm {
  mkdirSync(join(dir, 'tokens'), { recursive: true });
  writeFileSync(join(dir, 'softhsm2.conf'), `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const env = { SOFTHSM2_CONF: join(dir, 'softhsm2.conf'), SIGNET_PKCS11_PIN: TOKEN_PIN };
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { env: { ...process.env, ...env }, stdio: 'pipe' }).toString();
  run('softhsm2-util', ['--init-token', '--free', '--label', 'signet', '--pin', TOKEN_PIN, '--so-pin', '5678']);
  return {
    env,
    uri: (object, extra = '') => `pkcs11:token=signet;object=${object}?module-path=${SOFTHSM_MODULE}${extra}`,
    tool: (args) => run('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', 'signet', '--login', '--pin', TOKEN_PIN, ...args]),
  };
}
