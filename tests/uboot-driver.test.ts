/**
 * The U-Boot console driver against a scripted U-Boot on the mock link: a line editor that
 * echoes, runs on CR, repeats the last line on an empty one, abandons the line on Ctrl-C, and a
 * hush-like shell (`;`, single quotes, `$?`, setenv/printenv/run/echo). Real U-Boot is in
 * flash-uboot.test.ts; this covers what real U-Boot will not do on demand: damaged echoes, lost
 * markers, hangs, a dead line.
 */
import { describe, expect, test } from 'vitest';
import { MockTransport } from './helpers/transport-mock';
import { isQuotable, UbootConsole, UbootError, ubootFailureLine, type UbootConsoleOptions } from '../sdk/flash/uboot';

type Handler = (args: string[], fake: FakeUboot) => { output?: string; status?: number; hang?: boolean } | void;

class FakeUboot {
  readonly env = new Map<string, string>();
  /** Every simple command executed, in order, after expansion. */
  readonly executed: string[] = [];
  readonly handlers = new Map<string, Handler>();
  /** Echo the next N typed lines with their first character damaged. */
  damageEchoes = 0;
  /** Store (and echo) the first character of the next N typed lines damaged: the line U-Boot holds is wrong. */
  damageReceived = 0;
  /**
   * U-Boot's line editor: Ctrl-A moves to the start of the line (backspaces), Ctrl-E to its end
   * (printing it), Ctrl-B one left (a backspace), Ctrl-F one right (printing the character),
   * BS erases left of the cursor; characters are inserted at the cursor.
   */
  lineEditor = false;
  private cursor = 0;
  /** Drop the next N status-marker lines from the output. */
  dropMarkers = 0;
  /** Damage the next N answers to Ctrl-C (the "<INTERRUPT>" and the prompt after it). */
  damageInterrupts = 0;
  /** Store setenv values with a change (a flash that does not keep what it is told). */
  mangleSetenv = false;
  private line = '';
  private last = '';
  private status = 0;
  private booting: boolean;
  private busy = false;

  constructor(
    private readonly link: MockTransport,
    options: { booting?: boolean } = {},
  ) {
    this.booting = options.booting ?? false;
    if (this.booting) this.out('\r\n\r\nU-Boot 2023.01 (fake)\r\n\r\nDRAM:  1 GiB\r\nHit any key to stop autoboot:  3 ');
    link.onWrite((bytes) => {
      for (const b of bytes) this.key(String.fromCharCode(b));
    });
    this.handlers.set('version', () => ({ output: 'U-Boot 2023.01 (fake)\r\n\r\naarch64-linux-gnu-gcc 12.2.0' }));
    this.handlers.set('crc32', (a) => ({ output: `crc32 for ${a[0]!.slice(2)} ... ${(BigInt(a[0]!) + BigInt(a[1]!) - 1n).toString(16)} ==> 1234abcd` }));
  }

  private out(text: string): void {
    this.link.emitData(text);
  }

  /**
   * Left inside `loady` with `frameBytesLeft` bytes of a frame still to come, as after a pulled
   * cable: every byte is frame data and restarts the character timeout (`charTimeoutMs`, 2 s in
   * U-Boot); when it fires the receiver asks again with 'C' and waits for a frame start, where
   * three CANs cancel it and it returns to the prompt. Ctrl-C means nothing to it.
   */
  stuckInLoady(frameBytesLeft: number, charTimeoutMs: number): void {
    this.receiving = { left: frameBytesLeft, cans: 0, timeoutMs: charTimeoutMs, timer: undefined };
    this.armReceiveTimer();
  }

  private receiving: { left: number; cans: number; timeoutMs: number; timer: NodeJS.Timeout | undefined } | undefined;

  /**
   * The command running (e.g. a `loady` whose closing block was damaged) prints `text` only once
   * the line has been quiet for `idleMs`: every byte it gets starts the wait over (U-Boot's YMODEM
   * receiver waits for 2 s of silence before it reports an error).
   */
  printWhenQuiet(idleMs: number, text: string): void {
    const arm = (): void => {
      clearTimeout(this.quiet?.timer);
      this.quiet = {
        timer: setTimeout(() => {
          this.quiet = undefined;
          this.busy = false;
          this.out(text);
        }, idleMs),
      };
    };
    this.rearmQuiet = arm;
    arm();
  }

  private quiet: { timer: NodeJS.Timeout } | undefined;
  private rearmQuiet: (() => void) | undefined;

  private armReceiveTimer(): void {
    const r = this.receiving!;
    clearTimeout(r.timer);
    r.timer = setTimeout(() => {
      r.left = 0;
      r.cans = 0;
      this.out('C');
      this.armReceiveTimer();
    }, r.timeoutMs);
  }

