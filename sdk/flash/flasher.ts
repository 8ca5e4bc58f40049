/**
 * `signet flash`: write a disk image to a dev board's storage through its U-Boot console.
 *
 *   1. verify   the disk for this board (disk-check.ts) — a refusal sends nothing, the port is
 *               not even opened
 *   2. plan     cut it into fill and data chunks (flasher-plan.ts)
 *   3. attach   stop autoboot, get a prompt; note the U-Boot version and whether it has `unzip`;
 *               run the board's storageInit
 *   4. chunks   for each chunk: stage it in RAM (`mw` for fill; `loady` + our YMODEM sender,
 *               then `unzip` when compressed, for data) and check `crc32` of the RAM; write it
 *               with the board's write command; read it back into the other half of the window
 *               (cleared first, so a read that does nothing cannot pass) and check `crc32`.
 *               A failed step resyncs the console and repeats the chunk, a bounded number of
 *               times; then the flash fails with a typed code and is never reported as done.
 *   5. verify   re-read the whole flash range by range and compare CRCs again: a stray write
 *               cannot go unnoticed. A range that differs gets its chunks rewritten.
 *   6. env      only now: board.json serial.env with setenv (read back with printenv), saveenv.
 *               A board whose U-Boot cannot save its environment (serial.envMode "check") has
 *               it checked with printenv right after attach instead, before anything is
 *               written: a board that would not boot the disk is refused, not flashed.
 *   7. reset
 *
 * Every command the board runs comes from board.json (addresses, RAM window, storage commands,
 * block size, environment) or is a standard U-Boot command (loady, mw, unzip, crc32, setenv,
 * saveenv, reset).
 */
import * as zlib from 'node:zlib';
import type { Board } from '../board';
import { asSignetError } from '../disk/errors';
import { buildDigestFit, DIGEST_SELF_TEST, digestVerdict, type DigestTarget } from './digest-fit';
import { checkDisk, loadFlashTrust, type CheckedDisk, type FlashTrustSource, type VerifiedSlot } from './disk-check';
import { FlashError } from './flasher-errors';
import { DIGEST_AREA_BYTES, fastCrc32, planFlash, programRuns, type FlashChunk, type FlashPlan, type VerifyRange } from './flasher-plan';
import { openTransport, type Transport } from './transport';
import { UbootConsole, UbootError, ubootFailureLine, type CommandResult, type ConsoleStats, type UbootConsoleOptions } from './uboot';
import { UBOOT_VARIABLE_NAME } from './uboot-syntax';
import { sendYmodem, YmodemError, type YmodemSendOptions } from './ymodem';

export { FlashError } from './flasher-errors';
export type { FlashErrorCode } from './flasher-errors';

export interface FlashOptions {
  disk: string;
  board: Board;
  trust: FlashTrustSource;
  /** `unix:/path` or a serial device; or an open link (tests put a noisy line in between). */
  port: string | Transport;
  /** Line speed for a serial device; default the board's serial.baud. */
  baud?: number;
  /** Read each chunk's CRC from the board first and send only chunks that differ. */
  skipUnchanged?: boolean;
  /** Send data chunks gzipped when the board has `unzip` (default true). */
  compress?: boolean;
  /** Reset the board at the end (default true). */
  reset?: boolean;
  /** Largest data chunk in bytes (default 1 MiB, at most half the RAM window). */
  chunkBytes?: number;
  /** Attempts per chunk before the flash fails (default 5). */
  attempts?: number;
  /** How long to wait for a U-Boot prompt (default 60 s). */
  attachTimeoutMs?: number;
  onEvent?: (event: FlashEvent) => void;
  /**
   * Stops the flash (Ctrl-C): a YMODEM transfer under way is cancelled at once (CAN), a board
   * command is let finish; the board is left at its prompt, never reset, and the flash fails
   * with E_FLASH_INTERRUPTED. What was already written and verified stays: `--skip-unchanged`
   * resumes.
   */
  signal?: AbortSignal;
  onConsole?: UbootConsoleOptions['onConsole'];
  /** Overrides for the console driver (tests). */
  console?: Partial<UbootConsoleOptions>;
}

export interface SlotSummary {
  name: string;
  version: string;
  securityCounter: number;
}

export type FlashEvent =
  | { type: 'verified'; disk: string; board: string; bootImage: { bytes: number; keys: string[] }; slotA: SlotSummary; slotB: SlotSummary | null }
  | { type: 'planned'; diskBytes: number; chunks: number; dataBytes: number; fillBytes: number; gzBytes: number }
  | { type: 'attached'; port: string; uboot: string; unzip: boolean }
  /** Whether the board computes SHA-256 digests (imxtract on a digest FIT): what "unchanged" and the final check rest on. */
  | { type: 'digests'; available: boolean; targets: number }
  | { type: 'chunk'; index: number; offset: number; bytes: number; kind: 'data' | 'fill'; action: 'written' | 'unchanged'; sentBytes: number }
  | { type: 'retry'; index: number; offset: number; attempt: number; code: string; message: string }
  | { type: 'progress'; phase: 'write' | 'verify'; doneBytes: number; totalBytes: number; sentBytes: number; sendTotal: number; elapsedMs: number; serialBytesPerSecond: number; etaMs: number | null }
  | { type: 'env'; name: string; value: string; action: 'set' | 'checked' }
  | { type: 'saved' }
  | { type: 'reset' }
  | { type: 'done'; summary: FlashSummary };

export interface FlashSummary {
  disk: string;
  board: string;
  port: string;
  uboot: string;
  diskBytes: number;
  /** Bytes written and verified, and bytes found already on the board (--skip-unchanged). */
  writtenBytes: number;
  unchangedBytes: number;
  chunks: number;
  /** File bytes sent with YMODEM (compressed where that helped), and every byte it put on the wire. */
  sentBytes: number;
  wireBytes: number;
  /** Chunk attempts that had to be repeated; lines typed again because their echo differed. */
  retries: number;
  retypedLines: number;
  /** Lines that arrived damaged and were mended in place instead of typed again. */
  mendedLines: number;
  elapsedMs: number;
  transferMs: number;
  /** Disk bytes written and verified per second of the whole run. */
  effectiveBytesPerSecond: number;
  /** YMODEM file bytes per second while sending. */
  serialBytesPerSecond: number;
  env: string[];
  /** serial.envMode: the environment was set and saved, or found already in place. */
  envMode: 'save' | 'check';
  saved: boolean;
  reset: boolean;
}

