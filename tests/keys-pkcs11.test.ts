/**
 * Keys in hardware: ed25519 keys generated inside a SoftHSM 2 token (Debian's softhsm2, the
 * token tests can run; pkcs11-tool from OpenSC creates the keys in it), used by the CLI through
 * `--key pkcs11:…` (the pkcs11js binding). A release signed in the token verifies exactly like
 * one signed from a key file; a root version is signed by a root key in the token; the private
 * keys never leave it. Bad URIs, a wrong PIN or a missing key: one coded line, nothing written.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { loadPkcs11Signer, parsePkcs11Uri } from '../sdk/keys/pkcs11';
import { verifyRootUpdate, verifyTrustedRoot } from '../sdk/ota/metadata';
import { expectOneLineError, ROOT, signet, type CliResult } from './helpers/cli';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
let work: string;
let env: Record<string, string>;
const at = (p: string) => join(work, p);
const uri = (object: string, extra = '') => `pkcs11:token=signet;object=${object}?module-path=${MODULE}${extra}`;

function run(args: string[], extraEnv: Record<string, string> = {}): CliResult {
  return signet(args, { cwd: work, env: { ...env, ...extraEnv } });
}
function ok(args: string[]): CliResult {
  const r = run(args);
  if (r.code !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}`);
  return r;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-pkcs11-'));
  mkdirSync(at('tokens'));
  writeFileSync(at('softhsm2.conf'), `directories.tokendir = ${at('tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  env = { SOFTHSM2_CONF: at('softhsm2.conf'), SIGNET_PKCS11_PIN: '1234' };
  const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { env: { ...process.env, ...env }, stdio: 'pipe' });
  sh('softhsm2-util', ['--init-token', '--free', '--label', 'signet', '--pin', '1234', '--so-pin', '5678']);
  for (const [label, id] of [['targets-hsm', '01'], ['root-hsm', '02']]) {
    sh('pkcs11-tool', ['--module', MODULE, '--token-label', 'signet', '--login', '--pin', '1234', '--keypairgen', '--key-type', 'EC:edwards25519', '--label', label, '--id', id]);
  }
  ok(['keys', 'init', '--dir', at('keys')]);
  // Root 2 adds the token's keys: one for targets, one for root (read from the token by URI).
  ok(['root', 'new', '--from', at('keys/root.json'), '--add-key', 'targets=' + uri('targets-hsm'), '--add-key', 'root=' + uri('root-hsm'), '--out', at('root.v2.json')]);
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('PKCS#11 keys (SoftHSM 2, ed25519 / CKM_EDDSA)', () => {
  it('a root version is signed by a root key held in the token, next to one from a file', () => {
    const s = ok(['root', 'sign', at('root.v2.json'), '--key', uri('root-hsm'), '--json']);
    expect(JSON.parse(s.stdout)).toMatchObject({ added: true, signatures: 1 });
    // Not enough yet: the old root's key has not signed.
    expectOneLineError(run(['root', 'verify', at('root.v2.json'), '--trusted', at('keys/root.json')]), 'E_ROOT_UNSIGNED');
    ok(['root', 'sign', at('root.v2.json'), '--key', at('keys/root-1.key')]);
    ok(['root', 'verify', at('root.v2.json'), '--trusted', at('keys/root.json')]);
    const v1 = verifyTrustedRoot(readFileSync(at('keys/root.json')), nodeCrypto, null);
    const v2 = verifyRootUpdate(v1, readFileSync(at('root.v2.json')), nodeCrypto);
    expect(v2.roles.targets.keyids).toHaveLength(2);
  });

  it('a release signed with the token\'s key verifies like one signed from a file', async () => {
    const build = (out: string, key: string) =>
      ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.0.0', '--security-counter', '1', '--key', key, '--out', at(out), '--no-typecheck']);
    build('file.simg', at('keys/targets-1.key'));
    build('hsm.simg', uri('targets-hsm'));
    const verify = (img: string) => run(['verify', at(img), '--root', at('root.v2.json'), '--board', 'qemu-virt-arm64', '--json']);
    const a = verify('file.simg');
    const b = verify('hsm.simg');
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const ja = JSON.parse(a.stdout);
    const jb = JSON.parse(b.stdout);
    process.env.SOFTHSM2_CONF = env.SOFTHSM2_CONF; // this process opens the token too
    const hsmKey = await loadPkcs11Signer(uri('targets-hsm', '&pin-value=1234'));
    // The same decision on the same release; only the key that signed differs.
    expect(ja.signatures).toEqual([{ keyid: expect.stringMatching(/^[0-9a-f]{64}$/), status: 'valid' }]);
    expect(jb.signatures).toEqual([{ keyid: hsmKey.keyid, status: 'valid' }]);
    expect(ja.signatures[0].keyid).not.toBe(hsmKey.keyid);
    const strip = (j: Record<string, unknown>) => ({ ...j, file: undefined, signatures: undefined });
    expect(strip(jb)).toEqual(strip(ja));
    expect(ja).toMatchObject({ ok: true, version: '1.0.0', securityCounter: 1 });
    // Root 1 does not know the token's key: refused, as a file key unknown to root would be.
    expectOneLineError(run(['verify', at('hsm.simg'), '--root', at('keys/root.json'), '--board', 'qemu-virt-arm64']), 'E_UNKNOWN_KEY');
    // `signet sign` adds the token's signature to the file-signed release.
    copyFileSync(at('file.simg'), at('both.simg'));
    ok(['sign', at('both.simg'), '--key', uri('targets-hsm')]);
    expect(verify('both.simg').code).toBe(0);
  });

  it('`keys new --out pkcs11:` makes the key inside the token; its signatures verify under a root that adds its .pub', () => {
    const made = uri('made-by-signet');
    const r = JSON.parse(ok(['keys', 'new', '--role', 'targets', '--out', made, '--pub', at('made.pub'), '--json']).stdout);
    expect(r).toMatchObject({ role: 'targets', publicPath: at('made.pub') });
    expect(JSON.parse(readFileSync(at('made.pub'), 'utf8'))).toMatchObject({ keytype: 'ed25519', scheme: 'ed25519' });
    // The private half is in the token only: pkcs11-tool lists it as sensitive, never extractable.
    const listing = execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', 'signet', '--login', '--pin', '1234', '--list-objects', '--type', 'privkey'],
      { env: { ...process.env, ...env } }).toString();
    const block = listing.split(/(?=Private Key Object)/).find((b) => b.includes('made-by-signet')) ?? '';
    expect(block).toMatch(/Access:.*sensitive/);
    expect(block).toMatch(/Access:.*never extractable/);
    // A second key under the same name, or without a PIN, is refused and the token is unchanged.
    expectOneLineError(run(['keys', 'new', '--role', 'targets', '--out', made]), 'E_KEYS_EXIST');
    expectOneLineError(run(['keys', 'new', '--role', 'targets', '--out', uri('other')], { SIGNET_PKCS11_PIN: '' }), 'E_KEY_PKCS11');
    ok(['root', 'new', '--from', at('keys/root.json'), '--add-key', 'targets=' + at('made.pub'), '--out', at('root.made.json')]);
    ok(['root', 'sign', at('root.made.json'), '--key', at('keys/root-1.key')]);
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.0.1', '--security-counter', '1', '--key', made, '--out', at('made.simg'), '--no-typecheck']);
    const v = run(['verify', at('made.simg'), '--root', at('root.made.json'), '--board', 'qemu-virt-arm64', '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).signatures).toEqual([{ keyid: r.keyid, status: 'valid' }]);
  });

  it('bad URIs, a wrong PIN, a missing key: one coded line, nothing written', () => {
    const before = readFileSync(at('root.v2.json'));
    const img = readFileSync(at('file.simg'));
    for (const [key, extraEnv] of [
      [uri('no-such-key'), {}],
      [uri('targets-hsm'), { SIGNET_PKCS11_PIN: '0000' }],
      ['pkcs11:token=signet;colour=blue?module-path=' + MODULE, {}],
      ['pkcs11:token=signet?module-path=' + MODULE, {}],
      [uri('targets-hsm').replace(MODULE, '/nonexistent/libnothing.so'), {}],
      ['pkcs11:token=nosuch;object=targets-hsm?module-path=' + MODULE, {}],
      ['pkcs11:token=signet;object=targets-hsm', {}],
    ] as [string, Record<string, string>][]) {
      expectOneLineError(run(['sign', at('file.simg'), '--key', key], extraEnv), 'E_KEY_PKCS11');
      expectOneLineError(run(['root', 'sign', at('root.v2.json'), '--key', key], extraEnv), 'E_KEY_PKCS11');
    }
    expect(readFileSync(at('root.v2.json')).equals(before)).toBe(true);
    expect(readFileSync(at('file.simg')).equals(img)).toBe(true);
    expect(existsSync(at('out.simg'))).toBe(false);
  });

  it('parses RFC 7512 URIs: %-escapes, id, pin-source', () => {
    writeFileSync(at('pin.txt'), '1234\n');
    const u = parsePkcs11Uri(`pkcs11:token=my%20token;id=%01%02;type=private?module-path=${MODULE}&pin-source=file:${at('pin.txt')}`);
    expect(u).toMatchObject({ token: 'my token', modulePath: MODULE, pin: '1234' });
    expect([...u.id!]).toEqual([1, 2]);
    expect(() => parsePkcs11Uri('pkcs11:object=x%zz')).toThrow(expect.objectContaining({ code: 'E_KEY_PKCS11' }));
  });
});
