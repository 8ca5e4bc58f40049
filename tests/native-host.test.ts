// Builds the real signet-host (Debian's duktape.c + host.c) and runs real
// scripts on it: natively, under qemu-user for the cross builds when
// qemu-user-static is installed, and as PID 1 of a fresh PID namespace when
// running as root.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNativeHost, NativeBuildError, nativeTargetSpec, type NativeTarget } from '../bootloader/native/build';
import { skipUnlessCi } from './helpers/tools';

const BUILD_TIMEOUT = 600_000;

let work: string;
let host: string;
let scriptCount = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'signet-native-'));
  host = await buildNativeHost('host');
}, BUILD_TIMEOUT);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Shared by every script: hex of a byte array. */
const PRELUDE = `var n = signet_native;
function hex(u8) { var s = ''; for (var i = 0; i < u8.length; i++) s += (u8[i] < 16 ? '0' : '') + u8[i].toString(16); return s; }
`;

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  lines: string[];
}

function runScript(source: string, args: string[] = [], binary = host, runner: string[] = []): Run {
  const script = join(work, `script-${scriptCount++}.js`);
  writeFileSync(script, PRELUDE + source);
  const [cmd, ...pre] = [...runner, binary];
  const r = spawnSync(cmd!, [...pre, script, ...args], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, lines: r.stdout.split('\n').filter((l) => l !== '') };
}