  private key(ch: string): void {
    if (this.quiet) return this.rearmQuiet!();
    if (this.busy) return; // a running command does not read the keyboard
    if (this.receiving) {
      const r = this.receiving;
      if (r.left > 0) r.left--;
      else if (ch === '\x18' && ++r.cans === 3) {
        clearTimeout(r.timer);
        this.receiving = undefined;
        this.out('## Binary (ymodem) download aborted\r\n## Error: Cancelled\r\n=> ');
        return;
      }
      this.armReceiveTimer();
      return;
    }
    if (this.booting) {
      this.booting = false;
      this.out('\b\b\b 0 \r\n=> ');
      return;
    }
    if (ch === '\x03') {
      this.line = '';
      this.cursor = 0;
      this.last = '';
      if (this.damageInterrupts > 0) {
        this.damageInterrupts--;
        this.out('<INT\x7fRRUPT>\r\n=\x7f ');
        return;
      }
      this.out('<INTERRUPT>\r\n=> ');
      return;
    }
    if (ch === '\x18') {
      this.line = '';
      this.cursor = 0;
      return;
    }
    if (this.lineEditor && ch === '\x01') {
      this.out('\b'.repeat(this.cursor));
      this.cursor = 0;
      return;
    }
    if (this.lineEditor && ch === '\x05') {
      this.out(this.line.slice(this.cursor));
      this.cursor = this.line.length;
      return;
    }
    if (this.lineEditor && ch === '\x02') {
      if (this.cursor > 0) (this.cursor--, this.out('\b'));
      return;
    }
    if (this.lineEditor && ch === '\x06') {
      if (this.cursor < this.line.length) this.out(this.line[this.cursor++]!);
      return;
    }
    if (this.lineEditor && ch === '\b') {
      if (this.cursor === 0) return;
      const tail = this.line.slice(this.cursor);
      this.line = this.line.slice(0, this.cursor - 1) + tail;
      this.cursor--;
      this.out('\b' + tail + ' ' + '\b'.repeat(tail.length + 1));
      return;
    }
    if (this.line === '' && this.damageReceived > 0) {
      this.damageReceived--;
      this.line += '#';
      this.cursor = 1;
      this.out('#');
      return;
    }
    if (ch === '\r') {
      this.out('\r\n');
      const line = this.line !== '' ? this.line : this.last;
      this.line = '';
      this.cursor = 0;
      if (line !== '') {
        this.last = line;
        if (this.runLine(line) === 'hang') return;
      }
      this.out('=> ');
      return;
    }
    if (this.line === '' && this.damageEchoes > 0) {
      this.damageEchoes--;
      this.line += ch;
      this.cursor = 1;
      this.out('#');
      return;
    }
    const tail = this.line.slice(this.cursor);
    this.line = this.line.slice(0, this.cursor) + ch + tail;
    this.cursor++;
    this.out(ch + tail + '\b'.repeat(tail.length));
  }

  /** `a; b 'c; d'; e` → commands, quotes kept for the word splitter. */
  private runLine(line: string): 'hang' | void {
    const commands: string[] = [];
    let cur = '';
    let quoted = false;
    for (const ch of line) {
      if (ch === "'") quoted = !quoted;
      if (ch === ';' && !quoted) {
        commands.push(cur.trim());
        cur = '';
      } else cur += ch;
    }
    if (cur.trim()) commands.push(cur.trim());
    for (const c of commands) if (this.runCommand(c) === 'hang') return 'hang';
  }

  private runCommand(command: string): 'hang' | void {
    const words: string[] = [];
    const re = /'([^']*)'|(\S+)/g;
    for (let m = re.exec(command); m; m = re.exec(command)) words.push(m[1] ?? m[2]!.replace('$?', String(this.status)));
    const [name, ...args] = words;
    if (!name) return;
    switch (name) {
      case 'setenv':
        if (args.length <= 1) this.env.delete(args[0]!);
        else this.env.set(args[0]!, this.mangleSetenv ? args.slice(1).join(' ') + 'X' : args.slice(1).join(' '));
        this.status = 0;
        return;
      case 'printenv': {
        const v = this.env.get(args[0]!);
        if (v === undefined) {
          this.out(`## Error: "${args[0]}" not defined\r\n`);
          this.status = 1;
        } else {
          this.out(`${args[0]}=${v}\r\n`);
          this.status = 0;
        }
        return;
      }
      case 'run': {
        const v = this.env.get(args[0]!);
        if (v === undefined) {
          this.out(`## Error: "${args[0]}" not defined\r\n`);
          this.status = 1;
          return;
        }
        return this.runLine(v);
      }
      case 'echo': {
        const text = args.join(' ');
        if (/^@@\d+@@\d+$/.test(text) && this.dropMarkers > 0) {
          this.dropMarkers--;
          return;
        }
        this.out(text + '\r\n');
        this.status = 0;
        return;
      }
    }
    this.executed.push(words.join(' '));
    const h = this.handlers.get(name);
    if (!h) {
      this.out(`Unknown command '${name}' - try 'help' without arguments for list of all known commands\r\n`);
      this.status = 1;
      return;
    }
    const r = h(args, this) ?? {};
    if (r.hang) {
      this.busy = true;
      return 'hang';
    }
    if (r.output) this.out(r.output + '\r\n');
    this.status = r.status ?? 0;
  }
}