/** Verify, then (and only then) open the port and flash. One call for the CLI. */
export async function flashDisk(o: FlashOptions): Promise<FlashSummary> {
  const started = Date.now();
  let disk: CheckedDisk;
  try {
    const trust = await loadFlashTrust(o.trust);
    disk = checkDisk(o.disk, o.board, trust);
  } catch (e) {
    throw asSignetError(e);
  }
  try {
    o.onEvent?.({
      type: 'verified',
      disk: o.disk,
      board: o.board.id,
      bootImage: { bytes: disk.bootImage.bytes, keys: disk.bootImage.keyNames },
      slotA: slotSummary(disk.slotA),
      slotB: disk.slotB ? slotSummary(disk.slotB) : null,
    });
    const s = o.board.serial;
    const nor = s.erase !== undefined;
    if (nor && (o.board.flash.eraseBlockSize === undefined || s.flashAddress === undefined)) {
      throw new FlashError('E_FLASH_BOARD', `board ${o.board.id} has serial.erase but no ${s.flashAddress === undefined ? 'serial.flashAddress' : 'flash.eraseBlockSize'}`, 'a NOR board names where its flash is mapped (serial.flashAddress) and its erase block (flash.eraseBlockSize)');
    }
    const plan = planFlash(
      disk.source,
      { loadAddress: BigInt(s.loadAddress), ramWindow: s.ramWindow, blockSize: o.board.flash.blockSize, ...(nor ? { eraseBlockSize: o.board.flash.eraseBlockSize, bankBytes: o.board.flash.size } : {}) },
      { chunkBytes: o.chunkBytes, compress: o.compress },
    );
    o.onEvent?.({ type: 'planned', diskBytes: plan.diskBytes, chunks: plan.chunks.length, dataBytes: plan.dataBytes, fillBytes: plan.fillBytes, gzBytes: plan.gzBytes });

    const ownLink = typeof o.port === 'string';
    const link = typeof o.port === 'string' ? await openTransport(o.port, { baud: o.baud ?? s.baud }).catch((e) => Promise.reject(asSignetError(e))) : o.port;
    const session = new FlashSession(link, disk, plan, o, started);
    try {
      return await session.run();
    } catch (e) {
      if (o.signal?.aborted) throw await session.interrupted(e);
      throw session.lineFailure(e) ?? asSignetError(e);
    } finally {
      if (ownLink) await link.close().catch(() => undefined);
    }
  } finally {
    disk.source.close();
  }
}

function slotSummary(s: VerifiedSlot): SlotSummary {
  return { name: s.manifest.name, version: s.manifest.version, securityCounter: s.manifest.securityCounter };
}

const hex = (n: number | bigint): string => '0x' + n.toString(16);
/** Hex without 0x, for U-Boot's memory commands (they read numbers as hex): shorter lines, fewer characters for line noise to hit. */
const bare = (n: number | bigint): string => n.toString(16);

/**
 * A board.json storage command for a range: `{addr}` the RAM address, `{block}` `{count}` the
 * range in flash.blockSize blocks (block storage), or `{flash}` `{last}` `{bytes}` its first and
 * last byte where serial.flashAddress maps the storage, and its length (memory-mapped NOR). Hex.
 */
export function storageCommand(template: string, addr: bigint, offset: number, bytes: number, blockSize: number, flashAddress?: bigint): string {
  const flash = (flashAddress ?? 0n) + BigInt(offset);
  return template
    .split('{addr}').join(hex(addr))
    .split('{block}').join(hex(offset / blockSize))
    .split('{count}').join(hex(bytes / blockSize))
    .split('{flash}').join(hex(flash))
    .split('{last}').join(hex(flash + BigInt(bytes) - 1n))
    .split('{bytes}').join(hex(bytes));
}

/** The CRC U-Boot printed for exactly [addr, addr+bytes), or undefined. */
export function parseCrc32Output(output: string, addr: bigint, bytes: number): number | undefined {
  const m = /crc32 for ([0-9a-fA-F]+) \.\.\. ([0-9a-fA-F]+) ==> ([0-9a-fA-F]{8})\b/.exec(output);
  if (!m) return undefined;
  if (BigInt('0x' + m[1]) !== addr || BigInt('0x' + m[2]) !== addr + BigInt(bytes) - 1n) return undefined;
  return parseInt(m[3]!, 16) >>> 0;
}

/** A CRC that did not match: of the staged RAM (`transfer`) or of what storage returned (`readback`). */
class CrcMismatch extends Error {
  constructor(
    readonly stage: 'transfer' | 'readback',
    readonly got: number | undefined,
    readonly want: number,
  ) {
    super(`${stage} crc32 ${got === undefined ? 'unreadable' : hex(got)}, expected ${hex(want)}`);
  }
}

/** Time bound for a command over `bytes` of RAM or storage: generous, it only catches a hang. */
const boundFor = (bytes: number): number => 30_000 + Math.ceil(bytes / 1024);
/** NOR programming may be a word at a time from the console (a few KiB/s under emulation): a hang bound only. */
const programBound = (bytes: number): number => 60_000 + bytes;

class FlashSession {
  private readonly console: UbootConsole;
  private readonly startedAt: number;
  private readonly port: string;
  private uboot = '';
  private unzip = false;
  private sendTotal = 0;
  private sentBytes = 0;
  private wireBytes = 0;
  private transferMs = 0;
  private doneBytes = 0;
  private writtenBytes = 0;
  private unchangedBytes = 0;
  private retries = 0;
  private lastProgress = 0;
  private phase: 'write' | 'verify' = 'write';
  private phaseStartedAt = 0;
  private readonly meter: LineMeter;
  /** The digest FIT on the board: which batch of targets it holds; null when the board cannot check digests. */
  private digests: { targets: DigestTarget[][]; loaded: number } | null = null;
  private readonly digestBatch = new Map<string, number>();
  /** NOR boards: where U-Boot sees the storage (serial.flashAddress). */
  private readonly flashAddress: bigint | undefined;

  constructor(
    private readonly link: Transport,
    private readonly disk: CheckedDisk,
    private readonly plan: FlashPlan,
    private readonly o: FlashOptions,
    startedAt: number,
  ) {
    const s = o.board.serial;
    this.startedAt = startedAt;
    this.port = link.address;
    this.console = new UbootConsole(link, {
      prompt: s.prompt,
      interruptKey: s.interruptKey,
      attachTimeoutMs: o.attachTimeoutMs,
      onConsole: o.onConsole,
      onRetype: () => this.checkLine(),
      ...o.console,
    });
    this.meter = new LineMeter(this.console.stats);
    this.flashAddress = s.erase !== undefined && s.flashAddress !== undefined ? BigInt(s.flashAddress) : undefined;
  }

  /**
   * The write step for a staged chunk. Block storage: serial.write over the chunk. NOR
   * (serial.erase): erase the chunk's erase blocks, then program only the parts that are not
   * 0xff (a fill chunk of 0xff is the erase alone). A cut in between leaves the chunk erased or
   * half programmed, never a neighbour touched (chunks are whole erase blocks): the read-back
   * finds it, and a resumed flash (--skip-unchanged) writes it again.
   */
  private async writeStaged(c: FlashChunk): Promise<void> {
    const s = this.o.board.serial;
    const { writeAddr, blockSize } = this.plan;
    if (s.erase === undefined) {
      await this.console.run(storageCommand(s.write, writeAddr, c.offset, c.bytes, blockSize), { timeoutMs: boundFor(c.bytes) });
      return;
    }
    await this.console.run(storageCommand(s.erase, writeAddr, c.offset, c.bytes, blockSize, this.flashAddress), { timeoutMs: boundFor(c.bytes), silentMs: 10_000 });
    const runs = c.kind === 'fill' ? (c.fill === 0xff ? [] : [{ offset: 0, bytes: c.bytes }]) : (c.programRuns ?? [{ offset: 0, bytes: c.bytes }]);
    for (const r of runs) {
      await this.console.run(storageCommand(s.write, writeAddr + BigInt(r.offset), c.offset + r.offset, r.bytes, blockSize, this.flashAddress), { timeoutMs: programBound(r.bytes), silentMs: programBound(r.bytes) });
    }
  }