const sha256Hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('signet-host (host build)', () => {
  it('prints its arguments joined by spaces, one line per call', () => {
    const r = runScript(`n.print('hello'); n.print('a', 1, true, null); n.print('héllo ✓');`);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('hello\na 1 true null\nhéllo ✓\n');
    expect(r.stderr).toBe('');
  });

  it('exposes args, isPid1 and arch', () => {
    const r = runScript(`n.print(JSON.stringify(n.args)); n.print(n.isPid1); n.print(n.arch);`, ['one', 'two words', '']);
    expect(r.lines).toEqual(['["one","two words",""]', 'false', nativeTargetSpec('host').arch]);
  });

  it('computes SHA-256 like Node for block-boundary lengths, 1 MB and views', () => {
    const inputs: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      abc: Buffer.from('abc'),
      fips2: Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmjklmnklmnlmnomnopnopq'),
      mb: randomBytes(1024 * 1024),
    };
    for (const len of [1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000]) inputs[`len${len}`] = randomBytes(len);
    const files = Object.entries(inputs).map(([name, data]) => {
      const file = join(work, `sha-${name}.bin`);
      writeFileSync(file, data);
      return file;
    });
    const r = runScript(
      `for (var i = 0; i < n.args.length; i++) n.print(hex(n.sha256(n.readFile(n.args[i]))));
       var mb = n.readFile(n.args[${Object.keys(inputs).indexOf('mb')}]);
       n.print(hex(n.sha256(mb.subarray(7, 7 + 1000))));
       n.print(hex(n.sha256(new Uint8Array(mb.buffer, 3, 64))));
       n.print(n.sha256(new Uint8Array(0)).length);
       try { n.sha256('abc'); n.print('no error'); } catch (e) { n.print(e.name); }`,
      files,
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const expected = Object.values(inputs).map(sha256Hex);
    expect(r.lines.slice(0, expected.length)).toEqual(expected);
    expect(expected[0]).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(r.lines[expected.length]).toBe(sha256Hex(inputs.mb!.subarray(7, 1007)));
    expect(r.lines[expected.length + 1]).toBe(sha256Hex(inputs.mb!.subarray(3, 67)));
    expect(r.lines.slice(expected.length + 2)).toEqual(['32', 'TypeError']);
  });

  it('reads, writes and flushes a block file at offsets', () => {
    const file = join(work, 'block.img');
    const original = randomBytes(4096);
    writeFileSync(file, original);
    const r = runScript(
      `var h = n.blockOpen(n.args[0], true);
       n.print(n.blockSize(h));
       n.print(hex(n.blockRead(h, 100, 50)));
       n.print(n.blockRead(h, 4096, 0).length);
       var data = new Uint8Array(200); for (var i = 0; i < 200; i++) data[i] = (i * 7) & 255;
       n.blockWrite(h, 4000, data);
       n.blockWrite(h, 10, data.subarray(5, 9));
       n.blockFlush(h);
       n.print(n.blockSize(h));
       n.print(hex(n.blockRead(h, 4000, 200)) === hex(data));
       try { n.blockRead(h, 4190, 20); n.print('no error'); } catch (e) { n.print(e.name, e.message); }
       try { n.blockRead(h, -1, 1); n.print('no error'); } catch (e) { n.print(e.name); }
       n.blockClose(h);
       try { n.blockSize(h); n.print('no error'); } catch (e) { n.print(e.name); }
       var ro = n.blockOpen(n.args[0], false);
       try { n.blockWrite(ro, 0, data); n.print('no error'); } catch (e) { n.print(e.name); }
       n.print(hex(n.blockRead(ro, 10, 4)));
       n.blockClose(ro);
       try { n.blockOpen(n.args[0] + '.missing', false); } catch (e) { n.print(e.message); }`,
      [file],
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.lines[0]).toBe('4096');
    expect(r.lines[1]).toBe(original.subarray(100, 150).toString('hex'));
    expect(r.lines[2]).toBe('0');
    expect(r.lines[3]).toBe('4200');
    expect(r.lines[4]).toBe('true');
    expect(r.lines[5]).toMatch(/^RangeError .*short read/);
    expect(r.lines[6]).toBe('RangeError');
    expect(r.lines[7]).toBe('TypeError');
    expect(r.lines[8]).toBe('Error');
    const pattern = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 7) & 255));
    expect(r.lines[9]).toBe(pattern.subarray(5, 9).toString('hex'));
    expect(r.lines[10]).toContain(`${file}.missing`);

    const after = readFileSync(file);
    expect(after.length).toBe(4200);
    expect(after.subarray(4000).equals(pattern)).toBe(true);
    expect(after.subarray(10, 14).equals(pattern.subarray(5, 9))).toBe(true);
    expect(after.subarray(0, 10).equals(original.subarray(0, 10))).toBe(true);
    expect(after.subarray(14, 4000).equals(original.subarray(14, 4000))).toBe(true);
  });

  const canLoop = process.getuid?.() === 0 && spawnSync('losetup', ['--version']).status === 0;
  it.skipIf(skipUnlessCi(canLoop))('sizes and writes a real block device (loop device, root only)', () => {
    const file = join(work, 'loop.img');
    writeFileSync(file, Buffer.alloc(3 * 1024 * 1024));
    const dev = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
    try {
      const r = runScript(
        `var h = n.blockOpen(n.args[0], true);
         n.print(n.blockSize(h));
         n.blockWrite(h, 512 * 3 + 1, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
         n.blockFlush(h);
         n.print(hex(n.blockRead(h, 512 * 3, 6)));
         n.blockClose(h);`,
        [dev],
      );
      expect(r.stderr).toBe('');
      expect(r.lines).toEqual([String(3 * 1024 * 1024), '00deadbeef00']);
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
    expect(readFileSync(file).subarray(1537, 1541).toString('hex')).toBe('deadbeef');
  });

  it('reads whole files, including /proc files that report size 0', () => {
    const file = join(work, 'bytes.bin');
    const bytes = Buffer.from(Array.from({ length: 256 * 300 }, (_, i) => i & 255));
    writeFileSync(file, bytes);
    writeFileSync(join(work, 'empty.bin'), '');
    const r = runScript(
      `var d = n.readFile(n.args[0]); n.print(d.length, d instanceof Uint8Array, hex(n.sha256(d)));
       n.print(n.readFile('/proc/self/status').length > 0);
       n.print(n.readFile(n.args[1]).length);
       try { n.readFile(n.args[0] + '.missing'); n.print('no error'); } catch (e) { n.print(e.name, e.message); }`,
      [file, join(work, 'empty.bin')],
    );
    expect(r.stderr).toBe('');
    expect(r.lines.slice(0, 3)).toEqual([`${bytes.length} true ${sha256Hex(bytes)}`, 'true', '0']);
    expect(r.lines[3]).toMatch(/^Error readFile .*bytes\.bin\.missing: No such file or directory$/);
  });

  it('returns random bytes of the requested length', () => {
    const r = runScript(
      `n.print(n.random(0).length, n.random(1).length, n.random(32).length, n.random(100000).length);
       n.print(hex(n.random(32))); n.print(hex(n.random(32)));
       try { n.random(-1); } catch (e) { n.print(e.name); }
       try { n.random(1.5); } catch (e) { n.print(e.name); }`,
    );
    expect(r.stderr).toBe('');
    expect(r.lines[0]).toBe('0 1 32 100000');
    expect(r.lines[1]).toMatch(/^[0-9a-f]{64}$/);
    expect(r.lines[1]).not.toBe(r.lines[2]);
    expect(r.lines.slice(3)).toEqual(['RangeError', 'RangeError']);
  });

  it('reads clocks: monotonicMs increases, nowSeconds is whole seconds of the real clock', () => {
    const r = runScript(
      `var a = n.monotonicMs(), b = a;
       for (var i = 0; i < 100000000 && b <= a; i++) b = n.monotonicMs();
       n.print(typeof a, b > a);
       n.print(n.nowSeconds());`,
    );
    expect(r.lines[0]).toBe('number true');
    const now = Number(r.lines[1]);
    expect(Number.isInteger(now)).toBe(true);
    // The host clock is set here; this is a sanity bound, not a timing one.
    expect(Math.abs(now - Date.now() / 1000)).toBeLessThan(86_400);
  });

  it('evalScript runs code in the global environment and surfaces errors as exceptions', () => {
    const r = runScript(
      `var result = n.evalScript('var fromInner = 20; fromInner * 2 + 2', 'inner.js');
       n.print(result, typeof fromInner, fromInner);
       n.evalScript('signet_native.print("inner sees host")', 'inner2.js');
       try { n.evalScript('var = ;', 'bad.js'); n.print('no error'); } catch (e) { n.print(e.name, e instanceof SyntaxError, e.message.length > 0); }
       try { n.evalScript('function f() { throw new RangeError("deep") }\\nf()', 'thrower.js'); } catch (e) { n.print(e.name, e.message, /thrower\\.js/.test(e.stack)); }`,
    );
    expect(r.stderr).toBe('');
    expect(r.lines).toEqual(['42 number 20', 'inner sees host', 'SyntaxError true true', 'RangeError deep true']);
  });

  it('supports ES5 lowered code using typed arrays and DataView', () => {
    const r = runScript(
      `var buf = new ArrayBuffer(8); var dv = new DataView(buf);
       dv.setUint32(0, 0xdeadbeef, false); dv.setUint32(4, 0x01020304, true);
       n.print(hex(new Uint8Array(buf)), new Uint32Array(buf)[1].toString(16));`,
    );
    expect(r.lines).toEqual(['deadbeef04030201 1020304']);
  });

  it('exits 70 with host[ERROR] on an uncaught error', () => {
    const r = runScript(`n.print('before'); throw new TypeError('boom'); n.print('after');`);
    expect(r.status).toBe(70);
    expect(r.stdout).toBe('before\n');
    expect(r.stderr.split('\n')[0]).toBe('host[ERROR] TypeError: boom');

    const syntax = runScript(`this is not javascript`);
    expect(syntax.status).toBe(70);
    expect(syntax.stderr).toMatch(/^host\[ERROR\] SyntaxError/);

    const missing = spawnSync(host, [join(work, 'no-such-script.js')], { encoding: 'utf8' });
    expect(missing.status).toBe(70);
    expect(missing.stderr).toMatch(/^host\[ERROR\] .*no-such-script\.js/);

    const usage = spawnSync(host, [], { encoding: 'utf8' });
    expect(usage.status).toBe(64);
    expect(usage.stderr).toMatch(/usage: signet-host/);
  });

  it('--compile writes Duktape bytecode that runs like the source, the same bytes every time', () => {
    const source = join(work, 'compile-src.js');
    writeFileSync(source, PRELUDE + `var g = 40; function add(a) { return a + g; }
      n.print(add(2), typeof n.ed25519Verify, JSON.stringify(n.args));
      try { null.x; } catch (e) { n.print(e.name, /compiled-name/.test(e.stack)); }`);
    const out = [join(work, 'c1.dukbc'), join(work, 'c2.dukbc')];
    for (const o of out) {
      const c = spawnSync(host, ['--compile', source, o, 'compiled-name'], { encoding: 'utf8' });
      expect([c.status, c.stdout, c.stderr]).toEqual([0, '', '']);
    }
    const bytes = readFileSync(out[0]!);
    expect(bytes[0]).toBe(0xbf); // Duktape's bytecode marker: how the host tells it from source
    expect(bytes.equals(readFileSync(out[1]!))).toBe(true);
    const fromSource = spawnSync(host, [source, 'a b'], { encoding: 'utf8' });
    const fromBytecode = spawnSync(host, [out[0]!, 'a b'], { encoding: 'utf8' });
    expect(fromBytecode.stderr).toBe('');
    // Same behaviour; stack traces name the program as --compile was told to.
    expect(fromSource.stdout).toBe('42 function ["a b"]\nTypeError false\n');
    expect(fromBytecode.stdout).toBe('42 function ["a b"]\nTypeError true\n');

    // A syntax error: exit 70, host[ERROR] on stderr, no output file left behind.
    writeFileSync(join(work, 'bad.js'), 'this is not javascript');
    const bad = spawnSync(host, ['--compile', join(work, 'bad.js'), join(work, 'bad.dukbc')], { encoding: 'utf8' });
    expect(bad.status).toBe(70);
    expect(bad.stderr).toMatch(/^host\[ERROR\] SyntaxError/);
    expect(existsSync(join(work, 'bad.dukbc'))).toBe(false);
    expect(spawnSync(host, ['--compile', source], { encoding: 'utf8' }).status).toBe(64);
  });

  it('exit, powerOff and reboot end the process outside PID 1', () => {
    const exit = runScript(`n.print('x'); n.exit(5); n.print('not reached');`);
    expect(exit.status).toBe(5);
    expect(exit.stdout).toBe('x\n');
    const off = runScript(`n.powerOff(); n.print('not reached');`);
    expect([off.status, off.stdout]).toEqual([0, '']);
    const reboot = runScript(`n.reboot(); n.print('not reached');`);
    expect([reboot.status, reboot.stdout]).toEqual([3, '']);
  });
});

