/**
 * Writing the files and folders a user names (`--out`, `--dir`, `--html`, `--key-dtb`, …).
 *
 * - A regular file (or a path where nothing is yet) is replaced atomically: written to a temp
 *   file in the same folder, fsync'd, renamed over the target. A crash or an error leaves
 *   either the old file or the new one, never a partial file.
 * - A character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe) is written into
 *   directly, as a shell redirection would: it is never replaced by a regular file.
 * - A socket, a block device or anything else is refused (E_OUT_SPECIAL): writing an image
 *   onto a disk device is `dd`'s or `signet flash`'s job, not an `--out` side effect.
 * - A symbolic link is followed to what it names, and the rules above apply to that; a link
 *   that leads nowhere is refused (E_OUT_LINK). For a regular file the link stays and the
 *   file it points to is replaced, after opening the link for writing once, so the kernel's
 *   own checks (permissions, fs.protected_symlinks in sticky folders) decide whether we may.
 * - Missing parent folders are created one at a time, at most MAX_NEW_FOLDERS of them, each
 *   checked (no recursive mkdir that can loop, e.g. under /proc).
 * - Temp files and folders are removed on every exit path, SIGINT, SIGTERM and SIGHUP
 *   included (a signal then ends the process after the clean-up, with its usual status).
 *
 * Every failure is an OutputError with its own code (output-errors.ts).
 */
import {
  closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync,
  realpathSync, renameSync, rmdirSync, rmSync, statSync, writeSync, type Stats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { constants as osConstants, tmpdir } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { OutputError, outputErrorFor } from './output-errors';

/** More missing folders than this above an output path is a typo, not a layout. */
export const MAX_NEW_FOLDERS = 16;

export function tempPathFor(path: string): string {
  return join(dirname(path), '.signet-tmp-' + basename(path) + '-' + randomBytes(4).toString('hex'));
}

// ---- temp paths removed on every exit path -------------------------------------------------

const pendingTemps = new Set<string>();
const CLEANUP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type CleanupSignal = (typeof CLEANUP_SIGNALS)[number];

function removePendingTemps(): void {
  for (const p of pendingTemps) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: nothing else can be done on the way out
    }
  }
  pendingTemps.clear();
}

function onSignal(signal: CleanupSignal): void {
  const others = process.listenerCount(signal) > 1;
  if (pendingTemps.size === 0) {
    // Nothing of ours is unfinished: a command that listens for the signal handles it, else it
    // gets its default action below (it may have arrived while our handler was the only one).
    if (others) return;
  } else {
    removePendingTemps();
    process.stderr.write(`error[E_INTERRUPTED]: stopped by ${signal}; the unfinished output was removed — run the command again\n`);
  }
  for (const [s, h] of handlers) process.off(s, h);
  // With our handler gone the signal's default action ends the process, with the status a shell
  // expects (128+n); if someone else listens for it too, end it ourselves with that status.
  if (others) process.exit(128 + (osConstants.signals[signal] ?? 0));
  process.kill(process.pid, signal);
}

const handlers = new Map<CleanupSignal, () => void>(CLEANUP_SIGNALS.map((s) => [s, () => onSignal(s)]));
let watching = false;

/**
 * Keep `path` (a temp file or folder) on the list removed at exit or on a signal until `done`
 * is called. The handlers stay once installed: a signal libuv caught while a temp existed may
 * be dispatched after it is gone, and must still end the process as it would have.
 */
export function trackTemp(path: string): () => void {
  pendingTemps.add(path);
  if (!watching) {
    watching = true;
    for (const [s, h] of handlers) process.on(s, h);
    process.on('exit', removePendingTemps);
  }
  return () => {
    pendingTemps.delete(path);
  };
}

// ---- where output goes ---------------------------------------------------------------------

type OutputTarget =
  /** Replace this regular file (the real path, links resolved) atomically. */
  | { kind: 'file'; path: string }
  /** Write into this character device or FIFO (opened by the path given, so the kernel follows links). */
  | { kind: 'stream'; path: string };

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw outputErrorFor(e, path);
  }
}

function describeNode(st: Stats): string {
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a file';
}