  async run(): Promise<FlashSummary> {
    const s = this.o.board.serial;
    // 3. attach
    await this.console.attach();
    this.uboot = (await this.console.query('version')).output.split(/\r?\n/).find((l) => l.startsWith('U-Boot')) ?? 'U-Boot';
    this.unzip = this.o.compress !== false && !(await this.console.query('help unzip', { allowFailure: true })).output.includes('Unknown command');
    this.emit({ type: 'attached', port: this.port, uboot: this.uboot, unzip: this.unzip });
    const env = Object.entries(s.env ?? {});
    const envMode = s.envMode ?? 'save';
    if (envMode === 'check') for (const [name, value] of env) await this.checkEnv(name, value);
    if (s.storageInit) await this.console.run(s.storageInit);
    await this.defineMacros();
    this.sendTotal = this.plan.chunks.reduce((n, c) => n + this.sendSize(c), 0);

    await this.prepareDigests();

    // 4. chunks; with --skip-unchanged a verification range that already holds its bytes
    // (SHA-256) counts for all its chunks: one command instead of one per chunk
    for (const r of this.plan.ranges) {
      this.stopIfAsked();
      const skip = this.o.skipUnchanged === true;
      if (skip && (await this.storageHolds(r.offset, r.bytes, `r${this.plan.ranges.indexOf(r)}`, r.crc)) === 'match') {
        for (const i of r.chunks) this.unchanged(this.plan.chunks[i]!);
        continue;
      }
      for (const i of r.chunks) await this.flashChunk(this.plan.chunks[i]!, skip); // each attempt checks the signal
    }

    // 5. the whole flash again
    this.phase = 'verify';
    this.phaseStartedAt = Date.now();
    this.doneBytes = 0;
    for (const r of this.plan.ranges) {
      this.stopIfAsked();
      await this.verifyRange(r);
    }
    this.stopIfAsked();

    // 6. environment, only after everything is on the flash and checked
    let saved = false;
    try {
      for (const [name, value] of envMode === 'save' ? env : []) {
        await this.console.setenv(name, value);
        this.emit({ type: 'env', name, value, action: 'set' });
      }
      if (envMode === 'save' && env.length > 0) {
        await this.console.query(`setenv ${this.consoleVariable()}`, { allowFailure: true });
        // Not the flasher's macros and their variables either (defineMacros).
        await this.console.query('setenv sgs;setenv sgr;setenv sgk;setenv sgf;setenv sgd;setenv sgb;setenv sgn;setenv sgw;setenv sgc;setenv sgv;setenv sgi;setenv sgl', { allowFailure: true });
        await this.console.query('saveenv', { timeoutMs: 60_000 });
        saved = true;
        this.emit({ type: 'saved' });
      }
    } catch (e) {
      if (!(e instanceof UbootError) || e.code === 'E_UBOOT_LINK' || e.code === 'E_UBOOT_NO_PROMPT') throw e;
      throw new FlashError(
        'E_FLASH_COMMAND',
        `the disk was written and verified, but U-Boot did not take its environment (${e.message})`,
        'the board will not boot it as configured: check its environment storage (saveenv) and serial.env in the board file, then run again',
        { reason: e.code },
        e,
      );
    }

    // 7. reset
    const reset = this.o.reset !== false;
    if (reset) {
      await this.console.reset();
      this.emit({ type: 'reset' });
    }

    const elapsedMs = Date.now() - this.startedAt;
    const summary: FlashSummary = {
      disk: this.disk.path,
      board: this.o.board.id,
      port: this.port,
      uboot: this.uboot,
      diskBytes: this.plan.diskBytes,
      writtenBytes: this.writtenBytes,
      unchangedBytes: this.unchangedBytes,
      chunks: this.plan.chunks.length,
      sentBytes: this.sentBytes,
      wireBytes: this.wireBytes,
      retries: this.retries,
      retypedLines: this.console.stats.retypedLines,
      mendedLines: this.console.stats.mendedLines,
      elapsedMs,
      transferMs: this.transferMs,
      effectiveBytesPerSecond: this.plan.diskBytes / Math.max(elapsedMs / 1000, 0.001),
      serialBytesPerSecond: this.transferMs > 0 ? this.sentBytes / (this.transferMs / 1000) : 0,
      env: env.map(([k]) => k),
      envMode,
      saved,
      reset,
    };
    this.emit({ type: 'done', summary });
    return summary;
  }

  private stopIfAsked(): void {
    if (this.o.signal?.aborted) throw new Interrupted();
  }

  /**
   * The error for a flash stopped by the caller. The board is brought back to its prompt if it
   * answers within a few seconds (a cancelled `loady` may still be draining) — never reset.
   */
  async interrupted(cause: unknown): Promise<FlashError> {
    await Promise.race([this.console.resync().catch(() => undefined), new Promise((r) => setTimeout(r, 8_000).unref())]);
    const done = this.writtenBytes + this.unchangedBytes;
    return new FlashError(
      'E_FLASH_INTERRUPTED',
      `interrupted ${this.phase === 'write' ? `after ${done} of ${this.plan.diskBytes} bytes were written and verified` : 'during the final verification'}; the board was not reset`,
      'the flash is NOT complete and the board may not boot: run the same signet flash again, with --skip-unchanged to keep what is already on the board',
      { bytes: done },
      cause,
    );
  }

  /**
   * serial.envMode "check": the running environment must already hold `value` for `name`
   * (printenv), or the board would not boot what is about to be written. A different value
   * counts only when two reads agree on it (a reply damaged on the line is read again).
   */
  private async checkEnv(name: string, value: string): Promise<void> {
    if (!UBOOT_VARIABLE_NAME.test(name)) {
      throw new FlashError('E_FLASH_BOARD', `"${name}" in serial.env is not a U-Boot variable name`, 'use letters, digits and _ . : - in board.json serial.env');
    }
    let previous: string | undefined;
    for (let read = 0; read < 6; read++) {
      const out = (await this.console.query(`printenv ${name}`, { allowFailure: true })).output;
      const line = out.split(/\r?\n/).find((l) => l.startsWith(`${name}=`));
      const shown = line !== undefined ? line.slice(name.length + 1) : /not defined/.test(out) ? null : undefined;
      if (shown === value) {
        this.emit({ type: 'env', name, value, action: 'checked' });
        return;
      }
      if (shown === undefined) continue;
      const key = shown === null ? '\0' : shown;
      if (key === previous) {
        throw new FlashError(
          'E_FLASH_ENV',
          `the board's U-Boot has ${shown === null ? `no ${name}` : `${name}=${JSON.stringify(shown)}`}, the board file needs ${JSON.stringify(value)}, and this board cannot save its environment (serial.envMode "check"): it would not boot the disk`,
          `nothing was written: put ${name} in the board's default environment (its U-Boot build or factory environment), or correct serial.env in the board file`,
          { reason: name },
        );
      }
      previous = key;
    }
    throw new FlashError('E_FLASH_CONSOLE', `could not read ${name} from the board's environment (printenv output lost or damaged 6 times)`, 'nothing was written: check the line to the board and run again');
  }