describe('signet-host event loop (libuv, signet_native.uv)', () => {
  it('runs timers in order of due time, then start order, and exits when no handle is left', () => {
    const r = runScript(
      `var uv = n.uv, k = 0;
       uv.timerStart(function (e) { n.print('b ' + e); }, 20, 0);
       uv.timerStart(function (e) { n.print('a ' + e); }, 10, 0);
       uv.timerStart(function (e) { if (e === 'timeout') n.print('c'); }, 20, 0);
       var iv = uv.timerStart(function (e) { if (e === 'timeout' && ++k === 3) { n.print('interval x3'); uv.close(iv); } }, 1, 1);
       var off = uv.timerStart(function (e) { n.print('off ' + e); }, 5, 0);
       uv.close(off);
       n.print('script returned');`,
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // Only what the loop guarantees whatever the machine's load (a loop that starts late runs
    // every due timer in one pass, before the closing phase): one-shot timers by due time, then
    // start order; each close after its timeout; a closed timer never fires; the interval fires
    // three times; the script's own line first.
    expect([...r.lines].sort()).toEqual(['a close', 'a timeout', 'b close', 'b timeout', 'c', 'interval x3', 'off close', 'script returned']);
    const at = (l: string) => r.lines.indexOf(l);
    expect(at('script returned')).toBe(0);
    expect(at('a timeout')).toBeLessThan(at('b timeout'));
    expect(at('b timeout')).toBeLessThan(at('c'));
    expect(at('a timeout')).toBeLessThan(at('a close'));
    expect(at('b timeout')).toBeLessThan(at('b close'));
  });

  it('serves TCP (listen, accept, read, write, half-close, close) and UDP to itself on loopback', () => {
    const r = runScript(
      `var uv = n.uv, enc = new TextEncoder(), dec = new TextDecoder();
       var srv = uv.tcpListen(function (ev, id) {
         if (ev !== 'connection') return;
         uv.setHandler(id, function (ev, d) {
           if (ev === 'data') uv.write(id, d);
           else if (ev === 'end') uv.shutdown(id);
           else if (ev === 'shutdown') uv.close(id);
         });
         uv.readStart(id);
       }, '127.0.0.1', 0, 16);
       var addr = uv.address(srv);
       var got = '';
       var c = uv.tcpConnect(function (ev, a) {
         if (ev === 'connect') { n.print('connect ' + a + ' ' + uv.remoteAddress(c).port === addr.port); uv.readStart(c); uv.write(c, enc.encode('ping ')); uv.write(c, enc.encode('pong')); uv.shutdown(c); }
         else if (ev === 'data') got += dec.decode(a);
         else if (ev === 'end') { n.print('echo ' + got); uv.close(c); uv.close(srv); }
       }, '127.0.0.1', addr.port);
       var u = uv.udpBind(function (ev, b, from, port) {
         if (ev === 'message') { n.print('udp ' + dec.decode(b) + ' from ' + from + (port === uv.address(u).port ? ' (itself)' : '')); uv.close(u); }
       }, '127.0.0.1', 0);
       uv.udpSend(u, enc.encode('datagram'), '127.0.0.1', uv.address(u).port);
       try { uv.tcpListen(function () {}, '127.0.0.1', addr.port, 1); } catch (e) { n.print('second listen: ' + e.code); }
       try { uv.tcpConnect(function () {}, 'localhost', 1); } catch (e) { n.print(e.name); }`,
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.lines.slice(0, 2)).toEqual(['second listen: EADDRINUSE', 'TypeError']);
    expect([...r.lines.slice(2)].sort()).toEqual(['echo ping pong', 'false', 'udp datagram from 127.0.0.1 (itself)'].sort());
  });

  it('a peer refusing the connection is a connect event with the libuv code; a stale id is a TypeError', () => {
    const r = runScript(
      `var uv = n.uv;
       var s = uv.tcpListen(function () {}, '127.0.0.1', 0, 1), port = uv.address(s).port;
       uv.close(s);
       var c = uv.tcpConnect(function (ev, code) { n.print(ev + ' ' + code); if (ev === 'connect') { uv.close(c); } }, '127.0.0.1', port);
       try { uv.readStart(s); } catch (e) { n.print(e.name); }`,
    );
    expect(r.stderr).toBe('');
    expect(r.lines).toEqual(['TypeError', 'connect ECONNREFUSED', 'close undefined']);
  });

  it('reports an exception thrown in a handler with its file and line, keeps the loop running, exits 70', () => {
    const r = runScript(
      `var uv = n.uv;
       uv.timerStart(function (e) {
         if (e === 'timeout') throw new Error('handler failed');
       }, 1, 0);
       uv.timerStart(function (e) { if (e === 'timeout') n.print('later timer still fired'); }, 20, 0);`,
    );
    expect(r.status).toBe(70);
    expect(r.lines).toEqual(['later timer still fired']);
    // Line 5 of the file: the PRELUDE takes two lines.
    expect(r.stderr).toMatch(/^host\[ERROR\] uncaught in a 'timeout' handler at .*script-\d+\.js:5: Error: handler failed\n\s+at /);
  });
});

// ELF header fields, read by hand so the check does not trust the build.
function elfInfo(path: string) {
  const b = readFileSync(path);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  const is64 = b[4] === 2;
  expect(b[5]).toBe(1); // little-endian
  const machine = b.readUInt16LE(18);
  const flags = b.readUInt32LE(is64 ? 48 : 36);
  const phoff = is64 ? Number(b.readBigUInt64LE(32)) : b.readUInt32LE(28);
  const phentsize = b.readUInt16LE(is64 ? 54 : 42);
  const phnum = b.readUInt16LE(is64 ? 56 : 44);
  const segmentTypes: number[] = [];
  for (let i = 0; i < phnum; i++) segmentTypes.push(b.readUInt32LE(phoff + i * phentsize));
  return { elfClass: b[4], machine, flags, segmentTypes };
}

const PT_DYNAMIC = 2;
const PT_INTERP = 3;

const hasQemu = (cmd: string) => spawnSync(cmd, ['--version']).status === 0;

describe.each([
  { target: 'arm64' as NativeTarget, machine: 183, elfClass: 2, qemu: 'qemu-aarch64-static', arch: 'aarch64' },
  { target: 'armhf' as NativeTarget, machine: 40, elfClass: 1, qemu: 'qemu-arm-static', arch: 'armhf' },
])('signet-host cross build $target', ({ target, machine, elfClass, qemu, arch }) => {
  let binary: string;
  beforeAll(async () => {
    binary = await buildNativeHost(target);
  }, BUILD_TIMEOUT);

  it('is a static ELF for the board and is cached', async () => {
    const elf = elfInfo(binary);
    expect(elf.machine).toBe(machine);
    expect(elf.elfClass).toBe(elfClass);
    expect(elf.segmentTypes).not.toContain(PT_INTERP);
    expect(elf.segmentTypes).not.toContain(PT_DYNAMIC);
    // eslint-disable-next-line no-bitwise
    if (target === 'armhf') expect(elf.flags & 0x400).toBe(0x400); // EF_ARM_ABI_FLOAT_HARD
    const mtime = statSync(binary).mtimeMs;
    expect(await buildNativeHost(target)).toBe(binary);
    expect(statSync(binary).mtimeMs).toBe(mtime);
  });

  it.skipIf(skipUnlessCi(hasQemu(qemu)))(`runs under ${qemu} and hashes like Node`, () => {
    const data = randomBytes(300_000);
    const file = join(work, `qemu-${target}.bin`);
    writeFileSync(file, data);
    const r = runScript(
      `n.print(n.arch); n.print(hex(n.sha256(n.readFile(n.args[0]))));
       n.print(hex(n.sha256(new Uint8Array(0)))); n.print(hex(n.sha256(n.readFile(n.args[0]).subarray(0, 55))));
       var h = n.blockOpen(n.args[0], false); n.print(n.blockSize(h), hex(n.blockRead(h, 299990, 10))); n.blockClose(h);`,
      [file],
      binary,
      [qemu],
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // Bytecode compiled by the build machine's host runs on the board's build (byte-order
    // neutral dump, same duktape.c): what the initramfs's /signet/boot.dukbc relies on.
    const src = join(work, `bc-${target}.js`);
    writeFileSync(src, PRELUDE + `var k = new Uint8Array([1, 2, 3]); n.print(n.arch, hex(n.sha256(k)), 0.1 + 0.2, [3, 1, 2].sort().join(''), 'é'.length);`);
    const bc = join(work, `bc-${target}.dukbc`);
    expect(spawnSync(host, ['--compile', src, bc]).status).toBe(0);
    const viaBc = spawnSync(qemu, [binary, bc], { encoding: 'utf8' });
    const viaSrc = spawnSync(qemu, [binary, src], { encoding: 'utf8' });
    expect(viaBc.stderr).toBe('');
    expect(viaBc.stdout).toBe(viaSrc.stdout);
    expect(viaBc.stdout).toBe(`${arch} ${sha256Hex(Buffer.from([1, 2, 3]))} 0.30000000000000004 123 1\n`);
    expect(r.lines).toEqual([
      arch,
      sha256Hex(data),
      sha256Hex(Buffer.alloc(0)),
      sha256Hex(data.subarray(0, 55)),
      `300000 ${data.subarray(299990).toString('hex')}`,
    ]);
  });

  it.skipIf(skipUnlessCi(hasQemu(qemu)))(`keeps Duktape's freed blocks for reuse: little mmap/munmap under ${qemu} -strace, same answers`, () => {
    // Rounds of objects, arrays and strings built and dropped (with growing strings and arrays:
    // realloc across the small classes and into malloc's range). musl's allocator alone maps and
    // unmaps a group for nearly every round (hundreds of calls, each a page-table change on the
    // device); host.c's heap keeps freed small blocks and takes 256 KiB slabs.
    const r = runScript(
      `var sum = 0;
       for (var round = 0; round < 40; round++) {
         var objs = [];
         for (var i = 0; i < 2000; i++) objs.push({ k: 'key' + i, v: [i, i * 2, 'v' + (i * round)] });
         var s = ''; for (var j = 0; j < 300; j++) s += objs[j].k;
         sum = (sum + JSON.stringify(objs).length + s.length) % 1000000007;
       }
       n.print(sum);`,
      [],
      binary,
      [qemu, '-strace'],
    );
    expect(r.status).toBe(0);
    let expected = 0;
    for (let round = 0; round < 40; round++) {
      const objs = Array.from({ length: 2000 }, (_, i) => ({ k: 'key' + i, v: [i, i * 2, 'v' + i * round] }));
      let str = '';
      for (let j = 0; j < 300; j++) str += objs[j]!.k;
      expected = (expected + JSON.stringify(objs).length + str.length) % 1000000007;
    }
    expect(r.lines.filter((l) => /^\d+$/.test(l))).toEqual([String(expected)]);
    const calls = (name: string) => (r.stderr.match(new RegExp(`^\\d+ ${name}\\(`, 'gm')) ?? []).length;
    expect(calls('mmap') + calls('mmap2'), r.stderr.slice(-2000)).toBeLessThan(60);
    expect(calls('munmap')).toBeLessThan(30);
  });

  it.skipIf(skipUnlessCi(hasQemu(qemu)))(`runs the event loop under ${qemu}: timers, TCP and UDP on loopback`, () => {
    const r = runScript(
      `var uv = n.uv, enc = new TextEncoder(), dec = new TextDecoder(), got = '';
       uv.timerStart(function (e) { if (e === 'timeout') n.print('timer 2'); }, 20, 0);
       uv.timerStart(function (e) { if (e === 'timeout') n.print('timer 1'); }, 10, 0);
       var srv = uv.tcpListen(function (ev, id) {
         if (ev !== 'connection') return;
         uv.setHandler(id, function (ev, d) { if (ev === 'data') uv.write(id, d); else if (ev === 'end') uv.close(id); });
         uv.readStart(id);
       }, '127.0.0.1', 0, 4);
       var c = uv.tcpConnect(function (ev, d) {
         if (ev === 'connect') { uv.readStart(c); uv.write(c, enc.encode('over tcp')); uv.shutdown(c); }
         else if (ev === 'data') got += dec.decode(d);
         else if (ev === 'end') { n.print('echo ' + got); uv.close(c); uv.close(srv); }
       }, '127.0.0.1', uv.address(srv).port);
       var u = uv.udpBind(function (ev, b) { if (ev === 'message') { n.print('udp ' + dec.decode(b)); uv.close(u); } }, '127.0.0.1', 0);
       uv.udpSend(u, enc.encode('datagram'), '127.0.0.1', uv.address(u).port);`,
      [],
      binary,
      [qemu],
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect([...r.lines].sort()).toEqual(['echo over tcp', 'timer 1', 'timer 2', 'udp datagram']);
    expect(r.lines.indexOf('timer 1')).toBeLessThan(r.lines.indexOf('timer 2'));
  });
});

describe('buildNativeHost', () => {
  it('rejects an unknown target with a typed error', async () => {
    const error = await buildNativeHost('mips' as NativeTarget).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NativeBuildError);
    expect((error as NativeBuildError).code).toBe('E_NATIVE_TARGET');
  });
});

// PID 1 mode, for real: the static host is /init of a chroot in fresh PID and
// mount namespaces. reboot(2) there ends the namespace with SIGINT (power off)
// or SIGHUP (restart), which unshare passes on as its own death by signal.
const canUnshare =
  process.getuid?.() === 0 && spawnSync('unshare', ['--pid', '--fork', '--mount', '--propagation', 'private', 'true']).status === 0;

/** Words after "--" on the kernel command line (double quotes group, as the kernel does). */
function kernelArgsAfterDashes(): string[] {
  const words = readFileSync('/proc/cmdline', 'utf8').match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
  const unquoted = words.map((w) => w.replace(/"/g, ''));
  const i = unquoted.indexOf('--');
  return i < 0 ? [] : unquoted.slice(i + 1);
}

describe.skipIf(skipUnlessCi(canUnshare))('signet-host as PID 1 (namespaces, root only)', () => {
  let root: string;
  beforeAll(() => {
    root = join(work, 'initramfs');
    mkdirSync(join(root, 'signet'), { recursive: true });
    copyFileSync(host, join(root, 'init'));
    chmodSync(join(root, 'init'), 0o755);
  });
  afterAll(() => {
    // The mounts died with their namespace; refuse to recurse into one that did not.
    for (const d of ['dev', 'proc', 'sys']) {
      const dir = join(root, d);
      expect(readdirSync(dir, { withFileTypes: true }).length, `${dir} is still mounted`).toBe(0);
    }
    rmSync(root, { recursive: true, force: true });
  });

  function boot(script: string) {
    writeFileSync(join(root, 'signet', 'boot.js'), PRELUDE + script);
    const r = spawnSync('unshare', ['--pid', '--fork', '--mount', '--propagation', 'private', `--root=${root}`, '/init'], {
      encoding: 'utf8',
    });
    return { signal: r.signal, status: r.status, lines: r.stdout.split('\n').filter((l) => l !== ''), stderr: r.stderr };
  }

  it('mounts /proc, /sys and /dev, passes kernel args after --, and powers off when the script returns', () => {
    const r = boot(
      `n.print(n.isPid1, JSON.stringify(n.args));
       n.print(String.fromCharCode.apply(null, n.readFile('/proc/self/stat').subarray(0, 2)));
       n.print(n.readFile('/sys/kernel/uevent_seqnum').length > 0);
       var h = n.blockOpen('/dev/null', true); n.blockWrite(h, 0, new Uint8Array(4)); n.blockClose(h);
       n.print('dev ok');`,
    );
    expect(r.lines).toEqual(['true ' + JSON.stringify(kernelArgsAfterDashes()), '1 ', 'true', 'dev ok', 'host[EXIT] code=0']);
    expect(r.signal).toBe('SIGINT');
  });

  it('prints host[ERROR] and powers off when the boot script throws', () => {
    const r = boot(`n.print('booting'); throw new Error('no bootable slot');`);
    expect(r.lines.slice(0, 2)).toEqual(['booting', 'host[ERROR] Error: no bootable slot']);
    expect(r.signal).toBe('SIGINT');
  });

  it('runs /signet/boot.dukbc (boot.js precompiled) instead of boot.js when it is there', () => {
    const src = join(work, 'pid1-bc.js');
    writeFileSync(src, PRELUDE + `n.print('from bytecode', n.isPid1); try { null.x; } catch (e) { n.print(/\\/signet\\/boot\\.js/.test(e.stack)); }`);
    expect(spawnSync(host, ['--compile', src, join(root, 'signet', 'boot.dukbc'), '/signet/boot.js']).status).toBe(0);
    try {
      const r = boot(`n.print('from source');`);
      expect(r.lines).toEqual(['from bytecode true', 'true', 'host[EXIT] code=0']);
    } finally {
      rmSync(join(root, 'signet', 'boot.dukbc'));
    }
    expect(boot(`n.print('from source');`).lines).toEqual(['from source', 'host[EXIT] code=0']);
  });

  it('stops with E_BOOT_STAGE_MISSING when the initramfs has neither boot.dukbc nor boot.js', () => {
    boot('');
    rmSync(join(root, 'signet', 'boot.js'));
    const r = spawnSync('unshare', ['--pid', '--fork', '--mount', '--propagation', 'private', `--root=${root}`, '/init'], { encoding: 'utf8' });
    expect(r.stdout.split('\n').filter((l) => l !== '')[0]).toMatch(/^host\[ERROR\] Error: E_BOOT_STAGE_MISSING: the initramfs has neither \/signet\/boot\.dukbc nor \/signet\/boot\.js — rebuild/);
    expect(r.signal).toBe('SIGINT');
  });

  it('exit(code) reports the code and powers off; reboot() restarts', () => {
    const exit = boot(`n.exit(7); n.print('not reached');`);
    expect(exit.lines).toEqual(['host[EXIT] code=7']);
    expect(exit.signal).toBe('SIGINT');
    const reboot = boot(`n.print('rebooting'); n.reboot(); n.print('not reached');`);
    expect(reboot.lines).toEqual(['rebooting']);
    expect(reboot.signal).toBe('SIGHUP');
  });
});
