/**
 * U-Boot console driver: find the prompt (interrupting autoboot), type commands, read what
 * they print and whether they failed, and time out cleanly. It speaks to whatever prompt the
 * board file names; which commands to run is the caller's business (sdk/flash/flasher.ts takes
 * them from board.json).
 *
 * A serial line can damage bytes, and U-Boot executes a line the moment it sees CR. So:
 *  1. Every line is typed without its CR first; U-Boot echoes what it received, and only an
 *     exact echo earns the CR. A damaged line is abandoned with Ctrl-C (which also stops an
 *     empty line from repeating the previous command) and typed again.
 *  2. Every line ends in `echo @@$?@@<n>`: its exit status and a sequence number, so the end
 *     of a command and its outcome are read from a marker, not guessed from the prompt.
 *  3. A command that writes memory or flash is never typed directly: a byte turned into CR
 *     half-way would run a prefix of it (`virtio write 0x50000000 0x8`). It is stored with
 *     `setenv signet '<command>'` (a cut-off line only stores a wrong value, or leaves hush
 *     waiting for the closing quote) and then executed by `run signet`, which clears the
 *     variable on the same line, so a repeated line finds nothing to run.
 * Lost output (no marker) is detected by silence and a Ctrl-C probe, and reported as
 * E_UBOOT_LOST_OUTPUT: the outcome is unknown and the caller repeats the (idempotent) step.
 */
import type { Transport } from './transport-types';
import { TransportError } from './transport-errors';
import { UbootError } from './uboot-errors';
import { isQuotable, UBOOT_VARIABLE_NAME } from './uboot-syntax';

export { UbootError } from './uboot-errors';
export type { UbootErrorCode } from './uboot-errors';
export { isQuotable } from './uboot-syntax';

const CTRL_C = '\x03';
/** Ctrl-A, Ctrl-E: U-Boot's line editor moves to the start of the line (backspaces) and back to its end, printing the whole line again. */
const SHOW_LINE = '\x01\x05';
/** U-Boot's line editor: Ctrl-A start of line, Ctrl-B one left, Ctrl-F one right (each printing what it passes), BS delete left. */
const EDIT = { start: '\x01', left: '\x02', right: '\x06', erase: '\x08' } as const;
/** Five CANs cancel a YMODEM receive that is still waiting; at a prompt they are Ctrl-X (erase line). */
const CANCEL_RECEIVE = '\x18\x18\x18\x18\x18';
const TAIL_CHARS = 4000;

export interface UbootConsoleOptions {
  /** The board's prompt, e.g. `=> ` (board.json serial.prompt). */
  prompt: string;
  /** What stops autoboot (board.json serial.interruptKey). Default a space. */
  interruptKey?: string;
  /** How long `attach` waits for a prompt (a board booting, or a person pressing reset). Default 60 s. */
  attachTimeoutMs?: number;
  /** Default bound on one command. Default 30 s. */
  commandTimeoutMs?: number;
  /**
   * Silence after which a command whose marker has not come is probed with Ctrl-C. Default 1.5 s.
   * Each further probe waits twice as long as the one before, and the first one after a command
   * from `start` (a YMODEM transfer) twice as long too: a board may go on only once the line has
   * been quiet for a while (U-Boot's loady, ending in an error, waits for 2 s without a byte
   * before it prints it), and a probe sent sooner would only start that wait over.
   */
  quietMs?: number;
  /** How many times one line is typed before giving up (E_UBOOT_LINE). Default 40. */
  lineRetries?: number;
  /** Environment variable used to run commands that write (see above). Default `signet`. */
  variable?: string;
  /**
   * Called after every line whose echo differed (it is typed again next), with the counts so
   * far; may throw to stop (the flasher's bound on a line too bad to make progress).
   */
  onRetype?: (stats: Readonly<ConsoleStats>) => void;
  /** Every byte received (`rx`) and typed (`tx`), as latin1 text: transcripts, `--verbose`. */
  onConsole?: (text: string, direction: 'rx' | 'tx') => void;
}