  private consoleVariable(): string {
    return this.o.console?.variable ?? 'signet';
  }

  private sendSize(c: FlashChunk): number {
    if (c.kind === 'fill') return 0;
    if (c.programRuns && !(this.unzip && c.gz)) return Math.min(c.bytes, c.programRuns.reduce((n, r) => n + r.bytes, 0));
    return this.unzip && c.gz ? c.gz.length : c.bytes;
  }

  /** A chunk found on the board already (--skip-unchanged). */
  private unchanged(c: FlashChunk): void {
    this.sendTotal -= this.sendSize(c);
    this.unchangedBytes += c.bytes;
    this.doneBytes += c.bytes;
    this.emit({ type: 'chunk', index: c.index, offset: c.offset, bytes: c.bytes, kind: c.kind, action: 'unchanged', sentBytes: 0 });
    this.progress(true);
  }

  /**
   * Puts the digest FIT (digest-fit.ts) for every data chunk and verification range into the
   * digest area and checks with its self-test image that this U-Boot verifies it (`imxtract`,
   * FIT SHA-256). Targets that do not fit the area at once go in batches, loaded when needed.
   * A board that cannot do it gets no "unchanged" decisions for data chunks (they are written)
   * and a final check by CRC-32 only.
   */
  private async prepareDigests(): Promise<void> {
    const { digestAddr, readAddr } = this.plan;
    const targets: DigestTarget[] = [
      ...this.plan.ranges.map((r, i) => ({ name: `r${i}`, bytes: r.bytes, sha256: r.sha256 })),
      ...this.plan.chunks.filter((c) => c.kind === 'data').map((c) => ({ name: `c${c.index}`, bytes: c.bytes, sha256: c.sha256 })),
    ];
    if (digestAddr === undefined) {
      this.emit({ type: 'digests', available: false, targets: 0 });
      return;
    }
    const position = Number(readAddr - digestAddr);
    const batches: DigestTarget[][] = [[]];
    for (const t of targets) {
      const current = batches[batches.length - 1]!;
      if (current.length > 0 && buildDigestFit([...current, t], position).length > DIGEST_AREA_BYTES) batches.push([t]);
      else current.push(t);
    }
    batches.forEach((b, i) => b.forEach((t) => this.digestBatch.set(t.name, i)));
    this.digests = { targets: batches, loaded: -1 };
    const available = await this.loadDigests(0).catch((e: unknown) => {
      if (recoverable(e)) return false;
      throw e;
    });
    if (!available) this.digests = null;
    this.emit({ type: 'digests', available, targets: available ? targets.length : 0 });
  }