const FAST: Partial<UbootConsoleOptions> = { quietMs: 150, attachTimeoutMs: 3_000, commandTimeoutMs: 3_000 };

async function setup(options: { booting?: boolean } = {}, consoleOptions: Partial<UbootConsoleOptions> = {}) {
  const link = await MockTransport.open('mock:uboot');
  const fake = new FakeUboot(link, options);
  const typed: string[] = [];
  const uboot = new UbootConsole(link, { prompt: '=> ', ...FAST, ...consoleOptions, onConsole: (t, d) => d === 'tx' && typed.push(t) });
  return { link, fake, uboot, typed };
}

describe('U-Boot console driver (scripted U-Boot on the mock link)', () => {
  test('attach stops autoboot with the interrupt key and settles at a prompt', async () => {
    const { uboot, typed } = await setup({ booting: true });
    const banner = await uboot.attach();
    expect(banner).toContain('Hit any key to stop autoboot');
    expect(typed[0]).toBe('\x18\x18\x18\x18\x18\x03'); // a receive cancelled first, then the interrupt key
    expect(typed).toContain('\x03'); // confirmed with Ctrl-C: the prompt answers
  });

  test('attach gets a board out of a loady it was left in (pulled cable) before looking for the prompt', async () => {
    // Keys typed every 400 ms keep a receiver waiting for the rest of a frame (each restarts its
    // character timeout): attach must go quiet until it asks again, then cancel it with CANs.
    const { uboot, fake, typed } = await setup({}, { attachTimeoutMs: 8_000 });
    fake.stuckInLoady(900, 1_000);
    await uboot.attach();
    expect(fake.env.size).toBe(0);
    expect(typed.join('')).toContain('\x18\x18\x18');
    const v = await uboot.query('version');
    expect(v.output).toContain('U-Boot 2023.01');
  });

  test('attach finds a board already sitting at its prompt', async () => {
    const { uboot } = await setup();
    await uboot.attach();
    expect((await uboot.query('version')).output).toContain('U-Boot 2023.01 (fake)');
  });

  test('attach gives up with E_UBOOT_NO_PROMPT when nothing answers', async () => {
    const link = await MockTransport.open();
    const uboot = new UbootConsole(link, { prompt: '=> ', attachTimeoutMs: 600 });
    await expect(uboot.attach()).rejects.toMatchObject({ code: 'E_UBOOT_NO_PROMPT' });
  });

  test('query returns output and status; U-Boot failures are E_UBOOT_COMMAND with its line', async () => {
    const { uboot } = await setup();
    await uboot.attach();
    const v = await uboot.query('version');
    expect(v).toMatchObject({ command: 'version', status: 0 });
    expect(v.output.split('\r\n')[0]).toBe('U-Boot 2023.01 (fake)');
    const e = await uboot.query('nosuch 1 2').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UbootError);
    expect(e).toMatchObject({ code: 'E_UBOOT_COMMAND' });
    expect((e as UbootError).message).toContain("Unknown command 'nosuch'");
    expect((await uboot.query('nosuch', { allowFailure: true })).status).toBe(1);
  });

  test('run() stores a writing command, runs it from the variable once, and clears the variable', async () => {
    const { uboot, fake, typed } = await setup();
    fake.handlers.set('virtio', (a) => ({ output: `virtio ${a[0]}: device 0 block # 2048, count 2048 ... 2048 blocks written: OK` }));
    await uboot.attach();
    const r = await uboot.run('virtio write 0x50000000 0x800 0x800');
    expect(r.output).toContain('blocks written: OK');
    expect(fake.executed.filter((c) => c.startsWith('virtio'))).toEqual(['virtio write 0x50000000 0x800 0x800']);
    expect(fake.env.has('signet')).toBe(false);
    // The command itself is only ever typed inside the quoted setenv.
    const lines = typed.filter((t) => t.length > 1);
    expect(lines.filter((l) => l.includes('virtio write')).every((l) => l.startsWith("setenv signet 'virtio write"))).toBe(true);
    expect(lines).toContain(lines.find((l) => l.startsWith('run signet; echo @@$?@@') && l.endsWith('; setenv signet')));
  });

  test('a line whose echo comes back damaged is abandoned with Ctrl-C and typed again; it runs once', async () => {
    const { uboot, fake, typed } = await setup();
    fake.handlers.set('mw.l', () => ({}));
    await uboot.attach();
    fake.damageEchoes = 2;
    await uboot.run('mw.l 0x50000000 0x0 0x100');
    expect(fake.executed.filter((c) => c.startsWith('mw.l'))).toHaveLength(1);
    expect(uboot.stats.retypedLines).toBe(2);
    expect(typed.filter((t) => t === '\x03').length).toBeGreaterThanOrEqual(3); // attach + one per damaged line
  });

  test('with a line editor, a line whose echo alone was damaged is shown again (Ctrl-A Ctrl-E), not typed again', async () => {
    const { uboot, fake, typed } = await setup();
    fake.lineEditor = true;
    fake.handlers.set('mw.l', () => ({}));
    await uboot.attach();
    fake.damageEchoes = 2;
    await uboot.run('mw.l 0x50000000 0x0 0x100');
    expect(fake.executed.filter((c) => c.startsWith('mw.l'))).toHaveLength(1);
    expect(uboot.stats).toMatchObject({ damagedEchoes: 2, retypedLines: 0 });
    expect(typed.filter((t) => t === '\x01\x05')).toHaveLength(2);
  });

  test('with a line editor, a line that arrived damaged is never run as it is: it is mended in place from the line shown, shown again exactly, and runs once', async () => {
    const { uboot, fake, typed } = await setup();
    fake.lineEditor = true;
    fake.handlers.set('mw.l', () => ({}));
    await uboot.attach();
    fake.damageReceived = 1;
    await uboot.run('mw.l 0x50000000 0x0 0x100');
    expect(fake.executed).toEqual(['mw.l 0x50000000 0x0 0x100']);
    expect(uboot.stats).toMatchObject({ damagedEchoes: 1, mendedLines: 1, retypedLines: 0 });
    // The echo and the line shown agree on the damaged character: one look, then the mend
    // (to the first character from the start, erase it, type the right one) and one more look.
    expect(typed.filter((t) => t === '\x01\x05')).toHaveLength(1);
    expect(typed).toContain('\x01\x06\x08s\x01\x05');
  });

  test('without a line editor, a line that arrived damaged is abandoned and typed again', async () => {
    const { uboot, fake } = await setup();
    fake.handlers.set('mw.l', () => ({}));
    await uboot.attach();
    fake.damageReceived = 1;
    await uboot.run('mw.l 0x50000000 0x0 0x100');
    expect(fake.executed).toEqual(['mw.l 0x50000000 0x0 0x100']);
    expect(uboot.stats).toMatchObject({ damagedEchoes: 1, mendedLines: 0, retypedLines: 1 });
  });

  test('a lost status marker is detected by silence and a Ctrl-C probe; run() repeats the step', async () => {
    const { uboot, fake } = await setup();
    fake.handlers.set('mw.l', () => ({}));
    await uboot.attach();
    fake.dropMarkers = 1;
    const r = await uboot.run('mw.l 0x50000000 0x0 0x100');
    expect(r.status).toBe(0);
    expect(uboot.stats.lostOutputs).toBe(1);
    // The setenv's marker was the one lost: the step ran again from the start.
    expect(fake.executed.filter((c) => c.startsWith('mw.l')).length).toBeGreaterThanOrEqual(1);
    expect(fake.env.has('signet')).toBe(false);
  });

  test('a lost marker whose Ctrl-C answer also comes back damaged is asked again, not waited out to the time bound', async () => {
    const { uboot, fake } = await setup({}, { commandTimeoutMs: 20_000 });
    fake.handlers.set('mw.l', () => ({}));
    await uboot.attach();
    fake.dropMarkers = 1;
    fake.damageInterrupts = 1;
    const r = await uboot.run('mw.l 0x50000000 0x0 0x100', { timeoutMs: 20_000 });
    expect(r.status).toBe(0);
    expect(uboot.stats.lostOutputs).toBe(1);
    expect(fake.damageInterrupts).toBe(0);
  });

  test('a command that never finishes times out with E_UBOOT_TIMEOUT', async () => {
    const { uboot, fake } = await setup();
    fake.handlers.set('sleep', () => ({ hang: true }));
    await uboot.attach();
    await expect(uboot.query('sleep 100', { timeoutMs: 800 })).rejects.toMatchObject({ code: 'E_UBOOT_TIMEOUT' });
  });

  test('start() hands the link over after Enter; finish() reads the rest and the status', async () => {
    const { uboot, fake, link } = await setup();
    fake.handlers.set('loady', () => ({ hang: true }));
    await uboot.attach();
    const loady = await uboot.start('loady 0x50000000');
    expect(fake.executed).toContain('loady 0x50000000');
    // The "transfer" happens; then U-Boot prints its summary, the marker and the prompt.
    link.emitData('## Total Size      = 0x00000400 = 1024 Bytes\r\n@@0@@' + (uboot as unknown as { seq: number }).seq + '\r\n=> ');
    const r = await loady.finish(2_000);
    expect(r.output).toContain('Total Size');
    expect(r.status).toBe(0);
  });

  test('finish() lets a board that waits for a quiet line have it: probes further and further apart, never at a pace that keeps it waiting', async () => {
    // U-Boot's loady, when the closing block arrives damaged, waits for 2 s without a byte before
    // it prints the error, its status and the prompt; probing every 1.5 s kept it there until the
    // 30 s bound, on every attempt (flash-hardening, a 1 % line). Here: probes every 150 ms, a
    // board that wants 400 ms of quiet.
    const { uboot, fake, typed } = await setup();
    fake.handlers.set('loady', () => ({ hang: true }));
    await uboot.attach();
    const loady = await uboot.start('loady 0x50000000');
    const seq = (uboot as unknown as { seq: number }).seq;
    fake.printWhenQuiet(400, `\r\nCRC/checksum error\r\n## Binary (ymodem) download aborted\r\n@@1@@${seq}\r\n=> `);
    const probesBefore = typed.filter((t) => t === '\x03').length;
    const r = await loady.finish(5_000, { allowFailure: true });
    expect(r.status).toBe(1);
    expect(r.output).toContain('download aborted');
    expect(typed.filter((t) => t === '\x03').length - probesBefore).toBeLessThanOrEqual(3); // a probe or two, and the resync after one
  });

  test('setenv reads the value back; a board that stores something else is E_UBOOT_OUTPUT', async () => {
    const { uboot, fake } = await setup();
    await uboot.attach();
    await uboot.setenv('bootcmd', 'virtio scan; virtio read 0x50000000 0x800 0x18000; bootm 0x50000000');
    expect(fake.env.get('bootcmd')).toBe('virtio scan; virtio read 0x50000000 0x800 0x18000; bootm 0x50000000');
    fake.mangleSetenv = true;
    await expect(uboot.setenv('bootdelay', '3')).rejects.toMatchObject({ code: 'E_UBOOT_OUTPUT' });
  });

  test('values that cannot be typed safely are refused before anything is sent', async () => {
    const { uboot, link } = await setup();
    await uboot.attach();
    const before = link.writes.length;
    await expect(uboot.run("echo 'x'")).rejects.toMatchObject({ code: 'E_UBOOT_VALUE' });
    await expect(uboot.setenv('bootcmd', 'a\nb')).rejects.toMatchObject({ code: 'E_UBOOT_VALUE' });
    await expect(uboot.setenv('bad name', 'x')).rejects.toMatchObject({ code: 'E_UBOOT_VALUE' });
    expect(link.writes.length).toBe(before);
    expect(isQuotable('virtio write 0x1 0x2 0x3')).toBe(true);
    expect(isQuotable("it's")).toBe(false);
  });

  test('a link that goes away is E_UBOOT_LINK', async () => {
    const { uboot, fake, link } = await setup();
    fake.handlers.set('sleep', () => ({ hang: true }));
    await uboot.attach();
    const pending = uboot.query('sleep 100', { timeoutMs: 5_000 });
    setTimeout(() => link.hangUp(), 50);
    await expect(pending).rejects.toMatchObject({ code: 'E_UBOOT_LINK' });
  });

  test('failure lines are recognised whatever the exit status', () => {
    expect(ubootFailureLine('virtio write: device 0 block # 0, count 1 ... -19 blocks written: ERROR')).toContain('ERROR');
    expect(ubootFailureLine('## Error: "x" not defined')).toBe('## Error: "x" not defined');
    expect(ubootFailureLine('Saving Environment to Flash... Failed (1)')).toContain('Failed');
    expect(ubootFailureLine('2048 blocks written: OK')).toBeUndefined();
    expect(ubootFailureLine('crc32 for 50000000 ... 50000fff ==> c71c0011')).toBeUndefined();
  });
});