export interface ConsoleStats {
  /** Lines typed (every attempt) and their characters; lines that had to be typed again. */
  typedLines: number;
  typedChars: number;
  retypedLines: number;
  /** Lines whose first echo differed (typed again, shown again intact, or mended: see typeLine). */
  damagedEchoes: number;
  /** Lines that arrived damaged and were mended in place with the line editor instead of typed again. */
  mendedLines: number;
  /** Commands whose output was lost; resyncs. */
  lostOutputs: number;
  resyncs: number;
}

export interface CommandResult {
  command: string;
  /** What the command printed: without the echoed line, the status marker and the prompt. */
  output: string;
  /** U-Boot's `$?` after the command. */
  status: number;
}

export interface RunOptions {
  timeoutMs?: number;
  /**
   * A command that works silently for long (NOR programmed a word at a time): how long its
   * silence is not taken for lost output (no Ctrl-C probe before). Default: the console's quietMs.
   */
  silentMs?: number;
  /** Return a non-zero status instead of throwing E_UBOOT_COMMAND. */
  allowFailure?: boolean;
}

/** A command started with `start` (e.g. `loady`): the link is the caller's until `finish`. */
export interface StartedCommand {
  readonly command: string;
  finish(timeoutMs?: number, options?: RunOptions): Promise<CommandResult>;
}

/** Lines in U-Boot output that mean a command failed, whatever its exit status. */
const FAILURE_PATTERNS: readonly RegExp[] = [
  /Unknown command/,
  /^## Error/,
  /\bERROR\b/,
  /^Error:/,
  /^Usage:/,
  /\bfailed\b/i,
];

/** The first line of `output` that reports a failure, if any. */
export function ubootFailureLine(output: string): string | undefined {
  for (const line of output.split(/\r?\n/)) {
    if (FAILURE_PATTERNS.some((re) => re.test(line.trim()))) return line.trim();
  }
  return undefined;
}


function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

function printable(text: string): string {
  return JSON.stringify(text.length > 200 ? '…' + text.slice(-200) : text);
}

export class UbootConsole {
  readonly link: Transport;
  private readonly prompt: string;
  private readonly interruptKey: string;
  private readonly attachTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly quietMs: number;
  private readonly lineRetries: number;
  private readonly variable: string;
  private readonly onConsole?: (text: string, direction: 'rx' | 'tx') => void;
  private readonly onRetype?: (stats: Readonly<ConsoleStats>) => void;
  private seq = 0;
  private tail = '';
  /** Lines that had to be typed again, and commands whose output was lost: a measure of line noise. */
  readonly stats: ConsoleStats = { typedLines: 0, typedChars: 0, retypedLines: 0, damagedEchoes: 0, mendedLines: 0, lostOutputs: 0, resyncs: 0 };