  /** Loads batch `i` of the digest FIT; true when the board verified its self-test image. */
  private async loadDigests(i: number): Promise<boolean> {
    const d = this.digests!;
    if (d.loaded === i) return true;
    const fit = buildDigestFit(d.targets[i]!, Number(this.plan.readAddr - this.plan.digestAddr!));
    const at = this.plan.digestAddr!;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.send(`loady ${bare(at)}`, fit, `${this.o.board.id}-digests-${i}.dtb`, attempt > 1);
        if (!(await this.crcIs(at, fit.length, fastCrc32(fit), (await this.console.run(`crc32 ${bare(at)} ${bare(fit.length)}`)).output))) throw new CrcMismatch('transfer', this.lastCrc, fastCrc32(fit));
        for (let run = 0; run < 3; run++) {
          const r = await this.console.run(`imxtract ${bare(at)} ${DIGEST_SELF_TEST}`, { allowFailure: true });
          const verdict = digestVerdict(r.output, r.status);
          if (verdict === 'match') {
            d.loaded = i;
            return true;
          }
          if (verdict === 'differs' || /Unknown command/.test(r.output)) return false;
        }
        return false;
      } catch (e) {
        if (!recoverable(e) || attempt >= (this.o.attempts ?? 5)) throw e;
        this.checkLine();
        await this.console.resync();
      }
    }
  }

  /**
   * Short lines for the checks, which are most of what is typed on a re-flash. Typed once per
   * session (each line's echo verified), then each check is one short line, e.g.
   * `setenv sgb 20800;setenv sgn 10000;run sgk`: on a line that damages 1 % of the bytes a
   * 50-character line gets through about three times as often as the 130-character chain it
   * replaces plus its `run` line. The macros only read storage and write the read-back and
   * staging halves; their sizes are bounded (`itest`) and they print the block and size they
   * were given (`=<block>=<size>=`), which must be exactly what was asked, or the answer is not
   * used: a line cut short by a damaged byte turned into CR cannot pass for a check of other
   * blocks. A U-Boot without setexpr/itest keeps the long lines.
   */
  private async defineMacros(): Promise<void> {
    const { readAddr, writeAddr, digestAddr, windowBytes, blockSize } = this.plan;
    const R = bare(readAddr);
    const W = bare(writeAddr);
    const read = this.o.board.serial.read
      .split('{addr}').join(hex(readAddr))
      .split('{block}').join('0x${sgb}')
      .split('{count}').join('0x${sgc}')
      .split('{flash}').join('0x${sgl}')
      .split('{bytes}').join('0x${sgn}');
    // NOR: sgl is where the range starts in the memory map (serial.flashAddress + block × size).
    const mapped = this.flashAddress !== undefined ? ` && setexpr sgl \${sgb} * ${bare(blockSize)} && setexpr sgl \${sgl} + ${bare(this.flashAddress)}` : '';
    const macros: [string, string][] = [
      ['sgs', `itest \${sgn} -le ${bare(windowBytes)} && setexpr sgw \${sgn} / 4 && setexpr sgc \${sgn} / ${bare(blockSize)}${mapped} && echo =\${sgb}=\${sgn}=`],
      ['sgr', `run sgs && mw.l ${R} a5a5a5a5 \${sgw} && ${read}`],
      ['sgk', `run sgr && cmp.l ${W} ${R} \${sgw} && crc32 ${R} \${sgn}`],
      ['sgf', `run sgs && mw.l ${W} \${sgv} \${sgw} && run sgk`],
      ...(digestAddr !== undefined ? ([['sgd', `run sgr && imxtract ${bare(digestAddr)} \${sgi}`]] as [string, string][]) : []),
    ];
    try {
      for (const [name, body] of macros) await this.console.query(`setenv ${name} '${body}'`);
      const probe = await this.console.query('setenv sgb 10;setenv sgn 200;run sgs', { allowFailure: true });
      this.macros = probe.status === 0 && probe.output.split(/\r?\n/).includes('=10=200=');
    } catch (e) {
      if (!recoverable(e)) throw e;
      this.checkLine();
      await this.console.resync();
      this.macros = false;
    }
  }

  private macros = false;

  /**
   * One check through a macro (see defineMacros): undefined when its answer cannot be used
   * (output lost, or the block and size it printed are not the ones asked for).
   */
  private async runCheck(offset: number, bytes: number, vars: Record<string, string>, macro: string): Promise<CommandResult | undefined> {
    const block = bare(offset / this.plan.blockSize);
    const size = bare(bytes);
    const sets = Object.entries({ sgb: block, sgn: size, ...vars }).map(([k, v]) => `setenv ${k} ${v}`).join(';');
    let r: CommandResult;
    try {
      r = await this.console.query(`${sets};run ${macro}`, { timeoutMs: 3 * boundFor(bytes), allowFailure: true });
    } catch (e) {
      if (!recoverable(e)) throw e;
      this.checkLine();
      await this.console.resync();
      return undefined;
    }
    if (!r.output.split(/\r?\n/).includes(`=${block}=${size}=`)) return undefined;
    return r;
  }

  /**
   * Whether storage at [offset, offset+bytes) holds the image's bytes: read into the read-back
   * half (poisoned first, so a read that does nothing cannot pass) and checked against the
   * digest FIT's image `name` with imxtract (SHA-256). Damaged output is read again; what stays
   * unclear is 'unknown', which never counts as a match. Without digests: 'unknown'.
   */
  private async storageHolds(offset: number, bytes: number, name: string, _crc: number): Promise<'match' | 'differs' | 'unknown'> {
    if (!this.digests) return 'unknown';
    const batch = this.digestBatch.get(name);
    const loaded =
      batch !== undefined &&
      (await this.loadDigests(batch).catch((e: unknown) => {
        if (recoverable(e)) return false;
        throw e;
      }));
    if (!loaded) return 'unknown';
    const { readAddr, digestAddr } = this.plan;
    const read = storageCommand(this.o.board.serial.read, readAddr, offset, bytes, this.plan.blockSize, this.flashAddress);
    const check = `imxtract ${bare(digestAddr!)} ${name}`;
    for (let run = 0; run < 3; run++) {
      let r;
      try {
        if (this.macros) {
          r = await this.runCheck(offset, bytes, { sgi: name }, 'sgd');
          if (r === undefined) continue;
          const verdict = digestVerdict(r.output, r.status);
          if (verdict !== 'unknown') return verdict;
          continue;
        }
        r = await this.console.run(run === 0 ? `mw.l ${bare(readAddr)} ${bare(0xa5a5a5a5)} ${bare(bytes / 4)} && ${read} && ${check}` : check, { timeoutMs: 3 * boundFor(bytes), allowFailure: true });
      } catch (e) {
        if (!recoverable(e)) throw e;
        this.checkLine();
        await this.console.resync();
        run = -1; // the read may not have happened: from the start (bounded by the console's own limits and the line check)
        if (++this.checkRetries > 20) return 'unknown';
        continue;
      }
      if (run === 0 && ubootFailureLine(r.output.split(/## Copying/)[0] ?? '')) return 'unknown';
      const verdict = digestVerdict(r.output, r.status);
      if (verdict !== 'unknown') return verdict;
    }
    return 'unknown';
  }

  private checkRetries = 0;

  /**
   * After a write: read the range back into the read-back half (poisoned first) and compare it
   * with the staged copy byte for byte (`cmp.l`): exact, whatever the data (a write that did not
   * happen leaves the old bytes, which a CRC-32 may not tell from the new ones). The staged copy
   * was checked against the image before the write (crc32 of RAM poisoned before the transfer);
   * the crc32 of what was read back, in the same line, proves it was not changed since.
   */
  private async readBackEqualsStaged(offset: number, bytes: number, crc: number, prefix?: string, fill?: number): Promise<boolean> {
    const { readAddr, writeAddr } = this.plan;
    const read = storageCommand(this.o.board.serial.read, readAddr, offset, bytes, this.plan.blockSize, this.flashAddress);
    const cmp = `cmp.l ${bare(writeAddr)} ${bare(readAddr)} ${bare(bytes / 4)}`;
    const crcR = `crc32 ${bare(readAddr)} ${bare(bytes)}`;
    let previous: 'differs' | undefined;
    for (let run = 0; run < 4; run++) {
      if (this.macros) {
        const r = await this.runCheck(offset, bytes, fill === undefined ? {} : { sgv: bare((fill * 0x01010101) >>> 0) }, fill === undefined ? 'sgk' : 'sgf');
        if (r === undefined) continue;
        const verdict = cmpVerdict(r.output, r.status, bytes / 4);
        if (verdict === 'match') return this.crcIs(readAddr, bytes, crc, r.output);
        if (verdict === 'differs' && previous === 'differs') return false;
        if (verdict === 'differs') previous = verdict;
        continue;
      }
      const r = await this.console.run(run === 0 ? `${prefix ? `${prefix} && ` : ''}mw.l ${bare(readAddr)} ${bare(0xa5a5a5a5)} ${bare(bytes / 4)} && ${read} && ${cmp} && ${crcR}` : `${cmp} && ${crcR}`, { timeoutMs: 3 * boundFor(bytes), allowFailure: true });
      if (run === 0 && ubootFailureLine(r.output)) {
        throw new UbootError('E_UBOOT_COMMAND', `U-Boot failed "${read}": ${ubootFailureLine(r.output)}`, 'check serial.read in the board file and the board\'s storage');
      }
      const verdict = cmpVerdict(r.output, r.status, bytes / 4);
      if (verdict === 'match') return this.crcIs(readAddr, bytes, crc, r.output);
      // A damaged reply costs a re-run; a difference counts when two runs agree on it.
      if (verdict === 'differs' && previous === 'differs') return false;
      if (verdict === 'differs') previous = verdict;
    }
    return false;
  }

  /** Stage, write, read back; repeated on any recoverable failure, `attempts` times in all. */
  private async flashChunk(c: FlashChunk, skipUnchanged: boolean): Promise<void> {
    if (skipUnchanged && (await this.alreadyOnBoard(c))) {
      this.unchanged(c);
      return;
    }
    const sent = await this.writeVerified(c);
    this.writtenBytes += c.bytes;
    this.doneBytes += c.bytes;
    this.emit({ type: 'chunk', index: c.index, offset: c.offset, bytes: c.bytes, kind: c.kind, action: 'written', sentBytes: sent });
    this.progress(true);
  }

  /**
   * --skip-unchanged for one chunk. Data: SHA-256 of what storage holds (storageHolds). Fill:
   * the read-back compared with `cmp` against the fill made in the staging half. Anything short
   * of a clear match is "changed": the chunk is written.
   */
  private async alreadyOnBoard(c: FlashChunk): Promise<boolean> {
    this.stopIfAsked();
    try {
      if (c.kind === 'data') return (await this.storageHolds(c.offset, c.bytes, `c${c.index}`, c.crc)) === 'match';
      const { writeAddr } = this.plan;
      return await this.readBackEqualsStaged(c.offset, c.bytes, c.crc, `mw.l ${bare(writeAddr)} ${bare((c.fill! * 0x01010101) >>> 0)} ${bare(c.bytes / 4)}`, c.fill);
    } catch (e) {
      if (!recoverable(e)) throw e;
      this.checkLine();
      await this.console.resync();
      return false;
    }
  }

  /**
   * Writes one chunk and proves it: stage (RAM checked against the image), write, read back
   * and compare with the staged copy. Repeated on a recoverable failure, `attempts` times. A data
   * chunk whose transfer fails is then sent as shorter pieces (a page each), each written and
   * proved on its own: what arrived is kept, and a failure costs one page again, not the chunk.
   * Returns the bytes sent over the line.
   */
  private async writeVerified(c: FlashChunk): Promise<number> {
    const attempts = this.o.attempts ?? 5;
    let lastError: unknown;
    let smallBlocks = false;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.stopIfAsked();
      try {
        const sent = await this.stage(c, smallBlocks);
        await this.writeStaged(c);
        if (!(await this.readBackEqualsStaged(c.offset, c.bytes, c.crc))) throw new CrcMismatch('readback', this.lastCrc, c.crc);
        return sent;
      } catch (e) {
        if (!recoverable(e)) throw e;
        lastError = e;
        this.checkLine();
        if (e instanceof YmodemError) smallBlocks = true; // a line that damages 1 K frames may pass 128-byte ones
        const transferFailed = e instanceof YmodemError || (e instanceof CrcMismatch && e.stage === 'transfer');
        if (attempt < attempts) {
          this.retries++;
          this.emit({ type: 'retry', index: c.index, offset: c.offset, attempt, code: failureCode(e), message: (e as Error).message });
          await this.console.resync();
          if (transferFailed && c.kind === 'data' && c.bytes > this.plan.pageBytes) {
            let sent = 0;
            for (const piece of this.pieces(c)) sent += await this.writeVerified(piece);
            return sent;
          }
        }
      }
    }
    throw chunkFailure(c, attempts, lastError);
  }

  /** A data chunk cut into page-sized pieces, each with its own CRC (and gzip form). */
  private *pieces(c: FlashChunk): Generator<FlashChunk> {
    const page = this.plan.pageBytes;
    for (let at = c.offset; at < c.offset + c.bytes; at += page) {
      const bytes = Math.min(page, c.offset + c.bytes - at);
      const data = this.disk.source.read(at, bytes);
      const gz = this.unzip ? new Uint8Array(zlib.gzipSync(data, { level: 6 })) : undefined;
      yield { index: c.index, offset: at, bytes, kind: 'data', crc: fastCrc32(data), sha256: new Uint8Array(0), ...(gz && gz.length <= bytes * 0.9 ? { gz } : {}), ...(this.flashAddress !== undefined ? { programRuns: programRuns(data) } : {}) };
    }
  }

  /**
   * Puts the chunk's bytes at writeAddr and proves it with crc32 of that RAM, which is poisoned
   * first (`mw`, in the same line as `loady`): bytes left from an earlier chunk cannot stand in
   * for the transfer, and line damage is not something a CRC-32 misses. Returns the bytes sent on
   * the line. Steps that belong together run as one `&&` chain: fewer lines to type.
   */
  private async stage(c: FlashChunk, smallBlocks: boolean): Promise<number> {
    const { writeAddr, readAddr } = this.plan;
    const crcW = `crc32 ${bare(writeAddr)} ${bare(c.bytes)}`;
    const bound = 2 * boundFor(c.bytes);
    let sent = 0;
    let output: string;
    if (c.kind === 'fill') {
      output = (await this.console.run(`mw.l ${bare(writeAddr)} ${bare((c.fill! * 0x01010101) >>> 0)} ${bare(c.bytes / 4)} && ${crcW}`, { timeoutMs: bound })).output;
    } else if (c.programRuns && !(this.unzip && c.gz) && c.programRuns.reduce((n, r) => n + r.bytes, 0) < c.bytes) {
      // NOR: the erased (0xff) parts are made on the board; only the parts to program cross the
      // line, each into RAM poisoned first. The crc32 of the whole chunk then proves both.
      const data = this.disk.source.read(c.offset, c.bytes);
      if (fastCrc32(data) !== c.crc) {
        throw new FlashError('E_FLASH_DISK_CHANGED', `${this.disk.path} changed while flashing (at ${hex(c.offset)})`, 'do not change the disk image while flashing; run again');
      }
      await this.console.run(`mw.l ${bare(writeAddr)} ffffffff ${bare(c.bytes / 4)}`, { timeoutMs: bound });
      for (const r of c.programRuns) {
        const at = writeAddr + BigInt(r.offset);
        await this.send(`mw.l ${bare(at)} ${bare(0xa5a5a5a5)} ${bare(r.bytes / 4)} && loady ${bare(at)}`, data.subarray(r.offset, r.offset + r.bytes), `${this.o.board.id}-${(c.offset + r.offset).toString(16)}.bin`, smallBlocks);
        sent += r.bytes;
      }
      output = (await this.console.run(crcW, { timeoutMs: bound })).output;
    } else {
      const gz = this.unzip ? c.gz : undefined;
      let payload: Uint8Array;
      if (gz) {
        payload = gz;
      } else {
        payload = this.disk.source.read(c.offset, c.bytes);
        if (fastCrc32(payload) !== c.crc) {
          throw new FlashError('E_FLASH_DISK_CHANGED', `${this.disk.path} changed while flashing (at ${hex(c.offset)})`, 'do not change the disk image while flashing; run again');
        }
      }
      await this.send(`mw.l ${bare(writeAddr)} ${bare(0xa5a5a5a5)} ${bare(c.bytes / 4)} && loady ${bare(gz ? readAddr : writeAddr)}`, payload, `${this.o.board.id}-${c.offset.toString(16)}.bin${gz ? '.gz' : ''}`, smallBlocks);
      sent = payload.length;
      if (gz) {
        output = (await this.console.run(`unzip ${bare(readAddr)} ${bare(writeAddr)} ${bare(c.bytes)} && ${crcW}`, { timeoutMs: bound })).output;
        const n = /Uncompressed size: (\d+)/.exec(output);
        if (n && Number(n[1]) !== c.bytes) throw new CrcMismatch('transfer', undefined, c.crc);
      } else {
        output = (await this.console.run(crcW, { timeoutMs: bound })).output;
      }
    }
    if (!(await this.crcIs(writeAddr, c.bytes, c.crc, output))) throw new CrcMismatch('transfer', this.lastCrc, c.crc);
    return sent;
  }

  /**
   * Runs `command` (ending in `loady`) and sends `payload` with YMODEM. Throws on a failed
   * transfer; the caller judges what arrived by a CRC of the RAM (U-Boot's loady gives its
   * closing block a single chance and may report a "CRC/checksum error" although every data
   * block arrived). On a line that damages bytes: 128-byte blocks, and a filler byte when an
   * answer is late (a frame missing a byte then fails at once instead of after U-Boot's 2 s).
   * Every resent frame is counted by the line meter, which stops a transfer on a line too bad.
   */
  private async send(command: string, payload: Uint8Array, name: string, smallBlocks: boolean): Promise<void> {
    const loady = await this.console.start(command);
    const base = this.sentBytes;
    const t0 = Date.now();
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    let acked = 0;
    // Nudges and small blocks only once the line has shown damage: a clean line needs neither.
    const noisy = smallBlocks || this.console.stats.retypedLines > 0 || this.console.stats.damagedEchoes > 0;
    const options: YmodemSendOptions = {
      startTimeoutMs: 15_000,
      // U-Boot asks again within ~5 s of the last byte it got, even after a framing error or a
      // lost 'C' (2 s timeout, 2 s of quiet line, 0.75 s); with nudges the sender waits for that
      // request rather than sending into the quiet U-Boot waits for.
      responseTimeoutMs: noisy ? 8_000 : 5_000,
      headerGraceMs: 50, // U-Boot sends no 'C' after block 0; do not wait long for one
      turnaroundGuardUs: 0, // U-Boot never throws input away right after it answers
      ...(this.replyMs !== undefined ? { expectedReplyMs: this.replyMs } : {}),
      ...(noisy ? { nudge: { max: 4 } } : {}),
      // A line that damages typed commands or 1 K frames may still pass 128-byte frames.
      ...(noisy ? { maxBlockLength: 128 as const, maxRetries: 30 } : {}),
      onProgress: (n) => {
        this.meter.frames++;
        this.meter.frameBytes += (n - acked > 128 ? 1024 : 128) + 5;
        acked = n;
        this.sentBytes = base + n;
        this.progress(false);
      },
      onEvent: (e) => {
        if (e.type !== 'retry') return;
        this.meter.frames++;
        this.meter.framesResent++;
        this.meter.frameBytes += noisy ? 133 : 1029;
        if (this.lineVerdict() !== undefined) stop.abort();
      },
      signal: stop.signal,
    };
    try {
      const r = await sendYmodem(this.link, { name, data: payload }, options);
      this.wireBytes += r.wireBytes;
      this.replyMs = r.replyMs ?? this.replyMs;
    } catch (e) {
      if (e instanceof YmodemError && e.code === 'E_YMODEM_ABORTED' && !this.o.signal?.aborted) {
        await this.console.resync().catch(() => undefined);
        this.checkLine();
      }
      throw e;
    } finally {
      this.o.signal?.removeEventListener('abort', onAbort);
      this.transferMs += Date.now() - t0;
    }
    const done = await loady.finish(30_000, { allowFailure: true });
    const size = /Total Size\s*=\s*0x[0-9a-fA-F]+\s*=\s*(\d+) Bytes/.exec(done.output);
    if (size && Number(size[1]) !== payload.length) throw new CrcMismatch('transfer', undefined, fastCrc32(payload));
  }

  /** The E_FLASH_LINE error when the measured damage is beyond what the flash can work through. */
  private lineVerdict(): FlashError | undefined {
    const rate = this.meter.errorRate();
    if (rate === undefined || rate <= MAX_LINE_ERROR_RATE) return undefined;
    return this.lineError(rate);
  }

  private lineError(rate: number): FlashError {
    const s = this.console.stats;
    return new FlashError(
      'E_FLASH_LINE',
      `the line to the board damages about ${(rate * 100).toFixed(1)} % of the bytes (${s.damagedEchoes} of ${s.typedLines} typed lines came back damaged, ${this.meter.framesResent} of ${this.meter.frames} YMODEM frames sent again): too bad to flash over (the bound is ${(MAX_LINE_ERROR_RATE * 100).toFixed(1)} %)`,
      'the flash is NOT complete (nothing unverified was written): check the cable and its ground, lower the baud rate, then run again with --skip-unchanged to keep what is already on the board',
      { errorRate: rate },
    );
  }

  /**
   * A console or transfer failure on a line measured as too bad (from fewer samples than the
   * in-flight check needs: the flash has already failed, the question is only why) is reported
   * as E_FLASH_LINE, the cause a vendor can act on, instead of the step that happened to give up.
   */
  lineFailure(e: unknown): FlashError | undefined {
    if (!(e instanceof UbootError || e instanceof YmodemError)) return undefined;
    const rate = this.meter.errorRate(FAILED_LINE_SAMPLES, FAILED_FRAME_SAMPLES);
    if (rate === undefined || rate <= MAX_LINE_ERROR_RATE) return undefined;
    return this.lineError(rate);
  }

  private checkLine(): void {
    const e = this.lineVerdict();
    if (e) throw e;
  }

  private lastCrc: number | undefined;
  /** How long U-Boot takes to answer a 128-byte frame, from the last transfer: when to nudge the next one's block 0. */
  private replyMs: number | undefined;

  /**
   * True when U-Boot prints `want` for the region (`output`: a crc32 already run). Output
   * damaged on the way back could show a wrong value, so a mismatch counts only when two runs
   * agree on it.
   */
  private async crcIs(addr: bigint, bytes: number, want: number, output: string): Promise<boolean> {
    let previous: number | undefined;
    for (let i = 0; i < 4; i++) {
      // crc32 without a save address only reads: typed directly, one line instead of two.
      const text = i === 0 ? output : (await this.console.query(`crc32 ${bare(addr)} ${bare(bytes)}`, { timeoutMs: boundFor(bytes) })).output;
      const got = parseCrc32Output(text, addr, bytes);
      this.lastCrc = got;
      if (got === want) return true;
      if (got !== undefined && got === previous) return false;
      if (got !== undefined) previous = got;
    }
    return false;
  }

  /**
   * Step 5 for one range: storage must hash to the range's SHA-256. A range that differs has
   * each of its chunks checked and the ones that differ rewritten, then is checked again. A
   * board without digests gets CRC-32 here (see prepareDigests).
   */
  private async verifyRange(r: VerifyRange): Promise<void> {
    const name = `r${this.plan.ranges.indexOf(r)}`;
    for (let round = 0; ; round++) {
      let verdict: 'match' | 'differs' | 'unknown';
      try {
        verdict = this.digests ? await this.storageHolds(r.offset, r.bytes, name, r.crc) : (await this.crcOfStorage(r.offset, r.bytes, r.crc)) ? 'match' : 'differs';
      } catch (e) {
        if (!recoverable(e) || round >= 3) throw e instanceof UbootError ? e : chunkFailure({ offset: r.offset, bytes: r.bytes } as FlashChunk, round + 1, e);
        this.checkLine();
        await this.console.resync();
        continue;
      }
      if (verdict === 'match') {
        this.doneBytes += r.bytes;
        this.progress(true);
        return;
      }
      if (round >= 2) throw chunkFailure({ offset: r.offset, bytes: r.bytes } as FlashChunk, round + 1, new CrcMismatch('readback', undefined, r.crc));
      for (const i of r.chunks) {
        const c = this.plan.chunks[i]!;
        if (!(await this.alreadyOnBoard(c))) {
          this.retries++;
          this.emit({ type: 'retry', index: c.index, offset: c.offset, attempt: round + 1, code: 'E_FLASH_READBACK', message: 'changed after it was written and checked' });
          await this.writeVerified(c);
        }
      }
    }
  }

  /** CRC-32 of storage (boards without digests): poison, read, crc32. */
  private async crcOfStorage(offset: number, bytes: number, crc: number): Promise<boolean> {
    const { readAddr } = this.plan;
    const read = storageCommand(this.o.board.serial.read, readAddr, offset, bytes, this.plan.blockSize, this.flashAddress);
    const r = await this.console.run(`mw.l ${bare(readAddr)} ${bare(0xa5a5a5a5)} ${bare(bytes / 4)} && ${read} && crc32 ${bare(readAddr)} ${bare(bytes)}`, { timeoutMs: 3 * boundFor(bytes) });
    return this.crcIs(readAddr, bytes, crc, r.output);
  }

  private emit(e: FlashEvent): void {
    this.o.onEvent?.(e);
  }

  /** A progress event at most every 250 ms, and always at chunk boundaries. */
  private progress(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastProgress < 250) return;
    this.lastProgress = now;
    const total = this.plan.diskBytes;
    const elapsedMs = now - this.startedAt;
    const rate = this.transferMs > 0 ? this.sentBytes / (this.transferMs / 1000) : 0;
    // The line's time for what is left to send, plus the board's time (commands, storage) for
    // what is left to write, at the pace seen so far; then the verification pass, likewise.
    let etaMs: number | null = null;
    if (this.doneBytes > 0) {
      const phaseMs = now - (this.phase === 'verify' ? this.phaseStartedAt : this.startedAt);
      const boardMs = this.phase === 'write' ? phaseMs - this.transferMs : phaseMs;
      etaMs = Math.round(((total - this.doneBytes) * Math.max(0, boardMs)) / this.doneBytes);
      if (this.phase === 'write' && rate > 0) etaMs += Math.round((Math.max(0, this.sendTotal - this.sentBytes) / rate) * 1000);
    }
    this.emit({
      type: 'progress',
      phase: this.phase,
      doneBytes: this.doneBytes,
      totalBytes: total,
      sentBytes: this.sentBytes,
      sendTotal: this.sendTotal,
      elapsedMs,
      serialBytesPerSecond: rate,
      etaMs,
    });
  }
}

