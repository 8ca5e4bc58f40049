/** The CLI as a user runs it: keys, sign, inspect, verify, boards — and every bad input. */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, ROOT, signet } from './helpers/cli';

const VEC = join(ROOT, 'tests', 'vectors');
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-cli-'));
});

const noTemp = (dir: string) => expect(readdirSync(dir).filter((f) => f.startsWith('.signet-tmp-'))).toEqual([]);

describe('signet keys init', () => {
  it('creates a 2-of-3 set with 0600 private keys and a root that verifies', () => {
    const dir = join(work, 'keys23');
    const r = signet(['keys', 'init', '--dir', dir, '--threshold', '2', '--count', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.roles.targets.threshold).toBe(2);
    expect(out.roles.targets.keyids).toHaveLength(3);
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.key'))) {
      expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    }
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(['root.json', 'targets-3.key', 'snapshot.key', 'timestamp.key', 'vendor-ca.crt', 'vendor-ca.key', 'fit.key']));
    expect(readFileSync(join(dir, 'vendor-ca.crt'), 'utf8')).toContain('BEGIN CERTIFICATE');
  });
  it('refuses a non-empty folder and impossible thresholds, leaving nothing behind', () => {
    const dir = join(work, 'occupied');
    mkdirSync(dir);
    writeFileSync(join(dir, 'x'), 'x');
    expectOneLineError(signet(['keys', 'init', '--dir', dir]), 'E_KEYS_EXIST');
    expect(readdirSync(dir)).toEqual(['x']);
    expectOneLineError(signet(['keys', 'init', '--dir', join(work, 'k32'), '--threshold', '3', '--count', '2']), 'E_KEY_ARGS');
    expect(readdirSync(work)).not.toContain('k32');
    expectOneLineError(signet(['keys', 'init']), 'E_USAGE');
    expectOneLineError(signet(['keys', 'init', '--dir', 'x', '--bogus']), 'E_USAGE');
    noTemp(work);
  });
  it('encrypts keys with a passphrase from the environment, never from argv', () => {
    const dir = join(work, 'enc');
    const r = signet(['keys', 'init', '--dir', dir, '--encrypt'], { env: { SIGNET_PASSPHRASE: 'correct horse' } });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'targets-1.key'), 'utf8')).toContain('ENCRYPTED PRIVATE KEY');
    expect(readFileSync(join(dir, 'fit.key'), 'utf8')).toContain('ENCRYPTED PRIVATE KEY');
    // No terminal and no passphrase: a clear refusal, not a hang.
    expectOneLineError(signet(['keys', 'init', '--dir', join(work, 'enc2'), '--encrypt'], { stdio: ['ignore', 'pipe', 'pipe'] }), 'E_PASSPHRASE');
    expectOneLineError(signet(['keys', 'init', '--dir', join(work, 'enc3'), '--passphrase', 'x']), 'E_USAGE');
  });
});