/**
 * Create `dir` and its missing parents, one at a time and at most MAX_NEW_FOLDERS of them.
 * Each mkdir's own answer decides, so a file system that refuses (e.g. /proc) ends it at once.
 * `mode` (before the umask) is for the folders it creates.
 */
export function ensureOutputFolder(dir: string, mode = 0o777): void {
  const missing: string[] = [];
  let d = resolve(dir);
  for (;;) {
    let st: Stats | undefined;
    try {
      st = statSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw outputErrorFor(e, d, 'create the folder');
    }
    if (st) {
      if (!st.isDirectory()) throw new OutputError('E_OUT_NOT_DIR', `${JSON.stringify(d)} is not a folder, so nothing can be written under it`);
      break;
    }
    missing.unshift(d);
    if (missing.length > MAX_NEW_FOLDERS) {
      throw new OutputError('E_OUT_FOLDER', `${JSON.stringify(resolve(dir))} would need more than ${MAX_NEW_FOLDERS} new folders`);
    }
    const up = dirname(d);
    if (up === d) throw new OutputError('E_OUT_FOLDER', `no folder of ${JSON.stringify(resolve(dir))} exists`);
    d = up;
  }
  for (const m of missing) {
    try {
      mkdirSync(m, { mode });
    } catch (e) {
      // Someone else made it meanwhile: fine if it is a folder.
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statSync(m, { throwIfNoEntry: false })?.isDirectory()) continue;
      throw outputErrorFor(e, m, 'create the folder');
    }
  }
}

function resolveOutput(path: string): OutputTarget {
  if (path === '') throw new OutputError('E_OUT_EMPTY', 'the output path is empty');
  let st = lstatOrUndefined(path);
  let real = path;
  if (st?.isSymbolicLink()) {
    try {
      st = statSync(path);
      real = realpathSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new OutputError('E_OUT_LINK', `${JSON.stringify(path)} is a symbolic link to something that does not exist`, e);
      throw outputErrorFor(e, path);
    }
  }
  if (!st) {
    if (path.endsWith(sep) || path.endsWith('/')) throw new OutputError('E_OUT_IS_DIR', `${JSON.stringify(path)} names a folder`);
    ensureOutputFolder(dirname(path));
    return { kind: 'file', path };
  }
  if (st.isDirectory()) throw new OutputError('E_OUT_IS_DIR', `${JSON.stringify(path)} is a folder`);
  if (st.isCharacterDevice() || st.isFIFO()) return { kind: 'stream', path };
  if (!st.isFile()) throw new OutputError('E_OUT_SPECIAL', `${JSON.stringify(path)} is ${describeNode(st)}; it is never replaced or written to`);
  if (real !== path) {
    // The kernel decides whether we may write through this link (permissions, protected_symlinks).
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOCTTY));
    } catch (e) {
      throw outputErrorFor(e, path);
    }
  }
  return { kind: 'file', path: real };
}

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** Open a character device or FIFO for writing, without creating or truncating anything. */
function openStream(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_NOCTTY); // a FIFO waits here for its reader, as `>` does
  } catch (e) {
    throw outputErrorFor(e, path);
  }
  const st = fstatSync(fd);
  if (!st.isCharacterDevice() && !st.isFIFO()) {
    closeSync(fd); // swapped for something else since we looked: write nothing into it
    throw new OutputError('E_OUT_SPECIAL', `${JSON.stringify(path)} changed while it was being opened`);
  }
  return fd;
}

function writeStream(path: string, buf: Uint8Array): void {
  const fd = openStream(path);
  try {
    writeAll(fd, buf);
  } catch (e) {
    throw outputErrorFor(e, path);
  } finally {
    closeSync(fd);
  }
}

/** Write `data` to `path` by the rules at the top of this file. */
export function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const target = resolveOutput(path);
  if (target.kind === 'stream') return writeStream(target.path, buf);
  replaceFile(target.path, mode, (fd) => writeAll(fd, buf));
}

/** The same rules, under the name callers that are not about atomicity read better with. */
export const writeOutputFile = writeFileAtomic;

