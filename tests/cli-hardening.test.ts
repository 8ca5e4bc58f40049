/**
 * The CLI against what an attacker or an unlucky user hands it (issue 10, findings 10–17):
 * outputs that are devices, FIFOs, sockets, links, folders or unwritable places; a closed
 * stdout; key and root files that are devices, FIFOs or huge; Ctrl-C in `keys init`; bad
 * `--host` names; a bad factory image. Always the real bundle, as a user runs it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync, closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync,
  rmSync, statSync, symlinkSync, truncateSync, watch, writeFileSync, writeSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, expectOneLineError, ROOT, signet, type CliResult } from './helpers/cli';

let work: string;
const at = (p: string) => join(work, p);
const ok = (args: string[]): CliResult => {
  const r = signet(args);
  if (r.code !== 0) throw new Error(`signet ${args.join(' ')} failed:\n${r.stderr}`);
  return r;
};
const noTemp = (dir: string) => expect(readdirSync(dir).filter((f) => f.startsWith('.signet-tmp-'))).toEqual([]);
/** A guard against a hang in the old code, not a timed assertion. */
const HANG_GUARD = { timeout: 30_000 };

const BUILD = (out: string) => ['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.2.0', '--security-counter', '1', '--keys', at('keys'), '--no-typecheck', '--out', out];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-hardening-'));
  chmodSync(work, 0o755); // the EACCES test runs the CLI as another user, who must read app.simg
  ok(['keys', 'init', '--dir', at('keys')]);
  ok(BUILD(at('app.simg')));
  ok(['keys', 'init', '--dir', at('other-keys')]); // a second targets key, to sign with
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A character device of our own (a /dev/null twin): the old code's rename would replace it, not the system's. */
function privateNull(name: string): string {
  const p = at(name);
  const r = spawnSync('mknod', [p, 'c', '1', '3']);
  if (r.status !== 0) throw new Error('mknod failed: ' + String(r.stderr));
  return p;
}

const isCharDev = (p: string) => lstatSync(p).isCharacterDevice();
const devNullIntact = () => {
  const st = lstatSync('/dev/null');
  expect(st.isCharacterDevice()).toBe(true);
  expect([Math.floor(st.rdev / 256), st.rdev % 256]).toEqual([1, 3]);
};

/** Every command that writes a file, as args for an output path. */
const WRITERS: { name: string; args: (out: string) => string[]; slow?: boolean }[] = [
  { name: 'build --out', args: (o) => BUILD(o) },
  { name: 'sign --out', args: (o) => ['sign', at('app.simg'), '--key', at('other-keys/targets-1.key'), '--out', o] },
  { name: 'tcb --html', args: (o) => ['tcb', at('app.simg'), '--html', o] },
  { name: 'fit --out', args: (o) => ['fit', '--board', 'qemu-virt-arm64', '--keys', at('keys'), '--out', o], slow: true },
  { name: 'fit --key-dtb', args: (o) => ['fit', '--board', 'qemu-virt-arm64', '--keys', at('keys'), '--out', at('f.itb'), '--key-dtb', o], slow: true },
  { name: 'disk --out', args: (o) => ['disk', at('app.simg'), '--board', 'qemu-virt-arm64', '--keys', at('keys'), '--out', o], slow: true },
];