/** Beyond this share of damaged bytes a 128-byte frame needs ~30 transmissions: the flash stops with E_FLASH_LINE. */
const MAX_LINE_ERROR_RATE = 0.025;
const MIN_LINE_SAMPLES = 20;
const MIN_FRAME_SAMPLES = 40;
/** Enough to name the line as the cause once a step has already failed. */
const FAILED_LINE_SAMPLES = 4;
const FAILED_FRAME_SAMPLES = 8;

/**
 * How much the line damages, estimated from what had to be repeated: typed lines whose echo
 * differed (a line of L characters crosses the line twice) and YMODEM frames sent again. Each
 * gives the share p of bytes damaged from (1-p)^length = share that got through.
 */
class LineMeter {
  frames = 0;
  framesResent = 0;
  frameBytes = 0;

  constructor(private readonly stats: Readonly<ConsoleStats>) {}

  errorRate(minLines = MIN_LINE_SAMPLES, minFrames = MIN_FRAME_SAMPLES): number | undefined {
    const estimates: number[] = [];
    const s = this.stats;
    if (s.typedLines >= minLines) {
      const ok = Math.max(s.typedLines - s.damagedEchoes, 0.5) / s.typedLines;
      estimates.push(1 - Math.pow(ok, 1 / (2 * (s.typedChars / s.typedLines))));
    }
    if (this.frames >= minFrames) {
      const ok = Math.max(this.frames - this.framesResent, 0.5) / this.frames;
      estimates.push(1 - Math.pow(ok, 1 / (this.frameBytes / this.frames + 1)));
    }
    return estimates.length > 0 ? Math.max(...estimates) : undefined;
  }
}