/** Temp file beside `path`, filled by `fill(fd)`, fsync'd and renamed over `path`. */
function replaceFile(path: string, mode: number, fill: (fd: number) => void): void {
  const tmp = tempPathFor(path);
  const done = trackTemp(tmp);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', mode);
    fill(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw outputErrorFor(e, path);
  } finally {
    done();
  }
}

/**
 * For outputs built in place (a sparse disk image written at offsets): `build` gets the path
 * of a fresh temp file to fill, which then becomes `path` by the rules above — renamed over a
 * regular file, or copied into a character device or FIFO. Errors from `build` pass through
 * unchanged; the temp file is removed on every path.
 */
export function writeOutputWith(path: string, build: (tmpPath: string) => void, mode = 0o644): void {
  const target = resolveOutput(path);
  if (target.kind === 'file') {
    const tmp = tempPathFor(target.path);
    const done = trackTemp(tmp);
    try {
      try {
        closeSync(openSync(tmp, 'wx', mode));
      } catch (e) {
        throw outputErrorFor(e, target.path);
      }
      build(tmp);
      try {
        const fd = openSync(tmp, 'r+');
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, target.path);
      } catch (e) {
        throw outputErrorFor(e, target.path);
      }
    } finally {
      rmSync(tmp, { force: true });
      done();
    }
    return;
  }
  // A device or FIFO: build in the system's temp folder, then stream it in.
  const work = mkdtempSync(join(tmpdir(), 'signet-out-'));
  const done = trackTemp(work);
  try {
    const tmp = join(work, 'out');
    closeSync(openSync(tmp, 'wx', 0o600));
    build(tmp);
    copyInto(tmp, target.path);
  } finally {
    rmSync(work, { recursive: true, force: true });
    done();
  }
}

function copyInto(from: string, to: string): void {
  const src = openSync(from, 'r');
  try {
    const dst = openStream(to);
    try {
      const buf = Buffer.alloc(1 << 20);
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, null);
        if (n === 0) break;
        try {
          writeAll(dst, buf.subarray(0, n));
        } catch (e) {
          throw outputErrorFor(e, to);
        }
      }
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(src);
  }
}

// ---- output folders ------------------------------------------------------------------------

/**
 * What is at a path a command is to create a folder at: nothing, an empty folder, or a folder
 * with something in it. Anything that is not a folder is refused (E_OUT_EXISTS).
 */
export function outputFolderState(path: string): 'missing' | 'empty' | 'not-empty' {
  if (path === '') throw new OutputError('E_OUT_EMPTY', 'the output folder path is empty');
  let st: Stats | undefined;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ENOTDIR') throw new OutputError('E_OUT_NOT_DIR', `cannot create the folder ${JSON.stringify(path)}: part of the path is a file`, e);
    throw outputErrorFor(e, path, 'create the folder');
  }
  if (!st.isDirectory()) throw new OutputError('E_OUT_EXISTS', `${JSON.stringify(path)} already exists and is not a folder`);
  try {
    return readdirSync(path).length === 0 ? 'empty' : 'not-empty';
  } catch (e) {
    throw outputErrorFor(e, path, 'read the folder');
  }
}

/**
 * Build a whole folder under a temp name, then rename it into place, so a failed (or
 * interrupted) `keys init` or `init` leaves nothing behind. `fill` receives the temp folder.
 * An existing empty folder at `path` is replaced; anything else there is refused.
 */
export async function createDirAtomic(path: string, fill: (tmpDir: string) => Promise<void> | void): Promise<void> {
  const state = outputFolderState(path);
  if (state === 'not-empty') throw new OutputError('E_OUT_EXISTS', `${JSON.stringify(path)} already exists and is not empty`);
  const real = lstatOrUndefined(path)?.isSymbolicLink() ? realpathSync(path) : path;
  if (state === 'missing') ensureOutputFolder(dirname(resolve(real)));
  const tmp = tempPathFor(real);
  const done = trackTemp(tmp);
  try {
    try {
      mkdirSync(tmp, { mode: 0o700 });
    } catch (e) {
      throw outputErrorFor(e, real, 'create the folder');
    }
    await fill(tmp);
    try {
      if (state === 'empty') rmdirSync(real);
      renameSync(tmp, real);
    } catch (e) {
      throw outputErrorFor(e, real, 'create the folder');
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    done();
  }
}
