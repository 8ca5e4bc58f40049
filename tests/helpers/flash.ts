/** Shared by the tests that flash a real U-Boot in QEMU (tests/flash-*.test.ts). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Board } from '../../sdk/board';
import { loadFitSigner } from '../../sdk/disk/fit-key';
import type { FlashEvent, FlashSummary } from '../../sdk/flash/flasher';
import { standInBootDisk, UbootRig, type UbootRigOptions } from './uboot-rig';
import { CLI, ROOT, signet, type CliResult } from './cli';

export interface RunningSignet {
  child: ChildProcess;
  /** stdout so far. */
  stdout(): string;
  done: Promise<CliResult>;
}

/** The CLI as a child process, without blocking this process (the rig's relay lives here). */
export function spawnSignet(args: string[], env: Record<string, string> = {}): RunningSignet {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, SIGNET_PASSPHRASE: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close', not 'exit': only then has all of the child's output arrived.
  const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return { child, stdout: () => stdout, done };
}

export const runSignetAsync = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => spawnSignet(args, env).done;

/** An emulated board for the length of `body`; stopped and removed afterwards, whatever happens. */
export async function withRig<T>(options: UbootRigOptions, body: (rig: UbootRig) => Promise<T>): Promise<T> {
  const rig = await UbootRig.start(options);
  try {
    return await body(rig);
  } finally {
    await rig.stop();
    rig.cleanup();
  }
}

/** `signet flash --json` output as events. */
export const flashEvents = (stdout: string): FlashEvent[] => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as FlashEvent);

export function flashSummary(events: FlashEvent[]): FlashSummary {
  const done = events.find((e) => e.type === 'done');
  if (!done || done.type !== 'done') throw new Error('no summary event');
  return done.summary;
}

export const expectOk = (r: CliResult): void => expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);

export interface FlashWorkspace {
  keys: string;
  /** `signet disk` of examples/hello 1.2.0 (security counter 3) for the board. */
  disk: string;
  keyDtbPath: string;
  keyDtb: Uint8Array;
  /** The same disk with a stand-in boot image that only prints `banner`: seconds over a line, not minutes. */
  standIn: string;
}

/** Keys, app, disk, key DTB and stand-in disk in `work`, made with the real CLI. */
export async function flashWorkspace(work: string, board: Board, banner: string, diskArgs: string[] = []): Promise<FlashWorkspace> {
  const keys = join(work, 'keys');
  expectOk(signet(['keys', 'init', '--dir', keys]));
  const app = join(work, 'hello.simg');
  expectOk(signet(['build', '--project', join(ROOT, 'examples', 'hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', keys, '--out', app, '--no-typecheck']));
  const disk = join(work, 'disk.img');
  const keyDtbPath = join(work, 'key.dtb');
  expectOk(signet(['disk', app, '--board', board.id, '--keys', keys, '--out', disk, '--key-dtb', keyDtbPath, ...diskArgs], { timeout: 600_000 }));
  const standIn = join(work, 'stand-in.img');
  writeFileSync(standIn, await standInBootDisk(new Uint8Array(readFileSync(disk)), board, await loadFitSigner(keys), banner));
  return { keys, disk, keyDtbPath, keyDtb: new Uint8Array(readFileSync(keyDtbPath)), standIn };
}

/** A folder for SIGNET_BOARDS holding `board`'s shipped file, changed by `edit`. */
export function boardsWith(work: string, board: Board, edit: (b: Board) => void): string {
  const dir = mkdtempSync(join(work, 'boards-'));
  mkdirSync(join(dir, board.id), { recursive: true });
  const b = JSON.parse(readFileSync(join(ROOT, 'boards', board.id, 'board.json'), 'utf8')) as Board;
  edit(b);
  writeFileSync(join(dir, board.id, 'board.json'), JSON.stringify(b, null, 2));
  return dir;
}

/**
 * The console after the flasher's `reset`: U-Boot verified the FIT (3 `fit+ OK`: kernel, ramdisk,
 * fdt), Linux started, then the boot stage verified slot A, then the app printed its line.
 */
export function expectAppBooted(console: string): void {
  const afterReset = console.slice(console.lastIndexOf('resetting'));
  expect(afterReset.match(/sha256,rsa2048:fit\+ OK/g)?.length).toBe(3);
  const lines = afterReset.split(/\r?\n/);
  const okAt = lines.findIndex((l) => l === 'boot[OK] slot=a version=1.2.0');
  expect(okAt).toBeGreaterThan(lines.findIndex((l) => l.includes('Starting kernel')));
  expect(lines.findIndex((l) => l === 'hello from signet')).toBeGreaterThan(okAt);
}

/** The board's storage holds `disk` byte for byte, except the state partition the boot stage has since written. */
export function expectFlashedAfterBoot(flashed: Uint8Array, disk: Uint8Array, board: Board): void {
  const state = board.flash.partitions.find((p) => p.name === 'state')!;
  const a = Buffer.from(flashed.buffer, flashed.byteOffset, flashed.byteLength);
  const b = Buffer.from(disk.buffer, disk.byteOffset, disk.byteLength);
  expect(a.length).toBe(b.length);
  expect(Buffer.compare(a.subarray(0, state.offset), b.subarray(0, state.offset))).toBe(0);
  expect(Buffer.compare(a.subarray(state.offset + state.size), b.subarray(state.offset + state.size))).toBe(0);
}
