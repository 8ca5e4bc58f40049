/**
 * RSA keys in hardware (SoftHSM 2 through pkcs11js, CKM_RSA_PKCS over a SHA-256 DigestInfo):
 * the U-Boot FIT signing key and the vendor CA key, both made inside the token by `signet keys
 * new` and never extractable. A FIT signed in the token verifies with our verifier and boots in
 * real U-Boot (one QEMU boot); a CA key in the token issues the server's TLS certificate and a
 * device certificate, and the device checks in to a real `signet server` over mutual TLS. Wrong
 * key type, a missing object, a wrong PIN: one coded line, nothing written.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFitSigner, type FitSigner } from '../sdk/disk/fit-key';
import { decodeFdt, encodeFdt, fdtNode } from '../sdk/fit/fdt';
import { buildFit, type BuildFitInput } from '../sdk/fit/fit';
import { verifyFit } from '../sdk/fit/fit-verify';
import { mergePublicKeyIntoDtb } from '../sdk/fit/keydtb';
import { CLI, expectOneLineError, ROOT, signet, type CliResult } from './helpers/cli';
import { initSoftHsm, type SoftHsm } from './helpers/softhsm';
import { skipUnlessCi } from './helpers/tools';
import { dummyArm64Kernel, dumpQemuVirtDtb, UBOOT_QEMU_ARM64, UbootConsole } from './helpers/uboot-console';

const BOARD = 'qemu-virt-arm64';
const KERNEL_BANNER = 'SIGNET-HSM-FIT-KERNEL-OK';
const ubootAvailable = existsSync(UBOOT_QEMU_ARM64) && spawnSync('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;

let work: string;
let hsm: SoftHsm;
let server: ChildProcess | null = null;
const at = (p: string) => join(work, p);

function run(args: string[], extraEnv: Record<string, string> = {}): CliResult {
  return signet(args, { cwd: work, env: { ...hsm.env, ...extraEnv } });
}
function ok(args: string[]): CliResult {
  const r = run(args);
  if (r.code !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}`);
  return r;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-pkcs11-rsa-'));
  hsm = initSoftHsm(at('hsm'));
  // This process opens the token too (the FIT is built here, as `signet fit` builds it).
  Object.assign(process.env, hsm.env);
  // An ed25519 key, made by OpenSC: the wrong type for a FIT or CA key.
  hsm.tool(['--keypairgen', '--key-type', 'EC:edwards25519', '--label', 'ed-hsm', '--id', '0e']);
  ok(['keys', 'init', '--dir', at('keys')]);
}, 120_000);

afterAll(async () => {
  const s = server;
  if (s && s.exitCode === null) {
    await new Promise<void>((resolve) => {
      s.on('exit', () => resolve());
      s.kill('SIGTERM');
    });
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

function privateKeyBlock(label: string): string {
  const listing = hsm.tool(['--list-objects', '--type', 'privkey']);
  return listing.split(/(?=Private Key Object)/).find((b) => b.includes(`label:      ${label}`)) ?? '';
}

describe('the FIT signing key in a token (RSA-2048, sha256,rsa2048)', () => {
  let signer: FitSigner;
  let fit: Uint8Array;
  let qemuDtb: Uint8Array;

  it('`keys new --role fit --out pkcs11:` makes it in the token; a FIT signed there verifies with our verifier', async () => {
    const r = JSON.parse(ok(['keys', 'new', '--role', 'fit', '--out', hsm.uri('fit-hsm'), '--pub', at('fit-hsm.pem'), '--json']).stdout);
    expect(r).toMatchObject({ role: 'fit', bits: 2048, publicPath: at('fit-hsm.pem') });
    expect(privateKeyBlock('fit-hsm')).toMatch(/Private Key Object; RSA[\s\S]*Access:.*sensitive.*never extractable/);
    // What `signet fit --key pkcs11:…` loads.
    signer = await loadFitSigner(at('keys'), undefined, hsm.uri('fit-hsm'));
    const jwk = createPublicKey(readFileSync(at('fit-hsm.pem'), 'utf8')).export({ format: 'jwk' });
    expect(Buffer.from(signer.publicKey().modulus).toString('base64url')).toBe(jwk.n);

    if (ubootAvailable) {
      await dumpQemuVirtDtb(at('qemu.dtb'));
      qemuDtb = new Uint8Array(readFileSync(at('qemu.dtb')));
    }
    const input: BuildFitInput = {
      description: 'Signet FIT signed in a PKCS#11 token',
      arch: 'arm64',
      timestamp: 1_700_000_000,
      kernel: { data: dummyArm64Kernel(KERNEL_BANNER), loadAddress: 0x40400000, entryAddress: 0x40400000 },
      ramdisk: { data: new Uint8Array(4096).fill(0x5a) },
      fdt: { data: qemuDtb ? encodeFdt(decodeFdt(qemuDtb)) : encodeFdt({ root: fdtNode(''), reservations: [], bootCpuidPhys: 0 }), loadAddress: 0x48000000 },
      keyName: 'fit',
      signer,
    };
    fit = buildFit(input);
    expect(verifyFit(fit, [{ keyName: 'fit', publicKey: signer.publicKey() }]).configuration).toBe('conf-1');
    // The key file's key did not sign it.
    const fileKey = await loadFitSigner(at('keys'));
    expect(() => verifyFit(fit, [{ keyName: 'fit', publicKey: fileKey.publicKey() }])).toThrow();
  });

  it.skipIf(skipUnlessCi(ubootAvailable))('real U-Boot (qemu_arm64) with the token key in its control DTB verifies and boots that FIT', async () => {
    writeFileSync(at('u-boot-keys.dtb'), mergePublicKeyIntoDtb(qemuDtb, signer.publicKey(), 'fit'));
    writeFileSync(at('hsm.itb'), fit);
    const uboot = await UbootConsole.start({ dtb: at('u-boot-keys.dtb'), loads: [{ file: at('hsm.itb'), addr: 0x60000000 }] });
    try {
      await uboot.stopAutoboot();
      uboot.send('bootm 0x60000000\r');
      const out = await uboot.waitFor(KERNEL_BANNER);
      expect(out.match(/Verifying Hash Integrity \.\.\. sha256,rsa2048:fit\+ OK/g)).toHaveLength(3);
      expect(out).toContain('Starting kernel ...');
      expect(out).not.toContain('ERROR');
    } finally {
      await uboot.close();
    }
  });

  it('`signet fit --key` refuses a key of the wrong type, a missing object, a wrong PIN: one coded line, no file', () => {
    for (const [key, extraEnv] of [
      [hsm.uri('ed-hsm'), {}],
      [hsm.uri('no-such-key'), {}],
      [hsm.uri('fit-hsm'), { SIGNET_PKCS11_PIN: '0000' }],
    ] as [string, Record<string, string>][]) {
      const r = run(['fit', '--board', BOARD, '--keys', at('keys'), '--key', key, '--out', at('refused.itb')], extraEnv);
      expectOneLineError(r, 'E_KEY_PKCS11');
      if (key.includes('ed-hsm')) expect(r.stderr).toContain('not an RSA key');
    }
    expect(existsSync(at('refused.itb'))).toBe(false);
    // A file key for these roles comes from `keys init`; a second key under one label is refused.
    expectOneLineError(run(['keys', 'new', '--role', 'fit', '--out', at('fit2.key')]), 'E_KEY_ROLE');
    expectOneLineError(run(['keys', 'new', '--role', 'fit', '--out', hsm.uri('fit-hsm')]), 'E_KEYS_EXIST');
  });
});

async function startServer(keysDir: string): Promise<string> {
  const s = spawn(process.execPath, [CLI, 'server', '--data', at('ota-data'), '--keys', keysDir, '--port', '0', '--json', '--access-log', 'off'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...hsm.env } });
  server = s;
  return new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    s.stdout!.on('data', (d) => {
      out += d;
      const m = /"url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    s.stderr!.on('data', (d) => (err += d));
    s.on('exit', (c) => reject(new Error(`server exited ${c}: ${out} ${err}`)));
  });
}

describe('the vendor CA key in a token', () => {
  it('`keys new --role ca` self-signs vendor-ca.crt in the token; it issues the server and device certificates; the device checks in over mutual TLS', async () => {
    // A key folder whose CA is the token's: vendor-ca.crt from the token, no vendor-ca.key anywhere.
    mkdirSync(at('cakeys'));
    for (const f of readdirSync(at('keys'))) if (!f.startsWith('vendor-ca.')) copyFileSync(at('keys/' + f), at('cakeys/' + f));
    const r = JSON.parse(ok(['keys', 'new', '--role', 'ca', '--out', hsm.uri('ca-hsm'), '--pub', at('cakeys/vendor-ca.crt'), '--name', 'HSM test CA', '--json']).stdout);
    expect(r).toMatchObject({ role: 'ca', bits: 2048 });
    expect(privateKeyBlock('ca-hsm')).toMatch(/Access:.*sensitive.*never extractable/);
    const ca = new X509Certificate(readFileSync(at('cakeys/vendor-ca.crt')));
    expect(ca.ca).toBe(true);
    expect(ca.subject).toContain('CN=HSM test CA');
    expect(ca.verify(ca.publicKey)).toBe(true);

    ok(['server', 'keys', '--keys', at('cakeys'), '--ca-key', hsm.uri('ca-hsm'), '--out', at('server-keys')]);
    expect(existsSync(at('server-keys/vendor-ca.key'))).toBe(false);
    expect(new X509Certificate(readFileSync(at('server-keys/server.crt'))).verify(ca.publicKey)).toBe(true);
    const url = await startServer(at('server-keys'));

    ok(['device', 'enroll', '--id', 'tv-hsm', '--board', BOARD, '--keys', at('cakeys'), '--ca-key', hsm.uri('ca-hsm'), '--out', at('devices/tv-hsm')]);
    ok(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('cakeys'), '--ca-key', hsm.uri('ca-hsm'), '--out', at('admin')]);
    expect(new X509Certificate(readFileSync(at('devices/tv-hsm/client.crt'))).verify(ca.publicKey)).toBe(true);
    ok(['build', '--project', join(ROOT, 'examples/hello'), '--version', '1.0.0', '--security-counter', '1', '--key', at('keys/targets-1.key'), '--out', at('app.simg'), '--no-typecheck']);

    const sim = run(['device', 'simulate', '--dir', at('devices/tv-hsm'), '--board', BOARD, '--root', at('keys/root.json'), '--server', url, '--factory', at('app.simg'), '--json']);
    expect(sim.code, sim.stderr).toBe(0);
    // A device certificate from another CA (the key file's) is refused at the TLS handshake.
    ok(['device', 'enroll', '--id', 'tv-other', '--board', BOARD, '--keys', at('keys'), '--out', at('devices/tv-other')]);
    copyFileSync(at('cakeys/vendor-ca.crt'), at('devices/tv-other/vendor-ca.crt')); // it trusts the server: only the server can refuse
    const other = run(['device', 'simulate', '--dir', at('devices/tv-other'), '--board', BOARD, '--root', at('keys/root.json'), '--server', url, '--factory', at('app.simg'), '--json']);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/^error\[E_[A-Z_]+\]: .*(TLS|certificate|handshake|refused|reset|socket)/i);

    const list = JSON.parse(ok(['device', 'list', '--server', url, '--admin', at('admin'), '--json']).stdout) as { devices: { id: string; board: string }[] };
    expect(list.devices.map((d) => d.id)).toEqual(['tv-hsm']);
    expect(list.devices[0].board).toBe(BOARD);
  });

  it('refuses a key of the wrong type, a key that is not the CA certificate\'s, a missing object, a wrong PIN: one coded line, nothing written', () => {
    for (const [key, code, extraEnv] of [
      [hsm.uri('ed-hsm'), 'E_KEY_PKCS11', {}],
      [hsm.uri('fit-hsm'), 'E_CA_FILE', {}],
      [hsm.uri('no-such-key'), 'E_KEY_PKCS11', {}],
      [hsm.uri('ca-hsm'), 'E_KEY_PKCS11', { SIGNET_PKCS11_PIN: '0000' }],
    ] as [string, string, Record<string, string>][]) {
      expectOneLineError(run(['device', 'enroll', '--id', 'tv-x', '--board', BOARD, '--keys', at('cakeys'), '--ca-key', key, '--out', at('devices/tv-x')], extraEnv), code);
      expectOneLineError(run(['server', 'keys', '--keys', at('cakeys'), '--ca-key', key, '--out', at('server-keys-x')], extraEnv), code);
    }
    expect(existsSync(at('devices/tv-x'))).toBe(false);
    expect(existsSync(at('server-keys-x'))).toBe(false);
    expectOneLineError(run(['keys', 'new', '--role', 'ca', '--out', hsm.uri('ca-2')]), 'E_USAGE');
  });
});