describe('signet sign / inspect / verify on the golden vectors', () => {
  const cases: { file: string; root: string; board: string; minSecurityCounter: number; now: number | null; expect: string }[] =
    JSON.parse(readFileSync(join(VEC, 'expected.json'), 'utf8'));
  for (const c of cases.filter((x) => x.now !== null && x.file !== 'expired.simg')) {
    it(`verify ${c.file} → ${c.expect}`, () => {
      const r = signet(['verify', join(VEC, c.file), '--root', join(VEC, c.root), '--board', c.board, '--min-security-counter', String(c.minSecurityCounter)]);
      if (c.expect === 'OK') expect(r.code, r.stderr).toBe(0);
      else expectOneLineError(r, c.expect);
    });
  }
  it('verify: expired image (real clock) and --json output', () => {
    expectOneLineError(signet(['verify', join(VEC, 'expired.simg'), '--root', join(VEC, 'root.json'), '--board', 'qemu-virt-arm64']), 'E_EXPIRED');
    const r = signet(['verify', join(VEC, 'valid.simg'), '--root', join(VEC, 'root.json'), '--board', 'qemu-virt-arm64', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, version: '1.2.0', securityCounter: 3 });
  });
  it('verify: not an image, missing file, oversized file, bad root, unknown board', () => {
    const root = join(VEC, 'root.json');
    expectOneLineError(signet(['verify', join(ROOT, 'package.json'), '--root', root, '--board', 'qemu-virt-arm64']), 'E_MAGIC');
    expectOneLineError(signet(['verify', join(work, 'nope.simg'), '--root', root, '--board', 'qemu-virt-arm64']), 'E_FILE_NOT_FOUND');
    const huge = join(work, 'huge.simg');
    writeFileSync(huge, '');
    truncateSync(huge, 300 * 1024 * 1024); // sparse: costs nothing, judged from its header without reading the rest
    expectOneLineError(signet(['verify', huge, '--root', root, '--board', 'qemu-virt-arm64']), 'E_MAGIC');
    // Root problems are the format's E_ROOT; the message names the underlying reason.
    expectOneLineError(signet(['verify', join(VEC, 'valid.simg'), '--root', join(VEC, 'valid.simg'), '--board', 'qemu-virt-arm64']), 'E_ROOT');
    const forged = JSON.parse(readFileSync(root, 'utf8'));
    forged.signed.version = 2; // signatures no longer match
    writeFileSync(join(work, 'forged-root.json'), JSON.stringify(forged));
    expectOneLineError(signet(['verify', join(VEC, 'valid.simg'), '--root', join(work, 'forged-root.json'), '--board', 'qemu-virt-arm64']), 'E_ROOT');
    expectOneLineError(signet(['verify', join(VEC, 'valid.simg'), '--root', root]), 'E_USAGE');
  });
  it('inspect shows header, manifest, payload digests and signatures; --json parses', () => {
    const r = signet(['inspect', join(VEC, 'valid-assets.simg')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/vector-svc 1\.2\.0/);
    expect(r.stdout).toMatch(/assets\/config\.bin\s+asset\s+64 B\s+sha256 [0-9a-f]{64}/);
    const j = JSON.parse(signet(['inspect', join(VEC, 'valid.simg'), '--json']).stdout);
    expect(j.manifest.payloads[0].name).toBe('app.js');
    expect(j.signatures).toHaveLength(1);
    expectOneLineError(signet(['inspect', join(VEC, 'truncated.simg')]), 'E_TRUNCATED');
    expectOneLineError(signet(['inspect', join(VEC, 'bad-magic.simg')]), 'E_MAGIC');
    expectOneLineError(signet(['inspect']), 'E_USAGE');
  });
  it('sign adds a second signature to meet 2-of-3; bad keys change nothing', () => {
    const img = join(work, 'two.simg');
    copyFileSync(join(VEC, 'threshold-1of3.simg'), img);
    const root = join(VEC, 'root-2of3.json');
    const before = readFileSync(img);
    expectOneLineError(signet(['sign', img, '--key', join(ROOT, 'package.json')]), 'E_KEY_FILE');
    expectOneLineError(signet(['sign', img, '--key', join(VEC, 'keys', '2of3-targets-2.key'), '--bogus']), 'E_USAGE');
    expect(Buffer.compare(readFileSync(img), before)).toBe(0);
    expectOneLineError(signet(['verify', img, '--root', root, '--board', 'qemu-virt-arm64']), 'E_THRESHOLD');
    const r = signet(['sign', img, '--key', join(VEC, 'keys', '2of3-targets-1.key')]);
    expect(r.code, r.stderr).toBe(0);
    expect(signet(['verify', img, '--root', root, '--board', 'qemu-virt-arm64']).code).toBe(0);
    expectOneLineError(signet(['sign', img, '--key', join(VEC, 'keys', '2of3-targets-1.key')]), 'E_ALREADY_SIGNED');
    const corrupt = join(work, 'corrupt.simg');
    copyFileSync(join(VEC, 'truncated.simg'), corrupt);
    expectOneLineError(signet(['sign', corrupt, '--key', join(VEC, 'keys', 'targets-1.key')]), 'E_TRUNCATED');
    noTemp(work);
  });
  it('sign with an encrypted key: wrong passphrase refused, right one works', () => {
    const dir = join(work, 'enc-sign');
    expect(signet(['keys', 'init', '--dir', dir, '--encrypt'], { env: { SIGNET_PASSPHRASE: 'pw-one' } }).code).toBe(0);
    const img = join(work, 'enc.simg');
    copyFileSync(join(VEC, 'unsigned.simg'), img);
    expectOneLineError(signet(['sign', img, '--key', join(dir, 'targets-1.key')], { env: { SIGNET_PASSPHRASE: 'wrong' } }), 'E_PASSPHRASE');
    expectOneLineError(signet(['sign', img, '--key', join(dir, 'targets-1.key')], { stdio: ['ignore', 'pipe', 'pipe'] }), 'E_PASSPHRASE');
    expect(signet(['sign', img, '--key', join(dir, 'targets-1.key')], { env: { SIGNET_PASSPHRASE: 'pw-one' } }).code).toBe(0);
    const r = signet(['verify', img, '--root', join(dir, 'root.json'), '--board', 'qemu-virt-arm64', '--min-security-counter', '0']);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('signet boards and help', () => {
  it('lists the four boards and validates each', () => {
    const r = signet(['boards', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const ids = JSON.parse(r.stdout).map((b: { id: string }) => b.id);
    expect(ids).toEqual(expect.arrayContaining(['qemu-virt-arm64', 'xen-arm32', 'bpi-r4-router', 'tv-soc-armv7']));
  });
  it('unknown board lists the known ones', () => {
    const r = signet(['boards', 'show', 'nope']);
    expectOneLineError(r, 'E_BOARD_UNKNOWN');
    expect(r.stderr).toContain('qemu-virt-arm64');
  });
  it('every command has --help and exits 0 with it', () => {
    const top = signet(['--help']);
    expect(top.code).toBe(0);
    const cmds = top.stdout.split('\n').filter((l) => /^ {2}\S/.test(l)).map((l) => l.trim().split(/\s{2,}/)[0]);
    expect(cmds.length).toBeGreaterThanOrEqual(6);
    for (const c of cmds) {
      const r = signet([...c.split(' '), '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toContain('Options:');
    }
    expectOneLineError(signet(['frobnicate']), 'E_USAGE');
  });
});
