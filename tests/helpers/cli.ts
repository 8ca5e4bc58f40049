/** Running the real `signet` CLI (the bundle a user runs) as a child process. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'signet.mjs');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function signet(args: string[], opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    ...opts,
    env: { ...process.env, SIGNET_PASSPHRASE: '', ...(opts.env ?? {}) },
  });
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The one-line error contract: `error[CODE]: ... — ...`, no stack trace, non-zero exit. */
export function expectOneLineError(r: CliResult, code: string): void {
  const lines = r.stderr.trim().split('\n');
  if (r.code === 0) throw new Error(`expected failure ${code}, got exit 0\n${r.stdout}`);
  if (lines.length !== 1) throw new Error(`expected one stderr line, got ${lines.length}:\n${r.stderr}`);
  if (!lines[0].startsWith(`error[${code}]: `)) throw new Error(`expected error[${code}], got: ${lines[0]}`);
  if (!lines[0].includes(' — ')) throw new Error(`error line has no hint: ${lines[0]}`);
  if (/^\s+at .*:\d+:\d+\)?$/m.test(r.stderr)) throw new Error(`stack trace leaked:\n${r.stderr}`);
}
