/**
 * The ceremony commands on bad input: every refusal is one coded line, exits non-zero and
 * leaves every file as it was (no --out written, no root file changed, no key half-written).
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, signet, type CliResult } from './helpers/cli';

let work: string;
const at = (p: string) => join(work, p);
const run = (args: string[]): CliResult => signet(args, { cwd: work });
function ok(args: string[]): CliResult {
  const r = run(args);
  if (r.code !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}`);
  return r;
}
const snapshot = () => Object.fromEntries(readdirSync(work).filter((n) => statSync(at(n)).isFile()).map((n) => [n, readFileSync(at(n)).toString('base64')]));

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'signet-ceremony-'));
  ok(['keys', 'init', '--dir', at('keys'), '--threshold', '2', '--count', '3']);
  ok(['keys', 'new', '--role', 'root', '--out', at('new-root.key')]);
  ok(['root', 'new', '--from', at('keys/root.json'), '--add-key', 'root=' + at('new-root.pub'), '--out', at('root.v2.json')]);
  writeFileSync(at('not-a-key.pub'), '{"keytype":"rsa","scheme":"rsa","keyval":{"public":"00"}}');
  writeFileSync(at('garbage.json'), 'not json at all');
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('keys new', () => {
  it('writes a 0600 private key and its .pub; refuses a second time and unknown roles', () => {
    const r = JSON.parse(ok(['keys', 'new', '--role', 'targets', '--out', at('t.key'), '--json']).stdout);
    expect(r).toMatchObject({ role: 'targets', privatePath: at('t.key'), publicPath: at('t.pub') });
    expect(statSync(at('t.key')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(at('t.pub'), 'utf8'))).toMatchObject({ keytype: 'ed25519', scheme: 'ed25519' });
    const before = snapshot();
    expectOneLineError(run(['keys', 'new', '--role', 'targets', '--out', at('t.key')]), 'E_KEYS_EXIST');
    expectOneLineError(run(['keys', 'new', '--role', 'admin', '--out', at('x.key')]), 'E_KEY_ROLE');
    expectOneLineError(run(['keys', 'new', '--role', 'root']), 'E_USAGE');
    expect(snapshot()).toEqual(before);
    expect(existsSync(at('x.key'))).toBe(false);
  });
});

describe('root new / sign / verify / push refusals', () => {
  const from = () => ['root', 'new', '--from', at('keys/root.json')];
  const cases: [string, string[], string][] = [
    ['unknown role', ['--add-key', 'admin=new-root.pub', '--out', 'o.json'], 'E_ROOT_EDIT'],
    ['a key the role already has', ['--add-key', 'root=new-root.pub', '--add-key', 'root=new-root.pub', '--out', 'o.json'], 'E_ROOT_EDIT'],
    ['a key the role does not have', ['--remove-key', 'targets=deadbeefdeadbeef', '--out', 'o.json'], 'E_ROOT_EDIT'],
    ['a key id that is not hex', ['--remove-key', 'root=xyz', '--out', 'o.json'], 'E_ROOT_EDIT'],
    ['a threshold above the keys', ['--threshold', 'root=4', '--out', 'o.json'], 'E_ROOT_EDIT'],
    ['a threshold that is not a number', ['--threshold', 'root=two', '--out', 'o.json'], 'E_USAGE'],
    ['ROLE=VALUE missing', ['--threshold', 'root', '--out', 'o.json'], 'E_USAGE'],
    ['an RSA key', ['--add-key', 'root=not-a-key.pub', '--out', 'o.json'], 'E_META_KEY'],
    ['a .pub that is not JSON', ['--add-key', 'root=garbage.json', '--out', 'o.json'], 'E_ROOT_EDIT'],
    ['an existing --out', ['--out', 'root.v2.json'], 'E_ROOT_EDIT'],
    ['no --out', [], 'E_USAGE'],
    ['a lifetime out of range', ['--expires-days', '0', '--out', 'o.json'], 'E_USAGE'],
  ];
  for (const [what, args, code] of cases) {
    it(`root new refuses ${what} (${code}) and writes nothing`, () => {
      const before = snapshot();
      expectOneLineError(run([...from(), ...args.map((a) => (/\.(pub|json)$/.test(a) && !a.includes('=') ? at(a) : a.replace(/=(\S+\.(pub|json))$/, (_m, f) => '=' + at(f))))]), code);
      expect(snapshot()).toEqual(before);
      expect(existsSync(at('o.json'))).toBe(false);
    });
  }

  it('removing every key of a role is refused', () => {
    const ids: string[] = JSON.parse(readFileSync(at('keys/root.json'), 'utf8')).signed.roles.snapshot.keyids;
    expectOneLineError(run([...from(), '--remove-key', 'snapshot=' + ids[0], '--out', at('o.json')]), 'E_ROOT_EDIT');
    expect(existsSync(at('o.json'))).toBe(false);
  });

  it('root new --from a file that is not a valid root is refused', () => {
    expectOneLineError(run(['root', 'new', '--from', at('garbage.json'), '--out', at('o.json')]), 'E_META_FORMAT');
    expectOneLineError(run(['root', 'new', '--from', at('missing.json'), '--out', at('o.json')]), 'E_FILE_NOT_FOUND');
    expect(existsSync(at('o.json'))).toBe(false);
  });

  it('root sign refuses a missing key, a file that is not a root, a version that does not follow --trusted', () => {
    const before = snapshot();
    expectOneLineError(run(['root', 'sign', at('root.v2.json')]), 'E_USAGE');
    expectOneLineError(run(['root', 'sign', at('root.v2.json'), '--key', at('nope.key')]), 'E_KEY_FILE');
    expectOneLineError(run(['root', 'sign', at('garbage.json'), '--key', at('keys/root-1.key')]), 'E_META_FORMAT');
    expectOneLineError(run(['root', 'sign', at('root.v2.json'), '--key', at('keys/root-1.key'), '--merge', at('root.v2.json')]), 'E_USAGE');
    // --trusted must be a root that verifies on its own (the unsigned draft does not) …
    expectOneLineError(run(['root', 'sign', at('root.v2.json'), '--key', at('keys/root-2.key'), '--trusted', at('root.v2.json')]), 'E_META_THRESHOLD');
    // … and the file must be its next version: root 1 does not follow root 1.
    const root1 = readFileSync(at('keys/root.json'));
    copyFileSync(at('keys/root.json'), at('v1-copy.json'));
    expectOneLineError(run(['root', 'sign', at('v1-copy.json'), '--key', at('keys/root-1.key'), '--trusted', at('keys/root.json')]), 'E_META_VERSION');
    expect(readFileSync(at('v1-copy.json')).equals(root1)).toBe(true);
    rmSync(at('v1-copy.json'));
    expect(snapshot()).toEqual(before);
  });

  it('root verify needs --trusted and the next version; a root signed by nobody is E_ROOT_UNSIGNED', () => {
    expectOneLineError(run(['root', 'verify', at('root.v2.json')]), 'E_USAGE');
    expectOneLineError(run(['root', 'verify', at('root.v2.json'), '--trusted', at('root.v2.json')]), 'E_META_THRESHOLD');
    const r = run(['root', 'verify', at('root.v2.json'), '--trusted', at('keys/root.json')]);
    expectOneLineError(r, 'E_ROOT_UNSIGNED');
    expect(r.stdout).toContain('old root (v1) needs 2 of 3: signed by nobody');
  });

  it('root push and targets resign refuse before sending anything when the server cannot be reached', () => {
    ok(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('keys'), '--out', at('admin')]);
    const before = readFileSync(at('keys/root.json'));
    expectOneLineError(run(['root', 'push', at('root.v2.json'), '--server', 'https://127.0.0.1:1', '--admin', at('admin'), '--keys', at('keys')]), 'E_SERVER_UNREACHABLE');
    expectOneLineError(run(['root', 'push', at('root.v2.json'), '--server', 'http://127.0.0.1:1', '--admin', at('admin')]), 'E_USAGE');
    expectOneLineError(run(['targets', 'resign', '--keys', at('keys'), '--server', 'https://127.0.0.1:1', '--admin', at('admin')]), 'E_SERVER_UNREACHABLE');
    expect(readFileSync(at('keys/root.json')).equals(before)).toBe(true);
    expect(existsSync(at('keys/1.root.json'))).toBe(false);
  });
});