  constructor(link: Transport, options: UbootConsoleOptions) {
    if (options.prompt.length === 0) throw new UbootError('E_UBOOT_VALUE', 'the U-Boot prompt is empty', 'set serial.prompt in the board file');
    this.link = link;
    this.prompt = options.prompt;
    this.interruptKey = options.interruptKey ?? ' ';
    this.attachTimeoutMs = options.attachTimeoutMs ?? 60_000;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 30_000;
    this.quietMs = options.quietMs ?? 1_500;
    this.lineRetries = options.lineRetries ?? 40;
    this.variable = options.variable ?? 'signet';
    this.onConsole = options.onConsole;
    this.onRetype = options.onRetype;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,31}$/.test(this.variable)) {
      throw new UbootError('E_UBOOT_VALUE', `"${this.variable}" is not a U-Boot variable name`, 'use letters, digits and _');
    }
  }

  /** The last few thousand characters the board printed. */
  get transcript(): string {
    return this.tail;
  }

  /**
   * Gets to a clean prompt: keeps hitting the interrupt key while the board prints (it may be
   * booting; the key stops autoboot), and when it is silent or shows a prompt, checks with
   * Ctrl-C that a prompt answers. Returns what the board printed meanwhile (its banner).
   */
  async attach(): Promise<string> {
    const deadline = Date.now() + this.attachTimeoutMs;
    let seen = await this.leaveTransfer(deadline);
    if (seen.includes(this.prompt) && (await this.trySync(1_000))) return seen;
    while (Date.now() < deadline) {
      await this.send(this.interruptKey);
      const { text } = await this.collect('', () => false, 400);
      seen += text;
      const meaningful = text.split(this.interruptKey).join('').trim();
      if ((meaningful === '' || seen.includes(this.prompt)) && (await this.trySync(1_000))) return seen;
    }
    throw new UbootError(
      'E_UBOOT_NO_PROMPT',
      `no U-Boot prompt ${JSON.stringify(this.prompt)} on ${this.link.address} within ${Math.round(this.attachTimeoutMs / 1000)} s`,
      'reset or power-cycle the board (signet stops its autoboot), and check the port and baud rate',
      { transcript: this.tail },
    );
  }

  /**
   * A board left inside `loady` (a cable pulled, a flasher killed mid-transfer) takes every key
   * as YMODEM data, and each one restarts its 2 s character timeout: typing at it keeps it there.
   * So before any key: CANs (three at a frame boundary cancel the receive; at a prompt they are
   * Ctrl-X, erase line) and a Ctrl-C (a prompt answers it at once), then silence, so that a
   * half-received frame times out and the receiver asks again ('C' or NAK): it is then at a frame
   * boundary, where the next CANs cancel it. Anything else the board prints (its banner, the
   * autoboot countdown) ends this step at once and the interrupt key takes over.
   */
  private async leaveTransfer(deadline: number): Promise<string> {
    let seen = '';
    for (let round = 0; round < 4 && Date.now() < deadline; round++) {
      await this.send(CANCEL_RECEIVE + CTRL_C);
      const { text } = await this.collect('', (t) => this.endsAtPrompt(t) || /[^C\x15\x06\x18\x08\s]/.test(t) || /[C\x15]/.test(t), Math.min(3_000, Math.max(0, deadline - Date.now())));
      seen += text;
      if (!/[C\x15]/.test(text) || /[^C\x15\x06\x18\x08\s]/.test(text)) break;
      // Only a receiver asking for a frame: it is at a frame boundary now; cancel it there.
      await new Promise((r) => setTimeout(r, 20));
    }
    return seen;
  }

  /** Abandons whatever is on the line (and a YMODEM receive still waiting) and waits for a quiet prompt. */
  async resync(): Promise<void> {
    this.stats.resyncs++;
    for (let attempt = 0; attempt < 12; attempt++) {
      if (await this.trySync(attempt === 0 ? 1_500 : 3_000, attempt > 0)) return;
    }
    throw new UbootError(
      'E_UBOOT_NO_PROMPT',
      `lost the U-Boot prompt on ${this.link.address}: Ctrl-C no longer brings it back`,
      'check the board (did it reset or hang?) and run again',
      { transcript: this.tail },
    );
  }

  /** A command that only reads (`version`, `help x`, `printenv x`), typed directly. */
  async query(command: string, options: RunOptions = {}): Promise<CommandResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return this.checked(await this.execute(command, { timeoutMs: options.timeoutMs }), options);
      } catch (e) {
        if (!(e instanceof UbootError && e.code === 'E_UBOOT_LOST_OUTPUT' && attempt < 4)) throw e;
      }
    }
  }

  /**
   * A command that writes memory or flash: stored in the variable, then run from it (see the
   * header). Repeated while its output is lost, so it must be idempotent.
   */
  async run(command: string, options: RunOptions = {}): Promise<CommandResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store(command);
        const r = await this.execute(`run ${this.variable}`, { timeoutMs: options.timeoutMs, after: `setenv ${this.variable}`, silentMs: options.silentMs });
        return this.checked({ ...r, command }, options);
      } catch (e) {
        if (!(e instanceof UbootError && e.code === 'E_UBOOT_LOST_OUTPUT' && attempt < 4)) throw e;
      }
    }
  }

  /**
   * Starts a command that then talks on the link itself (`loady`): returns as soon as U-Boot
   * has the line, leaving every byte it sends afterwards to the caller. `finish` reads the rest
   * of its output and its status.
   */
  async start(command: string): Promise<StartedCommand> {
    await this.store(command);
    const seq = ++this.seq;
    await this.typeLine(`run ${this.variable}; echo @@$?@@${seq}; setenv ${this.variable}`);
    await this.send('\r');
    return {
      command,
      finish: async (timeoutMs = this.commandTimeoutMs, options: RunOptions = {}) =>
        this.checked({ ...(await this.awaitMarker(command, seq, timeoutMs, 2 * this.quietMs)), command }, options),
    };
  }

  /** Sets a variable and reads it back (`printenv`): what is saved must be exactly what was asked. */
  async setenv(name: string, value: string): Promise<void> {
    if (!UBOOT_VARIABLE_NAME.test(name)) {
      throw new UbootError('E_UBOOT_VALUE', `"${name}" is not a U-Boot variable name`, 'use letters, digits and _ . : - in board.json serial.env');
    }
    if (!isQuotable(value)) {
      throw new UbootError('E_UBOOT_VALUE', `the value of ${name} cannot be typed safely (a single quote, newline, control character, or over 512 characters)`, 'rewrite it in board.json serial.env');
    }
    // The echo check already proved what U-Boot received; the read-back guards what it stored.
    // A mismatch is usually the read-back damaged on the way back, so it is read again.
    for (let attempt = 0; ; attempt++) {
      if (attempt % 4 === 0) await this.query(`setenv ${name} '${value}'`);
      const shown = await this.query(`printenv ${name}`);
      if (shown.output.split(/\r?\n/).some((l) => l === `${name}=${value}`)) return;
      if (attempt >= 11) {
        throw new UbootError('E_UBOOT_OUTPUT', `U-Boot shows ${printable(shown.output)} for ${name} after setenv`, 'check the line to the board and run again', { transcript: this.tail });
      }
    }
  }

  /** Types `reset` and lets the board go. The link stays open (the board prints its boot). */
  async reset(): Promise<void> {
    await this.typeLine('reset');
    await this.send('\r');
    await this.collect('', (t) => /resetting/i.test(t), 3_000);
  }

  /**
   * Types `line` + its status marker (+ `after`), verifies the echo, presses Enter and waits
   * for the marker. Returns the raw result; `query`/`run` add failure checks and retries.
   */
  async execute(line: string, options: { timeoutMs?: number; after?: string; silentMs?: number } = {}): Promise<CommandResult> {
    const seq = ++this.seq;
    await this.typeLine(`${line}; echo @@$?@@${seq}${options.after ? `; ${options.after}` : ''}`);
    await this.send('\r');
    return this.awaitMarker(line, seq, options.timeoutMs ?? this.commandTimeoutMs, options.silentMs ?? this.quietMs);
  }

  private async store(command: string): Promise<void> {
    if (!isQuotable(command)) {
      throw new UbootError('E_UBOOT_VALUE', `the command ${printable(command)} cannot be typed safely (a single quote, newline or control character)`, 'rewrite the command in the board file');
    }
    const r = await this.query(`setenv ${this.variable} '${command}'`);
    if (r.status !== 0) throw new UbootError('E_UBOOT_COMMAND', `U-Boot could not store the command ${printable(command)}`, 'check the board file', { transcript: this.tail });
  }

  private checked(r: CommandResult, options: RunOptions): CommandResult {
    if (options.allowFailure) return r;
    const failure = ubootFailureLine(r.output);
    if (r.status !== 0 || failure) {
      throw new UbootError(
        'E_UBOOT_COMMAND',
        `U-Boot failed "${r.command}"${failure ? `: ${failure}` : ` (status ${r.status})`}`,
        'check the command in the board file and the board\'s storage',
        { transcript: this.tail },
      );
    }
    return r;
  }

  /** Types `line` (no Enter) until U-Boot echoes exactly it. */
  private async typeLine(line: string): Promise<void> {
    const echoTimeoutMs = 1_000 + 4 * line.length;
    for (let attempt = 1; attempt <= this.lineRetries; attempt++) {
      this.link.discardInput();
      this.stats.typedLines++;
      this.stats.typedChars += line.length;
      await this.send(line);
      // Done when the whole echo is in, or as soon as it departs from the line (a dropped or
      // damaged byte): no need to wait for the rest.
      const { text } = await this.collect('', (t) => t.length >= line.length || !line.startsWith(t), echoTimeoutMs, 600);
      if (text === line) return;
      this.stats.damagedEchoes++;
      // The line may have arrived intact and only its echo been damaged on the way back: ask
      // U-Boot to show the line it holds (twice at most) instead of typing it all again. Only an
      // exact copy counts. A line that arrived damaged is mended in place from what U-Boot shows
      // (a character or two, with the line editor) and shown again; only an exact copy counts
      // there too, else the line is abandoned with Ctrl-C and typed again.
      const shown = await this.lineShows(line, text, echoTimeoutMs);
      if (shown === true) return;
      if (shown !== undefined && (await this.mendLine(shown, line, echoTimeoutMs))) {
        this.stats.mendedLines++;
        return;
      }
      this.stats.retypedLines++;
      this.onRetype?.(this.stats);
      await this.resync();
    }
    throw new UbootError(
      'E_UBOOT_LINE',
      `could not type ${printable(line)} on ${this.link.address}: the echo differed ${this.lineRetries} times`,
      'the line is too noisy: check the cable and ground, or lower the baud rate',
      { transcript: this.tail },
    );
  }

  /**
   * Asks U-Boot to show its line again (Ctrl-A Ctrl-E, after `keys` when given): true when it
   * shows exactly `line`, else what it showed (undefined: no line editor, or the keys were lost).
   * Looks twice, unless the line shown departs from `line` at the same place and with the same
   * character as `echo` (the first echo, up to where it departed): two answers agree that U-Boot
   * holds a damaged line.
   */
  private async lineShows(line: string, echo: string, timeoutMs: number, keys = ''): Promise<true | string | undefined> {
    let shown: string | undefined;
    for (let look = 0; look < (keys ? 1 : 2); look++) {
      this.link.discardInput();
      await this.send(keys + SHOW_LINE);
      // The whole line is in once as many characters as it has follow the last backspace (U-Boot's
      // line can only be shorter than what was typed): no need to wait for the line to go quiet.
      const shownPart = (t: string): string => t.slice(t.lastIndexOf('\b') + 1);
      const { text } = await this.collect('', (t) => t.endsWith(line) || (t.includes('\b') && shownPart(t).length >= line.length), timeoutMs, 300);
      if (!text.includes('\b')) return undefined;
      shown = shownPart(text);
      if (shown === line) return true;
      if (echo.length > 0 && echo !== line.slice(0, echo.length) && shown.startsWith(echo)) return shown;
    }
    return shown;
  }

  /**
   * Edits U-Boot's line, believed to be `held` (cursor at its end, where Ctrl-E left it), into
   * `line` with the line editor: to the first wrong character (Ctrl-B from the end, or Ctrl-A and
   * Ctrl-F from the start, whichever is shorter), erase what differs, type what is missing; then
   * shows the line again. True only when it then shows exactly `line`; a wrong belief (a show
   * damaged on its way back) or a damaged key only costs another try from the line shown, twice
   * at most, and never more keys than typing the line again.
   */
  private async mendLine(held: string, line: string, timeoutMs: number): Promise<boolean> {
    for (let round = 0; round < 2; round++) {
      let p = 0;
      while (p < held.length && p < line.length && held[p] === line[p]) p++;
      let q = 0;
      while (q < held.length - p && q < line.length - p && held[held.length - 1 - q] === line[line.length - 1 - q]) q++;
      const at = held.length - q; // just after the characters to erase
      const move = q <= at + 1 ? EDIT.left.repeat(q) : EDIT.start + EDIT.right.repeat(at);
      const keys = move + EDIT.erase.repeat(at - p) + line.slice(p, line.length - q);
      if (keys.length >= line.length) return false;
      const shown = await this.lineShows(line, '', timeoutMs, keys);
      if (shown === true) return true;
      if (shown === undefined) return false;
      held = shown;
    }
    return false;
  }

  private async awaitMarker(command: string, seq: number, timeoutMs: number, firstQuietMs = this.quietMs): Promise<CommandResult> {
    const marker = new RegExp(`@@(\\d+)@@${seq}\\r?\\n`);
    const complete = (t: string): boolean => {
      const m = marker.exec(t);
      return m !== null && this.endsAtPrompt(t.slice(m.index + m[0].length));
    };
    const deadline = Date.now() + timeoutMs;
    let text = '';
    let probed = false;
    let quietMs = firstQuietMs;
    for (;;) {
      const r = await this.collect(text, complete, Math.max(0, deadline - Date.now()), quietMs);
      text = r.text;
      const m = marker.exec(text);
      if (m) {
        // Done. A missing prompt (damaged on the way) or a pending probe: settle before the next line.
        if (r.outcome !== 'done' || probed) await this.resync();
        return { command, output: text.slice(0, m.index).replace(/^\r?\n/, '').replace(/\r?\n$/, ''), status: Number(m[1]) };
      }
      if (r.outcome === 'timeout') {
        throw new UbootError(
          'E_UBOOT_TIMEOUT',
          `U-Boot did not finish "${command}" within ${Math.round(timeoutMs / 1000)} s`,
          'check the board (a hung storage command?) and run again',
          { transcript: this.tail },
        );
      }
      if (r.outcome === 'quiet') {
        if (probed && (text.includes('<INTERRUPT>') || this.endsAtPrompt(text))) {
          this.stats.lostOutputs++;
          await this.resync();
          throw new UbootError('E_UBOOT_LOST_OUTPUT', `the end of "${command}" was lost on the line`, 'the step is repeated', { transcript: this.tail });
        }
        // Still running, or finished with its marker lost, or the Enter was lost: a Ctrl-C
        // tells. A prompt reads it only after the command ended, so "<INTERRUPT>" and no marker
        // means the outcome cannot be known. Asked again after each quiet spell: on a bad line
        // the answer itself can arrive damaged, and waiting out the whole bound would not help.
        // Each spell twice as long as the last (see quietMs): probes at a fixed pace shorter
        // than the quiet a board waits for would keep it waiting until the bound.
        probed = true;
        await this.send(CTRL_C);
        quietMs *= 2;
      }
    }
  }

  /** Ctrl-C (after CANs when `cancelReceive`), then the prompt and `settleMs` of silence. */
  private async trySync(waitMs: number, cancelReceive = false): Promise<boolean> {
    this.link.discardInput();
    await this.send(cancelReceive ? CANCEL_RECEIVE + CTRL_C : CTRL_C);
    const r = await this.collect('', (t) => this.endsAtPrompt(t), waitMs);
    if (r.outcome !== 'done') return false;
    // Quiet after the prompt: nothing queued behind it (earlier keys, a second Ctrl-C).
    const after = await this.collect('', (t) => t.length > 0, 150);
    return after.text.length === 0;
  }

  private endsAtPrompt(text: string): boolean {
    return text.endsWith(`\n${this.prompt}`) || text === this.prompt;
  }

  /**
   * Reads into `text` until `done(text)`, `timeoutMs` passes ('timeout') or nothing arrives
   * for `quietMs` ('quiet').
   */
  private async collect(text: string, done: (t: string) => boolean, timeoutMs: number, quietMs = Infinity): Promise<{ text: string; outcome: 'done' | 'timeout' | 'quiet' }> {
    const deadline = Date.now() + timeoutMs;
    let last = Date.now();
    for (;;) {
      if (done(text)) return { text, outcome: 'done' };
      const now = Date.now();
      if (now >= deadline) return { text, outcome: 'timeout' };
      if (now - last >= quietMs) return { text, outcome: 'quiet' };
      const wait = Math.min(deadline - now, quietMs === Infinity ? Infinity : quietMs - (now - last));
      const chunk = await this.receive(wait);
      if (chunk.length > 0) {
        text += chunk;
        last = Date.now();
      }
    }
  }

  private async receive(timeoutMs: number): Promise<string> {
    let bytes: Uint8Array;
    try {
      bytes = await this.link.read(65_536, timeoutMs);
    } catch (e) {
      throw this.linkError(e);
    }
    if (bytes.length === 0) return '';
    const text = latin1(bytes);
    this.tail = (this.tail + text).slice(-TAIL_CHARS);
    this.onConsole?.(text, 'rx');
    return text;
  }

  private async send(text: string): Promise<void> {
    this.onConsole?.(text, 'tx');
    try {
      await this.link.write(Buffer.from(text, 'latin1'));
    } catch (e) {
      throw this.linkError(e);
    }
  }

  private linkError(e: unknown): unknown {
    if (e instanceof TransportError) {
      return new UbootError('E_UBOOT_LINK', `the link to the board failed: ${e.message.split(' — ')[0]}`, e.message.split(' — ')[1] ?? 'check the connection and run again', {
        cause: e,
        transcript: this.tail,
      });
    }
    return e;
  }
}