/**
 * What `cmp.l` printed: 'match' only with status 0 and "Total of <all> word(s) were the same"
 * (a damaged reply cannot make that up), 'differs' with its "!=" line, else 'unknown'.
 */
export function cmpVerdict(output: string, status: number, words: number): 'match' | 'differs' | 'unknown' {
  const total = /Total of (\d+) word\(s\) were the same/.exec(output);
  if (status === 0 && total && Number(total[1]) === words && !/!=/.test(output)) return 'match';
  if (status !== 0 && /word at 0x[0-9a-fA-F]+ \(0x[0-9a-fA-F]+\) != word at 0x[0-9a-fA-F]+/.test(output)) return 'differs';
  return 'unknown';
}

/** The caller's signal, seen between steps. */
class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

/** Failures a retry can cure: damaged transfers, mismatches, lost or refused console output. */
function recoverable(e: unknown): boolean {
  if (e instanceof CrcMismatch) return true;
  if (e instanceof YmodemError) return e.code !== 'E_YMODEM_FILE' && e.code !== 'E_YMODEM_TRANSPORT' && e.code !== 'E_YMODEM_ABORTED';
  if (e instanceof UbootError) return e.code === 'E_UBOOT_LINE' || e.code === 'E_UBOOT_LOST_OUTPUT' || e.code === 'E_UBOOT_TIMEOUT' || e.code === 'E_UBOOT_COMMAND' || e.code === 'E_UBOOT_OUTPUT';
  return false;
}

