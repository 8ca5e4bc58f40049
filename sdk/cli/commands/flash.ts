import { loadBoard } from '../../board';
import { intOption, JSON_OPTION, need, onePositional, UsageError, type Command } from '../command';

export const flash: Command = {
  path: ['flash'],
  summary: 'write a disk image to a dev board through its U-Boot console: verify, YMODEM in chunks, read-back compared, env, reset',
  args: '<disk.img>',
  options: {
    board: { type: 'string', valueName: 'id', description: 'the board (see `signet boards`)' },
    port: { type: 'string', valueName: 'port', description: 'serial device (/dev/ttyUSB0) or unix:/path (QEMU chardev socket)' },
    baud: { type: 'string', valueName: 'rate', description: "line speed of a serial device (default: the board's)" },
    keys: { type: 'string', valueName: 'folder', description: 'verify with <folder>/root.json and the public half of <folder>/fit.key' },
    root: { type: 'string', valueName: 'root.json', description: 'verify app images with this root metadata (with --key-dtb)' },
    'key-dtb': { type: 'string', valueName: 'file', description: "verify the boot image with U-Boot's public-key DTB (with --root)" },
    'skip-unchanged': { type: 'boolean', description: 'check what the board holds first (SHA-256 computed by U-Boot); send only chunks that differ' },
    'no-compress': { type: 'boolean', description: 'send data uncompressed even when U-Boot has unzip' },
    'no-reset': { type: 'boolean', description: 'leave the board at the U-Boot prompt' },
    'chunk-size': { type: 'string', valueName: 'KiB', description: 'largest data chunk sent and checked at once (default 1024)' },
    attempts: { type: 'string', valueName: 'N', description: 'attempts per chunk before giving up (default 5)' },
    verbose: { type: 'boolean', description: 'copy the console conversation to stderr' },
    ...JSON_OPTION,
  },
  details: [
    'Before anything is sent, the disk\'s boot image (FIT) and app images are verified for the board;',
    'a disk that does not verify is refused and the port is not opened.',
    "Then the board's U-Boot environment (board.json serial.env) is set and saved, or, on a board that",
    'cannot save it (serial.envMode "check"), checked before anything is written.',
    'Exit status 0 only when every byte was written, read back and matched. Ctrl-C stops the flash',
    'with the board at its prompt (exit 130); run it again with --skip-unchanged to resume.',
  ],
  async run(ctx) {
    const disk = onePositional(ctx, 'disk image');
    const board = loadBoard(need(ctx, 'board'));
    const port = need(ctx, 'port');
    const keys = ctx.values.keys as string | undefined;
    const root = ctx.values.root as string | undefined;
    const keyDtb = ctx.values['key-dtb'] as string | undefined;
    if (keys && (root || keyDtb)) throw new UsageError('give either --keys or --root with --key-dtb, not both');
    if (!keys && !(root && keyDtb)) throw new UsageError('--keys, or --root with --key-dtb, is required', 'the disk is verified with them before anything is sent');
    const baud = intOption(ctx, 'baud', 300, 4_000_000);
    const chunkKiB = intOption(ctx, 'chunk-size', 1, 1 << 20);
    const attempts = intOption(ctx, 'attempts', 1, 100);
    const { flashDisk } = await import('../../flash/flasher');
    const progress = await import('../../flash/progress');
    const reporter = ctx.json
      ? progress.jsonReporter(ctx.out)
      : process.stderr.isTTY
        ? progress.ttyReporter(process.stderr)
        : progress.plainReporter(ctx.out);
    const verbose = ctx.values.verbose === true;
    // Ctrl-C (or SIGTERM) stops between board commands and cancels a transfer under way; a
    // second one kills the process outright (the handlers are installed once).
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const summary = await flashDisk({
        signal: stop.signal,
        disk,
        board,
        trust: keys ? { keys } : { root: root!, keyDtb: keyDtb! },
        port,
        baud,
        skipUnchanged: ctx.values['skip-unchanged'] === true,
        compress: ctx.values['no-compress'] !== true,
        reset: ctx.values['no-reset'] !== true,
        chunkBytes: chunkKiB === undefined ? undefined : chunkKiB * 1024,
        attempts,
        onEvent: (e) => reporter.event(e),
        onConsole: verbose ? (text, dir) => process.stderr.write(dir === 'tx' ? `\x1b[2m${text}\x1b[0m` : text) : undefined,
      });
      reporter.close();
      if (!ctx.json) ctx.out(progress.summaryLine(summary));
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      reporter.close();
    }
  },
};

export const serialConsole: Command = {
  path: ['console'],
  summary: "plain serial console on a board (the terminal is passed through raw; Ctrl-] quits)",
  options: {
    port: { type: 'string', valueName: 'port', description: 'serial device (/dev/ttyUSB0) or unix:/path (QEMU chardev socket)' },
    baud: { type: 'string', valueName: 'rate', description: 'line speed of a serial device (default 115200)' },
  },
  details: ['Type Ctrl-] to quit.'],
  async run(ctx) {
    const port = need(ctx, 'port');
    const baud = intOption(ctx, 'baud', 300, 4_000_000);
    const { runTerminal } = await import('../../flash/uboot-terminal');
    const { asSignetError } = await import('../../disk/errors');
    if (process.stdin.isTTY) ctx.err(`connected to ${port}; Ctrl-] quits`);
    const r = await runTerminal({ port, baud, input: process.stdin, output: process.stdout }).catch((e) => Promise.reject(asSignetError(e)));
    if (process.stdin.isTTY) ctx.err(r.ended === 'quit' ? '\r\ndisconnected' : '\r\nthe board side closed the connection');
  },
};
