/**
 * Linked ptys for tests and benchmarks, made by socat (Debian package `socat`). A pair:
 *
 *   socat pty,raw,echo=0,link=DIR/host pty,raw,echo=0,link=DIR/device
 *
 * Both ends are real ttys, so `host` is opened with node-serialport exactly like a USB
 * serial adapter, and a peer program (lrzsz `rb`/`sb`) runs with its stdin/stdout on
 * `device`. Node has no pty API; socat is used rather than a Python `pty.openpty()` relay
 * because it needs no interpreter on the CI machine and survives the peer closing and
 * reopening its end. We also hold each slave open ourselves so that socat never sees a
 * hangup between two peers in one run. A bridge: one pty wired to a unix socket (a board's
 * console), so a test reaches a real U-Boot through node-serialport, as over /dev/ttyUSB0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';

export interface PtyPair {
  /** Path for our side (open with openTransport / SerialTransport). */
  readonly host: string;
  /** Path for the peer program's stdin/stdout. */
  readonly device: string;
  close(): Promise<void>;
}

const TTY_FLAGS = constants.O_RDWR | constants.O_NOCTTY;

/** Creates `dir/host` and `dir/device`, linked by a socat relay. */
export async function openPtyPair(dir: string, timeoutMs = 5_000): Promise<PtyPair> {
  const host = join(dir, 'host');
  const device = join(dir, 'device');
  const close = await startSocat([`pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${device}`], [host, device], timeoutMs);
  return { host, device, close };
}

export interface PtyBridge {
  /** A tty whose other side is the socket: open it as a serial port. */
  readonly path: string;
  close(): Promise<void>;
}

/**
 * A tty at `dir/tty` wired to the unix socket `socketPath` (a board's console: QEMU's chardev
 * or a relay in front of it), so the socket can be reached the way a USB serial adapter is.
 * socat connects to the socket at once; what the board prints meanwhile waits in the tty.
 */
export async function openPtyBridge(dir: string, socketPath: string, timeoutMs = 5_000): Promise<PtyBridge> {
  const path = join(dir, 'tty');
  const close = await startSocat([`pty,raw,echo=0,link=${path}`, `unix-connect:${socketPath}`], [path], timeoutMs);
  return { path, close };
}

/** Runs socat between two addresses until `ttys` exist, then holds each of them open until closed. */
async function startSocat(addresses: string[], ttys: string[], timeoutMs: number): Promise<() => Promise<void>> {
  const socat = spawn('socat', ['-d', '-d', ...addresses], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  socat.stderr!.setEncoding('utf8').on('data', (s: string) => {
    log += s;
  });
  const spawnError = new Promise<never>((_, reject) => {
    socat.once('error', (err) =>
      reject(new Error(`cannot start socat: ${err.message} — install the Debian package "socat"`, { cause: err })),
    );
    socat.once('exit', (code) => reject(new Error(`socat exited (${code}) before linking ${ttys.join(' and ')}: ${log.trim()}`)));
  });
  const ready = (async () => {
    const deadline = Date.now() + timeoutMs;
    while (!(log.includes('starting data transfer loop') && ttys.every((t) => existsSync(t)))) {
      if (Date.now() > deadline) throw new Error(`socat did not link ${ttys.join(' and ')} within ${timeoutMs} ms: ${log.trim()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    await Promise.race([ready, spawnError]);
  } catch (err) {
    socat.kill();
    throw err;
  }
  spawnError.catch(() => {});
  const keepOpen = ttys.map((t) => openSync(t, TTY_FLAGS));
  return async () => {
    for (const fd of keepOpen.splice(0)) closeSync(fd);
    await stopChild(socat);
  };
}

export interface PeerProcess {
  readonly child: ChildProcess;
  /** Resolves when the program exits, with its exit code and everything it wrote to stderr. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  kill(): Promise<void>;
}

/** Runs `command` with stdin and stdout on the tty at `ttyPath` (stderr is captured). */
export function spawnOnTty(command: string, args: readonly string[], ttyPath: string, cwd: string): PeerProcess {
  const fd = openSync(ttyPath, TTY_FLAGS);
  let child: ChildProcess;
  try {
    child = spawn(command, args, { cwd, stdio: [fd, fd, 'pipe'] });
  } finally {
    closeSync(fd);
  }
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run ${command}: ${err.message} — is it installed?`, { cause: err })));
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  exited.catch(() => {});
  return { child, exited, kill: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
  await gone;
  clearTimeout(timer);
}