function failureCode(e: unknown): string {
  if (e instanceof CrcMismatch) return e.stage === 'readback' ? 'E_FLASH_READBACK' : 'E_FLASH_TRANSFER';
  return (e as { code?: string }).code ?? 'E_UNKNOWN';
}

function chunkFailure(c: Pick<FlashChunk, 'offset' | 'bytes'>, attempts: number, e: unknown): FlashError {
  const where = `the ${c.bytes}-byte chunk at ${hex(c.offset)}`;
  const details = { offset: c.offset, bytes: c.bytes, attempts, reason: failureCode(e) };
  if (e instanceof CrcMismatch && e.stage === 'readback') {
    return new FlashError(
      'E_FLASH_READBACK',
      `the board's storage does not hold what was written: ${where} reads back as crc32 ${e.got === undefined ? '(unreadable)' : hex(e.got)}, the image has ${hex(e.want)} (${attempts} attempts)`,
      'the flash is NOT complete: check the storage (write protection, wear) and serial.write/serial.read in the board file',
      details,
      e,
    );
  }
  if (e instanceof CrcMismatch || e instanceof YmodemError) {
    return new FlashError(
      'E_FLASH_TRANSFER',
      `${where} did not reach the board's RAM intact in ${attempts} attempts (${e instanceof YmodemError ? e.code : e.message})`,
      'the flash is NOT complete: the line is too noisy; check the cable, or lower the baud rate',
      details,
      e,
    );
  }
  if (e instanceof UbootError && e.code === 'E_UBOOT_COMMAND') {
    return new FlashError('E_FLASH_COMMAND', `${e.message} (${where}, ${attempts} attempts)`, 'the flash is NOT complete: check the storage commands in the board file and the board\'s storage', details, e);
  }
  if (e instanceof FlashError) return e;
  return new FlashError('E_FLASH_CONSOLE', `${where}: ${(e as Error).message} (${attempts} attempts)`, 'the flash is NOT complete: check the line to the board and run again', details, e);
}