describe('finding 10: outputs that are not regular files are never replaced', () => {
  for (const w of WRITERS) {
    it(`${w.name}: a character device is written into (a private /dev/null twin, then /dev/null itself)`, () => {
      const node = privateNull(`null-${w.name.replace(/\W+/g, '-')}`);
      const r = signet(w.args(node));
      expect(r.code, r.stderr).toBe(0);
      expect(isCharDev(node), 'the device node was replaced by a regular file').toBe(true);
      noTemp(work);
      const sys = signet(w.args('/dev/null'));
      expect(sys.code, sys.stderr).toBe(0);
      devNullIntact();
      noTemp('/dev');
    }, w.slow ? 240_000 : 120_000);
  }

  it('a FIFO with a reader gets the bytes, and stays a FIFO', async () => {
    const fifo = at('out.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const copy = at('from-fifo.simg');
    const reader = spawn('sh', ['-c', `cat "${fifo}" > "${copy}"`]);
    const done = new Promise<number | null>((res) => reader.on('exit', (c) => res(c)));
    const r = signet(['sign', at('app.simg'), '--key', at('other-keys/targets-1.key'), '--out', fifo]);
    expect(r.code, r.stderr).toBe(0);
    expect(await done).toBe(0);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    // What came through the FIFO is the signed image.
    const v = signet(['inspect', copy, '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).signatures).toHaveLength(2);
  });

  it('a unix socket is refused with E_OUT_SPECIAL and stays a socket', async () => {
    const sock = at('out.sock');
    const server: Server = createServer();
    await new Promise<void>((res) => server.listen(sock, res));
    try {
      for (const w of WRITERS.filter((x) => !x.slow)) {
        expectOneLineError(signet(w.args(sock)), 'E_OUT_SPECIAL');
        expect(lstatSync(sock).isSocket()).toBe(true);
      }
    } finally {
      await new Promise((res) => server.close(res));
    }
  });

  it('a symbolic link is followed: to /dev/null it writes into the device, to a file it replaces the file and keeps the link', () => {
    const toNull = at('link-to-null');
    symlinkSync('/dev/null', toNull);
    expect(signet(BUILD(toNull)).code).toBe(0);
    expect(readlinkSync(toNull)).toBe('/dev/null');
    devNullIntact();

    const target = at('real-target.simg');
    writeFileSync(target, 'old');
    const toFile = at('link-to-file');
    symlinkSync(target, toFile);
    expect(signet(BUILD(toFile)).code).toBe(0);
    expect(lstatSync(toFile).isSymbolicLink()).toBe(true);
    expect(signet(['inspect', target]).code).toBe(0); // the new image is where the link points

    const dangling = at('link-to-nothing');
    symlinkSync(at('no/such/file'), dangling);
    expectOneLineError(signet(BUILD(dangling)), 'E_OUT_LINK');
    expect(existsSync(at('no'))).toBe(false);
  });

  it('/dev/full: E_OUT_NO_SPACE, and the device stays (a private twin first, then /dev/full)', () => {
    const full = at('full');
    expect(spawnSync('mknod', [full, 'c', '1', '7']).status).toBe(0);
    expectOneLineError(signet(['tcb', at('app.simg'), '--html', full]), 'E_OUT_NO_SPACE');
    expect(isCharDev(full)).toBe(true);
    expectOneLineError(signet(['tcb', at('app.simg'), '--html', '/dev/full']), 'E_OUT_NO_SPACE');
    expect(lstatSync('/dev/full').isCharacterDevice()).toBe(true);
  });

  it('output folders (keys init --dir, server keys --out, device enroll --out) refuse a device node', () => {
    const node = privateNull('null-for-folders');
    expectOneLineError(signet(['keys', 'init', '--dir', node]), 'E_OUT_EXISTS');
    expectOneLineError(signet(['server', 'keys', '--keys', at('keys'), '--out', node]), 'E_OUT_EXISTS');
    expectOneLineError(signet(['device', 'enroll', '--admin', '--id', 'a', '--keys', at('keys'), '--out', node]), 'E_OUT_EXISTS');
    expect(isCharDev(node)).toBe(true);
  });
});

describe('finding 11: output errors have their own codes', () => {
  it('a folder as --out: E_OUT_IS_DIR', () => {
    mkdirSync(at('a-folder'));
    for (const w of WRITERS.filter((x) => !x.slow)) expectOneLineError(signet(w.args(at('a-folder'))), 'E_OUT_IS_DIR');
    expectOneLineError(signet(BUILD(at('not-there') + '/')), 'E_OUT_IS_DIR');
    expect(readdirSync(at('a-folder'))).toEqual([]);
  });

  it("--out '': E_OUT_EMPTY (or E_USAGE where the option is required)", () => {
    expectOneLineError(signet(['sign', at('app.simg'), '--key', at('other-keys/targets-1.key'), '--out', '']), 'E_OUT_EMPTY');
    expectOneLineError(signet(['tcb', at('app.simg'), '--html', '']), 'E_OUT_EMPTY');
    expectOneLineError(signet(BUILD('')), 'E_USAGE');
    noTemp(work);
  });

  it('a file where a folder is needed: E_OUT_NOT_DIR (ENOTDIR) and E_OUT_EXISTS (EEXIST)', () => {
    expectOneLineError(signet(BUILD(at('app.simg/x.simg'))), 'E_OUT_NOT_DIR');
    expectOneLineError(signet(['tcb', at('app.simg'), '--html', at('app.simg/sub/x.html')]), 'E_OUT_NOT_DIR');
    expectOneLineError(signet(['keys', 'init', '--dir', at('app.simg')]), 'E_OUT_EXISTS');
    expectOneLineError(signet(['keys', 'init', '--dir', at('app.simg/k')]), 'E_OUT_NOT_DIR');
    expectOneLineError(signet(['device', 'enroll', '--admin', '--id', 'a', '--keys', at('keys'), '--out', at('app.simg')]), 'E_OUT_EXISTS');
    expect(statSync(at('app.simg')).isFile()).toBe(true);
  });

  it('permission denied: E_OUT_DENIED (another user writing into a root folder; sysfs as root)', () => {
    const locked = at('locked');
    mkdirSync(locked, { mode: 0o755 });
    const asNobody = spawnSync(process.execPath, [CLI, 'tcb', at('app.simg'), '--html', join(locked, 'x.html')], {
      encoding: 'utf8', uid: 65534, gid: 65534, env: { ...process.env, HOME: '/nonexistent' },
    });
    expectOneLineError({ code: asNobody.status ?? -1, stdout: asNobody.stdout, stderr: asNobody.stderr }, 'E_OUT_DENIED');
    expect(readdirSync(locked)).toEqual([]);
    // As root: sysfs refuses to create files.
    expectOneLineError(signet(BUILD('/sys/kernel/signet-test.simg')), 'E_OUT_DENIED');
  });

  it('a read-only file system: E_OUT_READ_ONLY', (ctx) => {
    const ro = at('ro');
    mkdirSync(ro);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro', 'tmpfs', ro]).status !== 0) return ctx.skip();
    try {
      expectOneLineError(signet(['tcb', at('app.simg'), '--html', join(ro, 'x.html')]), 'E_OUT_READ_ONLY');
    } finally {
      spawnSync('umount', [ro]);
    }
  });

  it('a garbage, mismatched or unreadable admin identity: E_IDENTITY_KEY, E_IDENTITY_MISMATCH, E_IDENTITY_FILE', () => {
    ok(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('keys'), '--out', at('admin')]);
    ok(['device', 'enroll', '--admin', '--id', 'admin2', '--keys', at('keys'), '--out', at('admin2')]);
    const variant = (name: string, file: string, content: Buffer | string) => {
      const d = at(name);
      mkdirSync(d);
      for (const f of readdirSync(at('admin'))) copyFileSync(join(at('admin'), f), join(d, f));
      writeFileSync(join(d, file), content);
      return d;
    };
    const server = ['--server', 'https://127.0.0.1:9'];
    expectOneLineError(signet(['device', 'list', '--admin', variant('adm-garbage', 'client.key', 'garbage\n'), ...server]), 'E_IDENTITY_KEY');
    expectOneLineError(signet(['device', 'list', '--admin', variant('adm-mismatch', 'client.key', readFileSync(join(at('admin2'), 'client.key'))), ...server]), 'E_IDENTITY_MISMATCH');
    expectOneLineError(signet(['rollout', 'status', '--admin', variant('adm-badcrt', 'client.crt', 'not a certificate\n'), ...server]), 'E_IDENTITY_FILE');
  });
});

describe('finding 12: a closed stdout ends the command quietly', () => {
  /** Runs the CLI with its stdout pipe closed before it writes a byte (`| head -0`, in effect). */
  const closedPipe = (args: string[]) => new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone; the child is still starting
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });

  for (const args of [['inspect', 'APP'], ['boards'], ['inspect', 'APP', '--json'], ['tcb', 'APP']]) {
    it(`signet ${args.join(' ')} | (closed)`, async () => {
      const r = await closedPipe(args.map((a) => (a === 'APP' ? at('app.simg') : a)));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  }

  it('signet inspect app.simg | head -1 (a real shell pipeline)', () => {
    const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" inspect "${at('app.simg')}" | head -1`], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Signet app image/);
  });
});

describe('finding 13: small input files are read with a size and type check', () => {
  const sign = (key: string) => signet(['sign', at('app.simg'), '--key', key, '--out', at('never.simg')], HANG_GUARD);

  it('--key /dev/zero, a FIFO with no writer, a huge file, a folder: E_KEY_FILE at once', () => {
    expectOneLineError(sign('/dev/zero'), 'E_KEY_FILE');
    const fifo = at('key.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    expectOneLineError(sign(fifo), 'E_KEY_FILE');
    const huge = at('huge.key');
    closeSync(openSync(huge, 'w'));
    truncateSync(huge, 8 * 1024 * 1024 * 1024); // sparse: 8 GiB that takes no disk
    expectOneLineError(sign(huge), 'E_KEY_FILE');
    expectOneLineError(sign(at('keys')), 'E_KEY_FILE');
    expect(existsSync(at('never.simg'))).toBe(false);
  });

  it('--root, --key-dtb, identity and FIT key files get the same checks', () => {
    // verify reports any root problem as E_ROOT, naming the file error (docs/image-format.md).
    const rootError = (r: CliResult) => {
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^error\[(E_ROOT|E_FILE_READ)\]: .*not a regular file.* — /);
    };
    rootError(signet(['verify', at('app.simg'), '--root', '/dev/zero', '--board', 'qemu-virt-arm64'], HANG_GUARD));
    const fifo = at('root.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    rootError(signet(['verify', at('app.simg'), '--root', fifo, '--board', 'qemu-virt-arm64'], HANG_GUARD));
    expectOneLineError(signet(['run', at('app.simg'), '--board', 'qemu-virt-arm64', '--key-dtb', '/dev/zero'], HANG_GUARD), 'E_FILE_READ');
    // An identity whose key is /dev/zero.
    const id = at('adm-zero');
    ok(['device', 'enroll', '--admin', '--id', 'z', '--keys', at('keys'), '--out', id]);
    rmSync(join(id, 'client.key'));
    symlinkSync('/dev/zero', join(id, 'client.key'));
    expectOneLineError(signet(['device', 'list', '--admin', id, '--server', 'https://127.0.0.1:9'], HANG_GUARD), 'E_IDENTITY_FILE');
    // A keys folder whose fit.key is a FIFO.
    const keys = at('keys-fifo');
    mkdirSync(keys);
    for (const f of readdirSync(at('keys'))) if (f !== 'fit.key') copyFileSync(join(at('keys'), f), join(keys, f));
    expect(spawnSync('mkfifo', [join(keys, 'fit.key')]).status).toBe(0);
    expectOneLineError(signet(['fit', '--board', 'qemu-virt-arm64', '--keys', keys, '--out', at('never.itb')], HANG_GUARD), 'E_FIT_KEY');
    expect(existsSync(at('never.itb'))).toBe(false);
  });
});

describe('finding 14: a signal during keys init leaves no temp folder with private keys', () => {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${sig} while the key set is being written`, async () => {
      const parent = mkdtempSync(join(work, 'sig-'));
      // The moment the temp folder appears, the keys are being written into it: signal then.
      const watcher = watch(parent);
      const child = spawn(process.execPath, [CLI, 'keys', 'init', '--dir', join(parent, 'keys'), '--count', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      let sent = false;
      watcher.on('change', (_ev, name) => {
        if (!sent && String(name).startsWith('.signet-tmp-')) {
          sent = true;
          child.kill(sig);
        }
      });
      const [code, signal] = await new Promise<[number | null, string | null]>((res) => child.on('close', (c, s) => res([c, s])));
      watcher.close();
      expect(sent, 'the temp folder never appeared').toBe(true);
      expect(readdirSync(parent)).toEqual([]); // no .signet-tmp-keys-*, no half key set
      expect(signal ?? code).toBe(sig);
      expect(stderr).toMatch(new RegExp(`^error\\[E_INTERRUPTED\\]: stopped by ${sig}; .* — `));
    });
  }

  it('an existing empty --dir is kept when interrupted', async () => {
    const parent = mkdtempSync(join(work, 'sig-empty-'));
    mkdirSync(join(parent, 'keys'));
    const watcher = watch(parent);
    const child = spawn(process.execPath, [CLI, 'keys', 'init', '--dir', join(parent, 'keys'), '--count', '4'], { stdio: 'ignore' });
    let sent = false;
    watcher.on('change', (_ev, name) => {
      if (!sent && String(name).startsWith('.signet-tmp-')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    await new Promise((res) => child.on('close', res));
    watcher.close();
    expect(sent).toBe(true);
    expect(readdirSync(parent)).toEqual(['keys']);
    expect(readdirSync(join(parent, 'keys'))).toEqual([]);
  });
});

describe('finding 15: server certificate host names', () => {
  const bad = ['999.1.1.1', '1.2.3', '01.2.3.4', 'a..b', '.a', 'a.', 'has space', 'under_score', '-a.b', 'a-.b', 'x'.repeat(64) + '.com', '', ':::', '1::2::3', '[::1]', 'fe80::1%eth0', 'a.b.123'];
  for (const h of bad) {
    it(`server keys --host ${JSON.stringify(h)} is refused (E_HOST_NAME), nothing written`, () => {
      const out = at(`srv-bad-${bad.indexOf(h)}`);
      expectOneLineError(signet(['server', 'keys', '--keys', at('keys'), '--out', out, '--host', 'ok.example', `--host=${h}`]), 'E_HOST_NAME');
      expect(existsSync(out)).toBe(false);
    });
  }

  it('server --host is checked before anything starts', () => {
    const data = at('srv-data-bad');
    expectOneLineError(signet(['server', '--data', data, '--keys', at('keys'), '--port', '0', '--host', '999.1.1.1'], HANG_GUARD), 'E_HOST_NAME');
    expect(existsSync(data)).toBe(false);
  });

  it('DNS names, IPv4 and IPv6 literals become dNSName and iPAddress entries', () => {
    const out = at('srv-good');
    ok(['server', 'keys', '--keys', at('keys'), '--out', out,
      '--host', 'Updates.Example.com', '--host', 'localhost', '--host', '192.0.2.10', '--host', '2001:db8::1', '--host', '::ffff:192.0.2.1', '--host', '*.fleet.example']);
    const pem = readFileSync(join(out, 'server.crt'), 'utf8');
    const san = new X509Certificate(pem).subjectAltName!.split(', ');
    expect(san).toEqual([
      'DNS:updates.example.com', 'DNS:localhost', 'DNS:*.fleet.example',
      'IP Address:192.0.2.10', 'IP Address:2001:DB8:0:0:0:0:0:1', 'IP Address:0:0:0:0:0:FFFF:C000:201',
    ]);
    // OpenSSL reads the same names, each with its type.
    const text = spawnSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: pem, encoding: 'utf8' });
    expect(text.status).toBe(0);
    expect(text.stdout).toContain('DNS:updates.example.com, DNS:localhost, DNS:*.fleet.example, IP Address:192.0.2.10, IP Address:2001:DB8:0:0:0:0:0:1');
    // The default names are the loopback ones.
    const def = at('srv-default');
    ok(['server', 'keys', '--keys', at('keys'), '--out', def]);
    expect(new X509Certificate(readFileSync(join(def, 'server.crt'))).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  });
});

describe('finding 16: device simulate --factory verifies the image before writing anything', () => {
  it('a tampered factory image: the verifier\'s code, no flash file, no tuf/ folder, and the same answer next time', () => {
    const dev = at('devices/tv-bad');
    ok(['device', 'enroll', '--id', 'tv-bad', '--board', 'qemu-virt-arm64', '--keys', at('keys'), '--out', dev]);
    const before = readdirSync(dev).sort();
    const bad = at('tampered.simg');
    const bytes = readFileSync(at('app.simg'));
    bytes[bytes.length - 200] ^= 0xff;
    writeFileSync(bad, bytes);
    const verdict = signet(['verify', bad, '--root', at('keys/root.json'), '--board', 'qemu-virt-arm64']);
    const code = /^error\[(E_[A-Z0-9_]+)\]/.exec(verdict.stderr)![1]!;
    const run = () => signet(['device', 'simulate', '--dir', dev, '--board', 'qemu-virt-arm64', '--root', at('keys/root.json'),
      '--server', 'https://127.0.0.1:9', '--factory', bad], HANG_GUARD);
    expectOneLineError(run(), code);
    expect(readdirSync(dev).sort()).toEqual(before);
    expectOneLineError(run(), code); // not E_CLIENT_STATE
    expect(readdirSync(dev).sort()).toEqual(before);
    // An image for another board is refused the same way.
    const other = at('devices/router-bad');
    ok(['device', 'enroll', '--id', 'router-bad', '--board', 'xen-arm32', '--keys', at('keys'), '--out', other]);
    const r = signet(['device', 'simulate', '--dir', other, '--board', 'xen-arm32', '--root', at('keys/root.json'), '--server', 'https://127.0.0.1:9', '--factory', at('app.simg')], HANG_GUARD);
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/E_CLIENT_STATE|E_INTERNAL/);
    expect(existsSync(join(other, 'flash.img'))).toBe(false);
  });
});

describe('finding 17: output folders that cannot be created are refused at once', () => {
  it('under /proc, and too deep', () => {
    expectOneLineError(signet(['tcb', at('app.simg'), '--html', '/proc/nope/x.html'], HANG_GUARD), 'E_OUT_FOLDER');
    expectOneLineError(signet(BUILD('/proc/nope/a/b/app.simg'), HANG_GUARD), 'E_OUT_FOLDER');
    expectOneLineError(signet(['keys', 'init', '--dir', '/proc/nope/keys'], HANG_GUARD), 'E_OUT_FOLDER');
    expectOneLineError(signet(['server', 'keys', '--keys', at('keys'), '--out', '/proc/nope/srv'], HANG_GUARD), 'E_OUT_FOLDER');
    expectOneLineError(signet(['device', 'enroll', '--admin', '--id', 'a', '--keys', at('keys'), '--out', '/proc/nope/adm'], HANG_GUARD), 'E_OUT_FOLDER');
    ok(['server', 'keys', '--keys', at('keys'), '--out', at('srv-17')]);
    expectOneLineError(signet(['server', '--data', '/proc/nope/data', '--keys', at('srv-17'), '--port', '0'], HANG_GUARD), 'E_SERVER_CONFIG');
    const deep = at(Array.from({ length: 40 }, (_, i) => `d${i}`).join('/') + '/x.html');
    expectOneLineError(signet(['tcb', at('app.simg'), '--html', deep], HANG_GUARD), 'E_OUT_FOLDER');
    expect(existsSync(at('d0'))).toBe(false);
    // A few missing folders are still made, as before.
    ok(['tcb', at('app.simg'), '--html', at('reports/2026/tcb.html')]);
    expect(statSync(at('reports/2026/tcb.html')).isFile()).toBe(true);
  });
});

describe('finding 17b: the demo picks a free port and stops at the first failing step', () => {
  const demo = (env: Record<string, string>) => spawnSync('bash', [join(ROOT, 'examples/demo.sh')], {
    encoding: 'utf8', timeout: 600_000, env: { ...process.env, SIGNET_PASSPHRASE: '', SIGNET_DEMO_SKIP_BOOT: '1', ...env },
  });
  let taken: Server;
  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((res, rej) => {
      taken.once('error', rej);
      taken.listen(18443, '127.0.0.1', res); // the port the demo used to insist on
    });
  });
  afterAll(() => new Promise((res) => taken.close(res)));

  it('with 18443 taken, the demo runs to the end on a port the server picked', () => {
    const r = demo({});
    expect(r.status, r.stdout.slice(-3000) + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Demo finished/);
    const url = /signet server listening on (https:\/\/[^ ]+)/.exec(r.stdout)![1]!;
    expect(url).not.toMatch(/:18443$/);
  }, 600_000);

  it('a fixed port that is taken stops the demo at the server step, with the server\'s error', () => {
    const r = demo({ SIGNET_DEMO_PORT: '18443' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/DEMO FAILED: the update server did not start on port 18443/);
    expect(r.stderr).toMatch(/E_SERVER_CONFIG|EADDRINUSE/);
    expect(r.stdout).not.toMatch(/== 11\./); // nothing after the failing step
  }, 600_000);
});

describe('clean-up: the run starters and their dispatcher do not import each other', () => {
  it('sdk/disk/run*.ts have no import circle (esbuild metafile)', async () => {
    const { build } = await import('esbuild');
    const r = await build({
      entryPoints: [join(ROOT, 'sdk/disk/run.ts')], absWorkingDir: ROOT, bundle: true, write: false, metafile: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'silent',
    });
    const graph = new Map<string, string[]>();
    for (const [file, info] of Object.entries(r.metafile.inputs)) graph.set(file, info.imports.map((i) => i.path));
    // Type-only imports are gone from esbuild's graph, so check the sources for them too.
    const typeImports = (f: string) => [...readFileSync(join(ROOT, f), 'utf8').matchAll(/^import type .* from '\.\/(run[\w-]*)';$/gm)].map((m) => `sdk/disk/${m[1]}.ts`);
    for (const f of ['sdk/disk/run.ts', 'sdk/disk/run-arm64.ts', 'sdk/disk/run-xen.ts']) graph.set(f, [...(graph.get(f) ?? []), ...typeImports(f)]);
    const cycle: string[] = [];
    const seen = new Set<string>();
    const visit = (f: string, path: string[]): boolean => {
      if (path.includes(f)) {
        cycle.push(...path.slice(path.indexOf(f)), f);
        return true;
      }
      if (seen.has(f)) return false;
      seen.add(f);
      return (graph.get(f) ?? []).some((g) => visit(g, [...path, f]));
    };
    for (const f of ['sdk/disk/run.ts', 'sdk/disk/run-arm64.ts', 'sdk/disk/run-xen.ts']) visit(f, []);
    expect(cycle).toEqual([]);
  });
});

// Unit-level checks of the pieces the CLI tests above rely on.
describe('outputErrorFor maps every errno it meets to its own code', () => {
  it('maps', async () => {
    const { outputErrorFor } = await import('../sdk/util/output-errors');
    const err = (code: string) => Object.assign(new Error(code), { code });
    const cases: [string, string][] = [
      ['EISDIR', 'E_OUT_IS_DIR'], ['ENOTDIR', 'E_OUT_NOT_DIR'], ['EEXIST', 'E_OUT_EXISTS'], ['ENOTEMPTY', 'E_OUT_EXISTS'],
      ['EACCES', 'E_OUT_DENIED'], ['EPERM', 'E_OUT_DENIED'], ['EROFS', 'E_OUT_READ_ONLY'], ['ENOSPC', 'E_OUT_NO_SPACE'],
      ['EDQUOT', 'E_OUT_NO_SPACE'], ['ENXIO', 'E_OUT_SPECIAL'], ['ELOOP', 'E_OUT_LINK'], ['ENOENT', 'E_OUT_FOLDER'],
      ['ENAMETOOLONG', 'E_OUT_PATH'], ['EIO', 'E_OUT_WRITE'],
    ];
    for (const [errno, code] of cases) {
      const e = outputErrorFor(err(errno), '/x/y');
      expect(e.code, errno).toBe(code);
      expect(e.line()).toMatch(new RegExp(`^error\\[${code}\\]: .*"/x/y".* — .+`));
    }
  });
});

describe('readInputFile', () => {
  it('takes a file at its cap and refuses one byte more', async () => {
    const { readInputFile } = await import('../sdk/util/files');
    const p = at('growing.bin');
    writeFileSync(p, Buffer.alloc(100));
    expect(readInputFile(p, 100).length).toBe(100);
    const fd = openSync(p, 'a');
    writeSync(fd, Buffer.alloc(1));
    closeSync(fd);
    expect(() => readInputFile(p, 100)).toThrow(/more than the 100-byte limit/);
  });
});
