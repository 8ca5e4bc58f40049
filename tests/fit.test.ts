// sdk/fit: our FDT codec and FIT builder/verifier, checked against the real
// tools — dtc, mkimage, dumpimage, openssl — and against themselves.
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FdtError, FitError } from '../sdk/fit/errors';
import {
  decodeFdt,
  decodeFdtHeader,
  encodeFdt,
  encodeFdtHeader,
  FDT_HEADER_FIELDS,
  FDT_HEADER_SIZE,
  fdtNode,
  fdtProp,
  findNode,
  getProp,
  newFdt,
  readString,
  readStringList,
  readU32,
  readU64,
  stringListValue,
  stringValue,
  u32Value,
  walkFdtTags,
  type Fdt,
  type FdtNode,
} from '../sdk/fit/fdt';
import { fdtFindRegions } from '../sdk/fit/fdt-region';
import { buildFit, FIT_SIGNATURE_BYTES, type BuildFitInput } from '../sdk/fit/fit';
import { requiredConfKeys, verifyFit, type FitVerifyKey } from '../sdk/fit/fit-verify';
import { mergePublicKeyIntoDtb, publicKeyDtb, publicKeyNode, readPublicKeysFromDtb } from '../sdk/fit/keydtb';
import { emsaPkcs1v15Sha256, sha256, ubootRsaParams, verifyPkcs1v15Sha256 } from '../sdk/fit/pkcs1';
import { ForgeRsaSigner } from '../sdk/fit/rsa';
import { lzmaDeterministic, unlzma } from '../sdk/disk/compress';
import { mutate, xorshift } from './helpers/mutate';
import { skipUnlessCi } from './helpers/tools';

const repo = fileURLToPath(new URL('..', import.meta.url));
const cacheRoot = process.env.SIGNET_CACHE ?? join(repo, '.cache', 'signet');

function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}
const HAVE = {
  dtc: hasTool('dtc'),
  mkimage: hasTool('mkimage'),
  dumpimage: hasTool('dumpimage'),
  openssl: hasTool('openssl'),
  qemu: hasTool('qemu-system-aarch64'),
};

function run(cmd: string, args: string[], env: Record<string, string> = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof FdtError || e instanceof FitError) return e.code;
    throw e;
  }
  return 'OK';
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + (i >> 3)) & 0xff);

let work: string;
let signer: ForgeRsaSigner;
let other: ForgeRsaSigner;
let devKey: FitVerifyKey;
let input: BuildFitInput;
let itb: Uint8Array;

beforeAll(() => {
  mkdirSync(cacheRoot, { recursive: true });
  work = mkdtempSync(join(cacheRoot, 'fit-test-'));
  signer = ForgeRsaSigner.generate();
  other = ForgeRsaSigner.generate();
  devKey = { keyName: 'dev', publicKey: signer.publicKey() };
  input = {
    description: 'Signet test boot image',
    arch: 'arm64',
    timestamp: 1_700_000_000,
    kernel: { data: bytes(301, 1), loadAddress: 0x40400000, entryAddress: 0x40400000 },
    ramdisk: { data: bytes(150, 2) },
    fdt: { data: encodeFdt(newFdt(fdtNode('', [fdtProp('model', stringValue('test'))]))), loadAddress: 0x48000000 },
    keyName: 'dev',
    signer,
  };
  itb = buildFit(input);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------

describe('FDT header field table', () => {
  it('adds up to 40 bytes and round-trips every field big-endian', () => {
    expect(FDT_HEADER_FIELDS.reduce((n, f) => n + f.size, 0)).toBe(FDT_HEADER_SIZE);
    const h = {
      magic: 0xd00dfeed,
      totalSize: 0x01020304,
      offDtStruct: 0x11121314,
      offDtStrings: 0x21222324,
      offMemRsvmap: 0x31323334,
      version: 0x41424344,
      lastCompVersion: 0x51525354,
      bootCpuidPhys: 0x61626364,
      sizeDtStrings: 0x71727374,
      sizeDtStruct: 0x81828384,
    };
    const b = encodeFdtHeader(h);
    expect(hex(b)).toBe('d00dfeed0102030411121314212223243132333441424344515253546162636471727374' + '81828384');
    expect(decodeFdtHeader(b)).toEqual(h);
  });

  it('encodes the empty tree to the golden 72 bytes', () => {
    const golden =
      'd00dfeed00000048000000380000004800000028000000110000001000000000000000000000001' +
      '0' +
      '00000000000000000000000000000000' + // reservation terminator
      '00000001000000000000000200000009'; // BEGIN_NODE "" END_NODE END
    expect(hex(encodeFdt(newFdt(fdtNode(''))))).toBe(golden);
  });

  it.skipIf(skipUnlessCi(HAVE.dtc))('matches dtc byte for byte on the empty tree', () => {
    writeFileSync(join(work, 'empty.dts'), '/dts-v1/;\n/ { };\n');
    const viaDtc = readFileSync(run('sh', ['-c', `dtc -I dts -O dtb -o ${work}/empty.dtb ${work}/empty.dts && echo ${work}/empty.dtb`]).trim());
    expect(hex(viaDtc)).toBe(hex(encodeFdt(newFdt(fdtNode('')))));
  });
});

// ---------------------------------------------------------------------------

const SAMPLE_DTS = `/dts-v1/;
/memreserve/ 0x10000000 0x4000;
/memreserve/ 0x8000000000 0x100000;
/ {
  model = "signet,test";
  compatible = "signet,board", "signet,soc";
  #address-cells = <2>;
  #size-cells = <2>;
  empty-prop;
  bytes = [00 01 fe ff 7f];
  big = /bits/ 64 <0x123456789abcdef0>;
  cpus {
    #address-cells = <1>;
    #size-cells = <0>;
    cpu0: cpu@0 { device_type = "cpu"; reg = <0>; };
  };
  memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x40000000>; };
  chosen { stdout-path = &cpu0; bootargs = "console=ttyAMA0"; name-tail = "name"; };
  deep { a { b { c { d { leaf = <1 2 3>; }; }; }; }; };
};
`;

describe('FDT codec vs dtc', () => {
  let dtcBlob: Uint8Array;

  beforeAll(() => {
    if (skipUnlessCi(HAVE.dtc)) return;
    writeFileSync(join(work, 'sample.dts'), SAMPLE_DTS);
    run('dtc', ['-I', 'dts', '-O', 'dtb', '-b', '3', '-o', join(work, 'sample.dtb'), join(work, 'sample.dts')]);
    dtcBlob = new Uint8Array(readFileSync(join(work, 'sample.dtb')));
  });

  it.skipIf(skipUnlessCi(HAVE.dtc))("decodes dtc's output: values, reservations, boot cpu, unit addresses", () => {
    const fdt = decodeFdt(dtcBlob);
    expect(fdt.bootCpuidPhys).toBe(3);
    expect(fdt.reservations).toEqual([
      { address: 0x10000000n, size: 0x4000n },
      { address: 0x8000000000n, size: 0x100000n },
    ]);
    const root = fdt.root;
    expect(readString(getProp(root, 'model')!)).toBe('signet,test');
    expect(readStringList(getProp(root, 'compatible')!)).toEqual(['signet,board', 'signet,soc']);
    expect(getProp(root, 'empty-prop')!.length).toBe(0);
    expect([...getProp(root, 'bytes')!]).toEqual([0, 1, 0xfe, 0xff, 0x7f]);
    expect(readU64(getProp(root, 'big')!)).toBe(0x123456789abcdef0n);
    expect(readU32(getProp(findNode(root, '/cpus/cpu@0')!, 'reg')!)).toBe(0);
    expect(readString(getProp(findNode(root, '/chosen')!, 'stdout-path')!)).toBe('/cpus/cpu@0');
    expect(hex(getProp(findNode(root, '/deep/a/b/c/d')!, 'leaf')!)).toBe('000000010000000200000003');
    // dtc stores "name" as the tail of "device_type"... or reuses any tail; either way it resolves.
    expect(readString(getProp(findNode(root, '/chosen')!, 'name-tail')!)).toBe('name');
  });

  it.skipIf(skipUnlessCi(HAVE.dtc))("re-encodes dtc's output to exactly dtc's bytes (same layout, same string sharing)", () => {
    expect(hex(encodeFdt(decodeFdt(dtcBlob)))).toBe(hex(dtcBlob));
  });

  it.skipIf(skipUnlessCi(HAVE.dtc))('our output decodes in dtc, and dtc writes it back unchanged', () => {
    const ours = encodeFdt(decodeFdt(dtcBlob));
    const file = join(work, 'ours.dtb');
    writeFileSync(file, ours);
    const dts = run('dtc', ['-I', 'dtb', '-O', 'dts', file]);
    expect(dts).toContain('model = "signet,test";');
    expect(dts).toContain('/memreserve/\t0x0000008000000000 0x0000000000100000;');
    const again = run('sh', ['-c', `dtc -I dtb -O dtb -o ${work}/again.dtb ${file} && echo ${work}/again.dtb`]).trim();
    expect(hex(readFileSync(again))).toBe(hex(ours));
  });

  it.skipIf(skipUnlessCi(HAVE.dtc))('a FIT from buildFit decodes in dtc with every node and property', () => {
    const file = join(work, 'plain.itb');
    writeFileSync(file, itb);
    const dts = run('dtc', ['-I', 'dtb', '-O', 'dts', file]);
    for (const s of ['kernel {', 'ramdisk {', 'fdt {', 'conf-1 {', 'signature-1 {', 'algo = "sha256,rsa2048";', 'key-name-hint = "dev";', 'hashed-strings']) {
      expect(dts).toContain(s);
    }
  });

  it('round-trips random trees (decode(encode(t)) == t, encode is a fixed point)', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9,._+-]{0,10}(@[0-9a-f]{1,8})?$/);
    const propName = fc.stringMatching(/^[a-z#][a-z0-9,._+?#-]{0,12}$/);
    const prop = fc.record({ name: propName, value: fc.uint8Array({ maxLength: 40 }) });
    const node: fc.Memo<FdtNode> = fc.memo((depth) =>
      fc.record({
        name,
        properties: fc.uniqueArray(prop, { selector: (p) => p.name, maxLength: 5 }),
        children: depth > 1 ? fc.uniqueArray(node(depth - 1), { selector: (c) => c.name, maxLength: 3 }) : fc.constant([]),
      }),
    );
    const tree = fc.record({
      root: node(4).map((r) => ({ ...r, name: '' })),
      reservations: fc.array(fc.record({ address: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }), size: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }), { maxLength: 3 }),
      bootCpuidPhys: fc.nat(),
    });
    fc.assert(
      fc.property(tree, (t: Fdt) => {
        const blob = encodeFdt(t);
        const back = decodeFdt(blob);
        expect(back).toEqual(t);
        expect(hex(encodeFdt(back))).toBe(hex(blob));
      }),
      { numRuns: 200 },
    );
  });

  it('shares strings like dtc, including tails of longer names', () => {
    const blob = encodeFdt(newFdt(fdtNode('', [fdtProp('key-name-hint', new Uint8Array()), fdtProp('hint', new Uint8Array()), fdtProp('name-hint', new Uint8Array())])));
    expect(decodeFdtHeader(blob).sizeDtStrings).toBe('key-name-hint\0'.length);
  });

  it('pads to a minimum total size and still decodes', () => {
    const blob = encodeFdt(newFdt(fdtNode('', [fdtProp('a', u32Value(1))])), { minTotalSize: 4096 });
    expect(blob.length).toBe(4096);
    expect(readU32(getProp(decodeFdt(blob).root, 'a')!)).toBe(1);
  });
});

// ---------------------------------------------------------------------------

describe('FDT strict decoding', () => {
  const good = encodeFdt(newFdt(fdtNode('', [fdtProp('compatible', stringValue('x'))], [fdtNode('child', [fdtProp('reg', u32Value(1))])])));
  const h = decodeFdtHeader(good);
  const set32 = (b: Uint8Array, off: number, v: number): Uint8Array => {
    const c = b.slice();
    new DataView(c.buffer).setUint32(off, v, false);
    return c;
  };
  const structWord = (i: number): number => h.offDtStruct + 4 * i;

  it('rejects each malformation with its own code', () => {
    expect(codeOf(() => decodeFdt(good))).toBe('OK');
    expect(codeOf(() => decodeFdt(set32(good, 0, 0xd00dfeee)))).toBe('E_FDT_BAD_MAGIC');
    expect(codeOf(() => decodeFdt(good.subarray(0, 20)))).toBe('E_FDT_TRUNCATED');
    expect(codeOf(() => decodeFdt(good.subarray(0, good.length - 1)))).toBe('E_FDT_TRUNCATED');
    expect(codeOf(() => decodeFdt(new Uint8Array([...good, 0])))).toBe('E_FDT_TRAILING_DATA');
    expect(codeOf(() => decodeFdt(new Uint8Array([...good, 0]), { allowTrailingData: true }))).toBe('OK');
    expect(codeOf(() => decodeFdt(set32(good, 20, 16)))).toBe('E_FDT_BAD_VERSION');
    expect(codeOf(() => decodeFdt(set32(good, 24, 18)))).toBe('E_FDT_BAD_VERSION');
    expect(codeOf(() => decodeFdt(set32(good, 8, h.totalSize)))).toBe('E_FDT_BAD_OFFSET'); // struct outside
    expect(codeOf(() => decodeFdt(set32(good, 8, h.offDtStruct + 2)))).toBe('E_FDT_BAD_OFFSET'); // misaligned
    expect(codeOf(() => decodeFdt(set32(good, 12, h.offDtStruct)))).toBe('E_FDT_BAD_OFFSET'); // strings overlap struct
    expect(codeOf(() => decodeFdt(set32(good, 16, 44)))).toBe('E_FDT_BAD_OFFSET'); // rsvmap misaligned
    expect(codeOf(() => decodeFdt(good, { maxTotalSize: 64 }))).toBe('E_FDT_TOO_LARGE');
    expect(codeOf(() => decodeFdt(set32(good, structWord(0), 7)))).toBe('E_FDT_BAD_TOKEN');
    // first property: [PROP, len, nameoff] at words 2..4
    expect(codeOf(() => decodeFdt(set32(good, structWord(4), h.sizeDtStrings)))).toBe('E_FDT_BAD_OFFSET');
    expect(codeOf(() => decodeFdt(set32(good, structWord(3), 0x10000)))).toBe('E_FDT_TRUNCATED');
    // a strings block whose only name loses its NUL
    const noNul = good.slice();
    noNul[h.offDtStrings + h.sizeDtStrings - 1] = 0x41;
    expect(codeOf(() => decodeFdt(noNul))).toBe('E_FDT_BAD_STRING');
    // root END_NODE turned into NOP: FDT_END with a node still open
    const endIdx = h.sizeDtStruct / 4 - 2;
    expect(codeOf(() => decodeFdt(set32(good, structWord(endIdx), 4)))).toBe('E_FDT_NESTING');
    // the FDT_END token turned into END_NODE: closes nothing
    expect(codeOf(() => decodeFdt(set32(good, structWord(endIdx + 1), 2)))).toBe('E_FDT_NESTING');
    // the FDT_END token turned into NOP: the block ends without FDT_END
    expect(codeOf(() => decodeFdt(set32(good, structWord(endIdx + 1), 4)))).toBe('E_FDT_TRUNCATED');
  });

  it('rejects an unterminated node name', () => {
    // a struct block that is only BEGIN_NODE + "abcd" with no NUL inside the block
    const blob = encodeFdt(newFdt(fdtNode('')));
    const c = blob.slice();
    const hh = decodeFdtHeader(c);
    c.set([0x61, 0x62, 0x63, 0x64], hh.offDtStruct + 4); // root name bytes where the NUL was
    c.set([0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68], hh.offDtStruct + 8); // END_NODE, END
    expect(codeOf(() => decodeFdt(c))).toBe('E_FDT_BAD_STRING');
  });

  it('refuses nesting deeper than the cap, extra roots, props after subnodes, duplicates', () => {
    let deep = fdtNode('n');
    for (let i = 0; i < 40; i++) deep = fdtNode('n', [], [deep]);
    expect(codeOf(() => encodeFdt(newFdt(fdtNode('', [], [deep]))))).toBe('E_FDT_NESTING');
    let ok = fdtNode('n');
    for (let i = 0; i < 20; i++) ok = fdtNode('n', [], [ok]);
    const blob = encodeFdt(newFdt(fdtNode('', [], [ok])));
    expect(codeOf(() => decodeFdt(blob))).toBe('OK');
    expect(codeOf(() => decodeFdt(blob, { maxDepth: 10 }))).toBe('E_FDT_NESTING');
    expect(codeOf(() => decodeFdt(blob, { maxNodes: 5 }))).toBe('E_FDT_LIMIT');

    // Hand-assembled structure blocks, spliced into a valid container.
    const withStruct = (words: number[], strings = 'a\0'): Uint8Array => {
      const struct = new Uint8Array(words.length * 4);
      words.forEach((w, i) => new DataView(struct.buffer).setUint32(i * 4, w, false));
      const str = new TextEncoder().encode(strings);
      const out = new Uint8Array(56 + struct.length + str.length);
      out.set(encodeFdtHeader({ magic: 0xd00dfeed, totalSize: out.length, offDtStruct: 56, offDtStrings: 56 + struct.length, offMemRsvmap: 40, version: 17, lastCompVersion: 16, bootCpuidPhys: 0, sizeDtStrings: str.length, sizeDtStruct: struct.length }));
      out.set(struct, 56);
      out.set(str, 56 + struct.length);
      return out;
    };
    const B = 1, E = 2, P = 3, END = 9;
    const CHILD = 0x63000000; // "c\0\0\0"
    expect(codeOf(() => decodeFdt(withStruct([B, 0, E, END])))).toBe('OK');
    expect(codeOf(() => decodeFdt(withStruct([B, 0, E, B, 0, E, END])))).toBe('E_FDT_BAD_STRUCTURE');
    expect(codeOf(() => decodeFdt(withStruct([B, 0, B, CHILD, E, P, 0, 0, E, END])))).toBe('E_FDT_BAD_STRUCTURE');
    expect(codeOf(() => decodeFdt(withStruct([B, 0, P, 0, 0, P, 0, 0, E, END])))).toBe('E_FDT_BAD_STRUCTURE');
    expect(codeOf(() => decodeFdt(withStruct([B, 0, B, CHILD, E, B, CHILD, E, E, END])))).toBe('E_FDT_BAD_STRUCTURE');
    expect(codeOf(() => decodeFdt(withStruct([B, CHILD, E, END])))).toBe('E_FDT_BAD_NAME');
    expect(codeOf(() => decodeFdt(withStruct([B, 0, E, END, 0])))).toBe('E_FDT_BAD_STRUCTURE');
  });

  it('throws only FdtError for thousands of random corruptions', () => {
    const base = encodeFdt(decodeFdt(itb));
    const rand = xorshift(0x5167);
    for (let i = 0; i < 3000; i++) {
      const m = mutate(base, rand);
      try {
        decodeFdt(m);
      } catch (e) {
        if (!(e instanceof FdtError)) throw e;
        expect(e.name).toBe('FdtError');
        expect(e.message).not.toContain('\n');
      }
    }
  });
});

// ---------------------------------------------------------------------------

describe('FIT built by buildFit, read by U-Boot tools', () => {
  let file: string;
  beforeAll(() => {
    file = join(work, 'boot.itb');
    writeFileSync(file, itb);
  });

  const expectListing = (out: string): void => {
    expect(out).toContain('FIT description: Signet test boot image');
    expect(out).toContain('Created:         Tue Nov 14 22:13:20 2023');
    expect(out).toMatch(/Image 0 \(kernel\)\n\s+Description:\s+Linux kernel\n\s+Created:.*\n\s+Type:\s+Kernel Image\n\s+Compression:\s+uncompressed\n\s+Data Size:\s+301 Bytes.*\n\s+Architecture: AArch64\n\s+OS:\s+Linux\n\s+Load Address: 0x40400000\n\s+Entry Point:\s+0x40400000\n\s+Hash algo:\s+sha256\n\s+Hash value:\s+([0-9a-f]{64})/);
    expect(out).toContain(`Hash value:   ${hex(sha256([input.kernel.data]))}`);
    expect(out).toMatch(/Image 1 \(ramdisk\)[\s\S]*?Type:\s+RAMDisk Image/);
    expect(out).toContain(`Hash value:   ${hex(sha256([input.ramdisk.data]))}`);
    expect(out).toMatch(/Image 2 \(fdt\)[\s\S]*?Type:\s+Flat Device Tree/);
    expect(out).toContain(`Hash value:   ${hex(sha256([input.fdt.data]))}`);
    expect(out).toContain("Default Configuration: 'conf-1'");
    expect(out).toMatch(/Configuration 0 \(conf-1\)\n\s+Description:\s+Signet test boot image\n\s+Kernel:\s+kernel\n\s+Init Ramdisk: ramdisk\n\s+FDT:\s+fdt\n\s+Sign algo:\s+sha256,rsa2048:dev\n\s+Sign value:\s+([0-9a-f]{512})\n\s+Timestamp:\s+Tue Nov 14 22:13:20 2023/);
    const sig = getProp(findNode(decodeFdt(itb).root, '/configurations/conf-1/signature-1')!, 'value')!;
    expect(out).toContain(`Sign value:   ${hex(sig)}`);
  };

  it.skipIf(skipUnlessCi(HAVE.mkimage))('mkimage -l lists images, hashes, configuration and signature', () => {
    expectListing(run('mkimage', ['-l', file], { TZ: 'UTC' }));
  });

  it.skipIf(skipUnlessCi(HAVE.dumpimage))('dumpimage -l lists the same, and dumpimage -p extracts each image intact', () => {
    expectListing(run('dumpimage', ['-l', file], { TZ: 'UTC' }));
    const parts = [input.kernel.data, input.ramdisk.data, input.fdt.data];
    parts.forEach((expected, p) => {
      const out = join(work, `part${p}.bin`);
      run('dumpimage', ['-T', 'flat_dt', '-p', String(p), '-o', out, file]);
      expect(hex(readFileSync(out))).toBe(hex(expected));
    });
  });

  it.skipIf(skipUnlessCi(HAVE.mkimage))('mkimage shows arch "ARM" for arm32 FITs', () => {
    const f = join(work, 'arm.itb');
    writeFileSync(f, buildFit({ ...input, arch: 'arm' }));
    expect(run('mkimage', ['-l', f])).toMatch(/Architecture: ARM\n/);
  });

  it.skipIf(skipUnlessCi(HAVE.dumpimage))('a gzip kernel is declared so, hashed as stored, and extracted as stored', () => {
    const gz = new Uint8Array(gzipSync(Buffer.from(input.kernel.data)));
    const f = join(work, 'gzip.itb');
    const fit = buildFit({ ...input, kernel: { ...input.kernel, data: gz, compression: 'gzip' } });
    writeFileSync(f, fit);
    const kernel = run('dumpimage', ['-l', f], { TZ: 'UTC' }).split(/Image \d+ \(/)[1]!;
    expect(kernel).toMatch(/^kernel\)/);
    expect(kernel).toMatch(/Compression:\s+gzip compressed/);
    expect(kernel).toContain(`Hash value:   ${hex(sha256([gz]))}`);
    expect(readString(getProp(findNode(decodeFdt(fit).root, '/images/kernel')!, 'compression')!)).toBe('gzip');
    expect(readString(getProp(findNode(decodeFdt(fit).root, '/images/ramdisk')!, 'compression')!)).toBe('none');
    const out = join(work, 'gzip-kernel.bin');
    run('dumpimage', ['-T', 'flat_dt', '-p', '0', '-o', out, f]);
    expect(hex(readFileSync(out))).toBe(hex(gz));
    expect(verifyFit(fit, [devKey]).images.find((i) => i.role === 'kernel')!.data).toEqual(gz);
  });

  it.skipIf(skipUnlessCi(HAVE.dumpimage))('an lzma kernel (xz --format=lzma) is declared so, mkimage reads it as lzma, and it unpacks to the Image', async () => {
    const lz = await lzmaDeterministic(input.kernel.data);
    expect(lz).toEqual(await lzmaDeterministic(input.kernel.data)); // same bytes in, same bytes out
    expect(lz.length).toBeLessThan(input.kernel.data.length);
    const f = join(work, 'lzma.itb');
    const fit = buildFit({ ...input, kernel: { ...input.kernel, data: lz, compression: 'lzma' } });
    writeFileSync(f, fit);
    const kernel = run('dumpimage', ['-l', f], { TZ: 'UTC' }).split(/Image \d+ \(/)[1]!;
    expect(kernel).toMatch(/Compression:\s+lzma compressed/);
    expect(kernel).toContain(`Hash value:   ${hex(sha256([lz]))}`);
    const v = verifyFit(fit, [devKey]).images.find((i) => i.role === 'kernel')!;
    expect(v.compression).toBe('lzma');
    expect(await unlzma(v.data)).toEqual(input.kernel.data);
  });
});

describe('signing matches mkimage -F -k exactly', () => {
  it.skipIf(skipUnlessCi(HAVE.mkimage && HAVE.openssl && HAVE.dtc))(
    're-signing our FIT with mkimage yields the same signature, hashed-nodes, hashed-strings; its -K key node equals ours',
    () => {
      const dir = join(work, 'mkimage-resign');
      mkdirSync(dir);
      writeFileSync(join(dir, 'dev.key'), signer.privateKeyPem());
      run('openssl', ['req', '-batch', '-new', '-x509', '-key', join(dir, 'dev.key'), '-out', join(dir, 'dev.crt'), '-subj', '/CN=dev', '-days', '1']);
      writeFileSync(join(dir, 'keys.dtb'), encodeFdt(newFdt(fdtNode(''))));
      const resigned = join(dir, 'boot.itb');
      writeFileSync(resigned, itb);
      run('mkimage', ['-F', '-k', dir, '-K', join(dir, 'keys.dtb'), '-r', resigned], { SOURCE_DATE_EPOCH: String(input.timestamp) });

      // mkimage overwrites signer-name and adds signer-version; with those two
      // set aside the trees must be identical — value included (PKCS#1 v1.5 is
      // deterministic), which proves both hashed the very same regions.
      const strip = (blob: Uint8Array): Uint8Array => {
        const t = decodeFdt(blob);
        const sig = findNode(t.root, '/configurations/conf-1/signature-1')!;
        sig.properties = sig.properties.filter((p) => p.name !== 'signer-name' && p.name !== 'signer-version');
        return encodeFdt(t);
      };
      const theirs = new Uint8Array(readFileSync(resigned));
      expect(hex(theirs)).not.toBe(hex(itb)); // mkimage did rewrite the file
      expect(readString(getProp(findNode(decodeFdt(theirs).root, '/configurations/conf-1/signature-1')!, 'signer-name')!)).toBe('mkimage');
      expect(hex(strip(theirs))).toBe(hex(strip(itb)));

      const theirKeys = run('dtc', ['-I', 'dtb', '-O', 'dts', join(dir, 'keys.dtb')]);
      writeFileSync(join(dir, 'ours.dtb'), publicKeyDtb(signer.publicKey(), 'dev'));
      expect(run('dtc', ['-I', 'dtb', '-O', 'dts', join(dir, 'ours.dtb')])).toBe(theirKeys);
    },
  );

  it.skipIf(skipUnlessCi(HAVE.mkimage && HAVE.openssl))("a FIT mkimage builds and signs from an .its verifies in ours, with mkimage's key DTB", () => {
    const dir = join(work, 'mkimage-its');
    mkdirSync(dir);
    writeFileSync(join(dir, 'dev.key'), signer.privateKeyPem());
    run('openssl', ['req', '-batch', '-new', '-x509', '-key', join(dir, 'dev.key'), '-out', join(dir, 'dev.crt'), '-subj', '/CN=dev', '-days', '1']);
    writeFileSync(join(dir, 'k.bin'), input.kernel.data);
    writeFileSync(join(dir, 'r.bin'), input.ramdisk.data);
    writeFileSync(join(dir, 'f.dtb'), input.fdt.data);
    writeFileSync(join(dir, 'keys.dtb'), encodeFdt(newFdt(fdtNode(''))));
    writeFileSync(
      join(dir, 'boot.its'),
      `/dts-v1/;
/ {
  description = "mkimage-built";
  #address-cells = <1>;
  images {
    kernel-1 { description = "k"; data = /incbin/("k.bin"); type = "kernel"; arch = "arm64"; os = "linux"; compression = "none"; load = <0x40400000>; entry = <0x40400000>; hash-1 { algo = "sha256"; }; };
    fdt-1 { description = "f"; data = /incbin/("f.dtb"); type = "flat_dt"; arch = "arm64"; compression = "none"; hash-1 { algo = "sha256"; }; };
    ramdisk-1 { description = "r"; data = /incbin/("r.bin"); type = "ramdisk"; arch = "arm64"; os = "linux"; compression = "none"; hash-1 { algo = "sha256"; }; };
  };
  configurations {
    default = "conf-1";
    conf-1 { description = "c"; kernel = "kernel-1"; fdt = "fdt-1"; ramdisk = "ramdisk-1";
      signature-1 { algo = "sha256,rsa2048"; key-name-hint = "dev"; sign-images = "fdt", "kernel", "ramdisk"; };
    };
  };
};
`,
    );
    const out = join(dir, 'boot.itb');
    execFileSync('mkimage', ['-f', 'boot.its', '-k', '.', '-K', 'keys.dtb', '-r', 'boot.itb'], { cwd: dir, env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' }, stdio: 'ignore' });
    const theirFit = new Uint8Array(readFileSync(out));
    const keys = requiredConfKeys(readPublicKeysFromDtb(new Uint8Array(readFileSync(join(dir, 'keys.dtb')))));
    expect(keys.map((k) => k.keyName)).toEqual(['dev']);
    const v = verifyFit(theirFit, keys);
    expect(v.signatures).toEqual([{ keyName: 'dev', node: 'signature-1' }]);
    expect(v.images.map((i) => [i.role, i.name, hex(i.data)])).toEqual([
      ['kernel', 'kernel-1', hex(input.kernel.data)],
      ['fdt', 'fdt-1', hex(input.fdt.data)],
      ['ramdisk', 'ramdisk-1', hex(input.ramdisk.data)],
    ]);
    // and the same FIT with one kernel byte flipped is refused by ours
    const at = Buffer.from(theirFit).indexOf(Buffer.from(input.kernel.data));
    const bad = theirFit.slice();
    bad[at + 100]! ^= 0x01;
    expect(codeOf(() => verifyFit(bad, keys))).toBe('E_FIT_HASH_MISMATCH');
    expect(codeOf(() => verifyFit(theirFit, [{ keyName: 'other', publicKey: other.publicKey() }]))).toBe('E_FIT_SIGNATURE_INVALID');
  });

  it.skipIf(skipUnlessCi(HAVE.mkimage && HAVE.openssl))('a validly signed FIT whose kernel is compressed "zstd" is refused by ours (E_FIT_UNSUPPORTED_COMPRESSION); "lzma" is not', () => {
    const dir = join(work, 'mkimage-compression');
    mkdirSync(dir);
    writeFileSync(join(dir, 'dev.key'), signer.privateKeyPem());
    run('openssl', ['req', '-batch', '-new', '-x509', '-key', join(dir, 'dev.key'), '-out', join(dir, 'dev.crt'), '-subj', '/CN=dev', '-days', '1']);
    writeFileSync(join(dir, 'k.bin'), input.kernel.data);
    writeFileSync(join(dir, 'f.dtb'), input.fdt.data);
    const signed = (compression: string): Uint8Array => {
      writeFileSync(join(dir, 'keys.dtb'), encodeFdt(newFdt(fdtNode(''))));
      writeFileSync(
        join(dir, 'c.its'),
        `/dts-v1/;
/ {
  description = "compression";
  #address-cells = <1>;
  images {
    kernel-1 { description = "k"; data = /incbin/("k.bin"); type = "kernel"; arch = "arm64"; os = "linux"; compression = "${compression}"; load = <0x40400000>; entry = <0x40400000>; hash-1 { algo = "sha256"; }; };
    fdt-1 { description = "f"; data = /incbin/("f.dtb"); type = "flat_dt"; arch = "arm64"; compression = "none"; hash-1 { algo = "sha256"; }; };
  };
  configurations {
    default = "conf-1";
    conf-1 { description = "c"; kernel = "kernel-1"; fdt = "fdt-1";
      signature-1 { algo = "sha256,rsa2048"; key-name-hint = "dev"; sign-images = "fdt", "kernel"; };
    };
  };
};
`,
      );
      execFileSync('mkimage', ['-f', 'c.its', '-k', '.', '-K', 'keys.dtb', '-r', 'c.itb'], { cwd: dir, env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' }, stdio: 'ignore' });
      return new Uint8Array(readFileSync(join(dir, 'c.itb')));
    };
    const zstd = signed('zstd');
    const keys = requiredConfKeys(readPublicKeysFromDtb(new Uint8Array(readFileSync(join(dir, 'keys.dtb')))));
    expect(codeOf(() => verifyFit(zstd, keys))).toBe('E_FIT_UNSUPPORTED_COMPRESSION');
    const lzma = signed('lzma');
    expect(verifyFit(lzma, requiredConfKeys(readPublicKeysFromDtb(new Uint8Array(readFileSync(join(dir, 'keys.dtb'))))))
      .images.find((i) => i.role === 'kernel')!.compression).toBe('lzma');
  });
});

// ---------------------------------------------------------------------------

describe('FIT layout and determinism', () => {
  it('has the documented nodes, properties and signed-node list', () => {
    const root = decodeFdt(itb).root;
    expect(root.properties.map((p) => p.name)).toEqual(['timestamp', 'description', '#address-cells']);
    expect(readU32(getProp(root, 'timestamp')!)).toBe(1_700_000_000);
    expect(findNode(root, '/images')!.children.map((c) => c.name)).toEqual(['kernel', 'ramdisk', 'fdt']);
    const k = findNode(root, '/images/kernel')!;
    expect(k.properties.map((p) => p.name)).toEqual(['description', 'data', 'type', 'arch', 'os', 'compression', 'load', 'entry']);
    expect(readString(getProp(findNode(root, '/images/fdt')!, 'type')!)).toBe('flat_dt');
    expect(findNode(root, '/images/kernel/hash-1')!.properties.map((p) => p.name)).toEqual(['value', 'algo']);
    const conf = findNode(root, '/configurations/conf-1')!;
    expect(readString(getProp(findNode(root, '/configurations')!, 'default')!)).toBe('conf-1');
    expect(conf.properties.map((p) => [p.name, readString(p.value)])).toEqual([
      ['description', 'Signet test boot image'],
      ['kernel', 'kernel'],
      ['fdt', 'fdt'],
      ['ramdisk', 'ramdisk'],
    ]);
    const sig = findNode(root, '/configurations/conf-1/signature-1')!;
    expect(sig.properties.map((p) => p.name)).toEqual(['hashed-strings', 'hashed-nodes', 'timestamp', 'signer-name', 'value', 'algo', 'key-name-hint', 'sign-images']);
    expect(readStringList(getProp(sig, 'sign-images')!)).toEqual(['kernel', 'fdt', 'ramdisk']);
    expect(readStringList(getProp(sig, 'hashed-nodes')!)).toEqual([
      '/',
      '/configurations/conf-1',
      '/images/kernel',
      '/images/kernel/hash-1',
      '/images/fdt',
      '/images/fdt/hash-1',
      '/images/ramdisk',
      '/images/ramdisk/hash-1',
    ]);
    const hs = getProp(sig, 'hashed-strings')!;
    expect(readU32(hs.subarray(0, 4))).toBe(0);
    expect(readU32(hs.subarray(4))).toBe(decodeFdtHeader(itb).sizeDtStrings);
    expect(getProp(sig, 'value')!.length).toBe(FIT_SIGNATURE_BYTES);
  });

  it('is deterministic: same inputs give the same bytes; each input changes them', () => {
    expect(hex(buildFit({ ...input }))).toBe(hex(itb));
    expect(hex(buildFit({ ...input, signer: ForgeRsaSigner.fromPem(signer.privateKeyPem()) }))).toBe(hex(itb));
    expect(hex(buildFit({ ...input, timestamp: input.timestamp + 1 }))).not.toBe(hex(itb));
    expect(hex(buildFit({ ...input, signer: other }))).not.toBe(hex(itb));
    expect(hex(buildFit({ ...input, kernel: { ...input.kernel, entryAddress: 0x40400004 } }))).not.toBe(hex(itb));
  });

  it('signs exactly the U-Boot regions: root, conf-1, images and hash nodes minus data, plus all strings', () => {
    const root = decodeFdt(itb).root;
    const nodes = readStringList(getProp(findNode(root, '/configurations/conf-1/signature-1')!, 'hashed-nodes')!);
    const regions = fdtFindRegions(itb, nodes, ['data', 'data-size', 'data-position', 'data-offset'], { addStringTable: true });
    const h = decodeFdtHeader(itb);
    // The last region runs from some struct offset through the whole strings block.
    const last = regions[regions.length - 1]!;
    expect(last.offset + last.size).toBe(h.offDtStrings + h.sizeDtStrings);
    // No region touches image data or the signature node's properties.
    const covered = (off: number): boolean => regions.some((r) => off >= r.offset && off < r.offset + r.size);
    const path: string[] = [];
    for (const tag of walkFdtTags(itb, h)) {
      if (tag.kind === 'begin') path.push(tag.name);
      if (tag.kind === 'end_node') path.pop();
      if (tag.kind !== 'prop') continue;
      const p = path.join('/') || '/';
      const abs = h.offDtStruct + tag.offset;
      // Covered: every property of a hashed node except data. Not covered: the
      // signature node's own properties, and /configurations' "default"
      // (its node is not on the list; U-Boot signs the configuration, not the choice).
      expect([p, tag.name, covered(abs)]).toEqual([p, tag.name, nodes.includes(p) && tag.name !== 'data']);
    }
    const digest = sha256(regions.map((r) => itb.subarray(r.offset, r.offset + r.size)));
    expect(verifyPkcs1v15Sha256(signer.publicKey(), digest, getProp(findNode(root, '/configurations/conf-1/signature-1')!, 'value')!)).toBe(true);
  });

  it('refuses bad build inputs with E_FIT_BAD_INPUT', () => {
    expect(codeOf(() => buildFit({ ...input, timestamp: 1.5 }))).toBe('E_FIT_BAD_INPUT');
    expect(codeOf(() => buildFit({ ...input, keyName: 'a@b' }))).toBe('E_FIT_BAD_INPUT');
    expect(codeOf(() => buildFit({ ...input, arch: 'x86' as 'arm' }))).toBe('E_FIT_BAD_INPUT');
    expect(codeOf(() => buildFit({ ...input, kernel: { ...input.kernel, loadAddress: 0x1_0000_0000 } }))).toBe('E_FIT_BAD_INPUT');
    expect(codeOf(() => buildFit({ ...input, addressCells: 2, kernel: { ...input.kernel, loadAddress: 0x1_0000_0000n } }))).toBe('OK');
    expect(codeOf(() => buildFit({ ...input, signer: { sign: () => new Uint8Array(255) } }))).toBe('E_FIT_BAD_SIGNATURE_LENGTH');
    // "gzip" must be gzip, "lzma" an LZMA alone stream (not gzip); only "none", "gzip" and "lzma" exist.
    expect(codeOf(() => buildFit({ ...input, kernel: { ...input.kernel, compression: 'gzip' } }))).toBe('E_FIT_BAD_INPUT');
    const gz = new Uint8Array(gzipSync(Buffer.from(input.kernel.data)));
    expect(codeOf(() => buildFit({ ...input, kernel: { ...input.kernel, data: gz, compression: 'lzma' } }))).toBe('E_FIT_BAD_INPUT');
    expect(codeOf(() => buildFit({ ...input, kernel: { ...input.kernel, data: Uint8Array.of(0xff, ...input.kernel.data), compression: 'lzma' } }))).toBe('E_FIT_BAD_INPUT');
    expect(codeOf(() => buildFit({ ...input, kernel: { ...input.kernel, compression: 'zstd' as 'gzip' } }))).toBe('E_FIT_BAD_INPUT');
  });
});

// ---------------------------------------------------------------------------

describe('verifyFit (our U-Boot-equivalent verifier)', () => {
  it('accepts a good FIT and returns its images', () => {
    const v = verifyFit(itb, [devKey]);
    expect(v.configuration).toBe('conf-1');
    expect(v.timestamp).toBe(1_700_000_000);
    expect(v.images.map((i) => [i.role, i.type, i.load, i.entry])).toEqual([
      ['kernel', 'kernel', 0x40400000n, 0x40400000n],
      ['fdt', 'flat_dt', 0x48000000n, undefined],
      ['ramdisk', 'ramdisk', undefined, undefined],
    ]);
    expect(hex(v.images[0]!.data)).toBe(hex(input.kernel.data));
  });

  it('refuses a flipped kernel byte, another key, edited metadata, no keys', () => {
    const at = Buffer.from(itb).indexOf(Buffer.from(input.kernel.data));
    const flipped = itb.slice();
    flipped[at + 7]! ^= 0x20;
    expect(codeOf(() => verifyFit(flipped, [devKey]))).toBe('E_FIT_HASH_MISMATCH');
    expect(codeOf(() => verifyFit(buildFit({ ...input, signer: other }), [devKey]))).toBe('E_FIT_SIGNATURE_INVALID');
    // every required key must verify
    expect(codeOf(() => verifyFit(itb, [devKey, { keyName: 'other', publicKey: other.publicKey() }]))).toBe('E_FIT_SIGNATURE_INVALID');
    expect(codeOf(() => verifyFit(itb, []))).toBe('E_FIT_NO_KEYS');

    // change the kernel load address in place (same length): signed metadata
    const t = decodeFdt(itb);
    const k = findNode(t.root, '/images/kernel')!;
    k.properties.find((p) => p.name === 'load')!.value = u32Value(0x40480000);
    expect(codeOf(() => verifyFit(encodeFdt(t), [devKey]))).toBe('E_FIT_SIGNATURE_INVALID');
  });

  it('fails closed on unit addresses, bad algorithms, hashed-nodes tricks and missing pieces', () => {
    const edit = (f: (root: FdtNode) => void): Uint8Array => {
      const t = decodeFdt(itb);
      f(t.root);
      return encodeFdt(t);
    };
    const sigOf = (r: FdtNode): FdtNode => findNode(r, '/configurations/conf-1/signature-1')!;
    expect(codeOf(() => verifyFit(edit((r) => (findNode(r, '/images/kernel')!.name = 'kernel@1')), [devKey]))).toBe('E_FIT_UNIT_ADDRESS');
    expect(codeOf(() => verifyFit(edit((r) => (sigOf(r).properties.find((p) => p.name === 'algo')!.value = stringValue('sha1,rsa2048'))), [devKey]))).toBe('E_FIT_UNSUPPORTED_ALGO');
    expect(codeOf(() => verifyFit(edit((r) => (findNode(r, '/images/ramdisk/hash-1')!.properties.find((p) => p.name === 'algo')!.value = stringValue('crc32'))), [devKey]))).toBe('E_FIT_SIGNATURE_INVALID');
    expect(codeOf(() => verifyFit(edit((r) => (sigOf(r).properties.find((p) => p.name === 'hashed-nodes')!.value = stringListValue(['/', '/configurations/conf-1', '/images/kernel', '/images/kernel/hash-1']))), [devKey]))).toBe('E_FIT_HASHED_NODES_MISMATCH');
    expect(codeOf(() => verifyFit(edit((r) => (sigOf(r).properties = sigOf(r).properties.filter((p) => p.name !== 'hashed-strings'))), [devKey]))).toBe('E_FIT_BAD_HASHED_STRINGS');
    expect(codeOf(() => verifyFit(edit((r) => (sigOf(r).properties.find((p) => p.name === 'hashed-strings')!.value = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 8]))), [devKey]))).toBe('E_FIT_BAD_HASHED_STRINGS');
    expect(codeOf(() => verifyFit(edit((r) => (findNode(r, '/configurations/conf-1')!.children = [])), [devKey]))).toBe('E_FIT_NO_SIGNATURE');
    expect(codeOf(() => verifyFit(edit((r) => (findNode(r, '/configurations')!.properties = [])), [devKey]))).toBe('E_FIT_NO_CONFIG');
    expect(codeOf(() => verifyFit(itb, [devKey], { configuration: 'conf-2' }))).toBe('E_FIT_NO_CONFIG');
    expect(codeOf(() => verifyFit(edit((r) => (r.children = r.children.filter((c) => c.name !== 'images'))), [devKey]))).toBe('E_FIT_NOT_A_FIT');
    expect(codeOf(() => verifyFit(encodeFdt(newFdt(fdtNode(''))), [devKey]))).toBe('E_FIT_NOT_A_FIT');
    expect(codeOf(() => verifyFit(itb.subarray(0, 100), [devKey]))).toBe('E_FDT_TRUNCATED');
  });

  it('every single-bit flip outside the signature node (and unused header words) is refused', () => {
    const h = decodeFdtHeader(itb);
    let sigStart = -1;
    let sigEnd = -1;
    const path: string[] = [];
    for (const tag of walkFdtTags(itb, h)) {
      if (tag.kind === 'begin') {
        path.push(tag.name);
        if (tag.name === 'signature-1') sigStart = h.offDtStruct + tag.next; // after its name: the BEGIN tag itself is signed
      } else if (tag.kind === 'end_node') {
        if (path[path.length - 1] === 'signature-1') sigEnd = h.offDtStruct + tag.offset;
        path.pop();
      }
    }
    expect(sigStart).toBeGreaterThan(0);
    // version, last_comp_version and boot_cpuid_phys mean nothing to a FIT and are not signed (nor by U-Boot)
    const unsignedHeader = (i: number): boolean => i >= 20 && i < 32;
    // Alignment padding after an unsigned value (image data, /configurations default) is
    // not signed either, but it is not part of any value: the decoded tree is unchanged.
    const original = decodeFdt(itb);
    const sameTree = (m: Uint8Array): boolean => {
      try {
        expect(decodeFdt(m)).toEqual(original);
        return true;
      } catch {
        return false;
      }
    };
    const accepted: number[] = [];
    for (let i = 0; i < itb.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const m = itb.slice();
        m[i]! ^= bit;
        let ok = false;
        try {
          verifyFit(m, [devKey]);
          ok = true;
        } catch (e) {
          if (!(e instanceof FitError || e instanceof FdtError)) throw e;
        }
        if (ok && !((i >= sigStart && i < sigEnd) || unsignedHeader(i) || sameTree(m))) accepted.push(i);
      }
    }
    expect(accepted).toEqual([]);
  });
});

// ---------------------------------------------------------------------------

describe('public-key device tree', () => {
  it('holds the U-Boot key properties with correct Montgomery values', () => {
    const node = publicKeyNode(signer.publicKey(), 'dev');
    expect(node.name).toBe('key-dev');
    expect(node.properties.map((p) => p.name)).toEqual(['required', 'algo', 'rsa,r-squared', 'rsa,modulus', 'rsa,exponent', 'rsa,n0-inverse', 'rsa,num-bits', 'key-name-hint']);
    const n = BigInt('0x' + hex(signer.publicKey().modulus));
    expect(readU32(getProp(node, 'rsa,num-bits')!)).toBe(2048);
    const n0inv = BigInt(readU32(getProp(node, 'rsa,n0-inverse')!));
    expect(((n * n0inv) + 1n) % (1n << 32n)).toBe(0n); // n0inv = -1/n mod 2^32
    expect(BigInt('0x' + hex(getProp(node, 'rsa,r-squared')!))).toBe((1n << 4096n) % n);
    expect(BigInt('0x' + hex(getProp(node, 'rsa,modulus')!))).toBe(n);
    expect(readU64(getProp(node, 'rsa,exponent')!)).toBe(65537n);
    expect(readString(getProp(node, 'required')!)).toBe('conf');
    expect(readString(getProp(node, 'algo')!)).toBe('sha256,rsa2048');
  });

  it.skipIf(skipUnlessCi(HAVE.qemu && HAVE.dtc))("merges into QEMU's own DTB keeping every other node, its size, and one key per name", () => {
    const dumped = join(work, 'qemu.dtb');
    execFileSync('qemu-system-aarch64', ['-M', `virt,dumpdtb=${dumped}`, '-cpu', 'cortex-a57', '-m', '1024', '-nic', 'none', '-bios', '/usr/lib/u-boot/qemu_arm64/u-boot.bin', '-display', 'none'], { stdio: 'ignore' });
    const qemuDtb = new Uint8Array(readFileSync(dumped));
    const merged = mergePublicKeyIntoDtb(qemuDtb, signer.publicKey(), 'dev');
    expect(merged.length).toBe(qemuDtb.length); // QEMU pads to 1 MiB; we keep that
    const twice = mergePublicKeyIntoDtb(merged, other.publicKey(), 'dev'); // same name → replaced
    const keys = readPublicKeysFromDtb(twice);
    expect(keys.map((k) => k.keyName)).toEqual(['dev']);
    expect(hex(keys[0]!.publicKey.modulus)).toBe(hex(other.publicKey().modulus));
    // Everything but /signature is what QEMU generated, per dtc.
    const t = decodeFdt(merged);
    t.root.children = t.root.children.filter((c) => c.name !== 'signature');
    writeFileSync(join(work, 'merged-stripped.dtb'), encodeFdt(t));
    expect(run('dtc', ['-I', 'dtb', '-O', 'dts', join(work, 'merged-stripped.dtb')])).toBe(run('dtc', ['-I', 'dtb', '-O', 'dts', dumped]));
    expect(readPublicKeysFromDtb(merged)).toEqual([{ keyName: 'dev', algo: 'sha256,rsa2048', required: 'conf', publicKey: signer.publicKey() }]);
  });

  it('refuses key nodes whose Montgomery values do not match the modulus', () => {
    const t = decodeFdt(publicKeyDtb(signer.publicKey(), 'dev'));
    const key = findNode(t.root, '/signature/key-dev')!;
    key.properties.find((p) => p.name === 'rsa,n0-inverse')!.value = u32Value(1);
    expect(codeOf(() => readPublicKeysFromDtb(encodeFdt(t)))).toBe('E_FIT_BAD_KEY');
    key.properties.find((p) => p.name === 'algo')!.value = stringValue('sha256,rsa4096');
    expect(codeOf(() => readPublicKeysFromDtb(encodeFdt(t)))).toBe('E_FIT_UNSUPPORTED_ALGO');
    expect(codeOf(() => publicKeyNode({ modulus: new Uint8Array(128).fill(0xff), exponent: new Uint8Array([1, 0, 1]) }, 'dev'))).toBe('E_FIT_BAD_KEY');
  });
});

describe('RSA adapter (node-forge) and PKCS#1 v1.5', () => {
  it("signs digests that Node's own crypto verifies, and loads openssl PEM keys", () => {
    const msg = new TextEncoder().encode('signet');
    const jwk = (s: ForgeRsaSigner) => ({
      kty: 'RSA',
      n: Buffer.from(s.publicKey().modulus).toString('base64url'),
      e: Buffer.from(s.publicKey().exponent).toString('base64url'),
    });
    const sig = signer.sign(sha256([msg]));
    expect(sig.length).toBe(256);
    expect(nodeVerify('sha256', msg, createPublicKey({ key: jwk(signer), format: 'jwk' }), sig)).toBe(true);
    expect(verifyPkcs1v15Sha256(signer.publicKey(), sha256([msg]), sig)).toBe(true);
    expect(verifyPkcs1v15Sha256(other.publicKey(), sha256([msg]), sig)).toBe(false);
    expect(codeOf(() => signer.sign(new Uint8Array(20)))).toBe('E_FIT_BAD_INPUT');
    expect(codeOf(() => ForgeRsaSigner.fromPem('not a key'))).toBe('E_FIT_BAD_KEY');
    if (HAVE.openssl) {
      const pemFile = join(work, 'openssl.pem');
      run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', pemFile]);
      const loaded = ForgeRsaSigner.fromPem(readFileSync(pemFile, 'utf8'));
      const s2 = loaded.sign(sha256([msg]));
      expect(nodeVerify('sha256', msg, createPublicKey(readFileSync(pemFile, 'utf8')), s2)).toBe(true);
    }
  });

  it('derives n0-inverse and r-squared exactly, for moduli of every residue mod 8', () => {
    // Independent formulas: odd residues mod 2^32 form a group of exponent 2^30,
    // so n^-1 = n^(2^30 - 1) mod 2^32; r-squared is plain (2^bits)^2 mod n.
    const modPow = (b: bigint, e: bigint, m: bigint): bigint => {
      let r = 1n;
      for (b %= m; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
      return r;
    };
    const two32 = 1n << 32n;
    const base = (1n << 2047n) + 0x1234567n * 16n;
    for (const n of [base + 1n, base + 3n, base + 5n, base + 7n, (1n << 2048n) - 1n]) {
      const modulus = Uint8Array.from(Buffer.from(n.toString(16).padStart(512, '0'), 'hex'));
      const p = ubootRsaParams({ modulus, exponent: new Uint8Array([1, 0, 1]) });
      expect(BigInt(p.n0Inverse)).toBe((two32 - modPow(n, (1n << 30n) - 1n, two32)) % two32);
      expect(BigInt('0x' + hex(p.rSquared))).toBe((1n << 4096n) % n);
      expect(p.numBits).toBe(2048);
    }
  });

  it('encodes EMSA-PKCS1-v1_5 as RFC 8017 says', () => {
    const em = emsaPkcs1v15Sha256(new Uint8Array(32).fill(0xab), 256);
    expect(hex(em.subarray(0, 2))).toBe('0001');
    expect(em.subarray(2, 256 - 52).every((b) => b === 0xff)).toBe(true);
    expect(hex(em.subarray(256 - 52))).toBe('003031300d060960864801650304020105000420' + 'ab'.repeat(32));
    expect(ubootRsaParams(signer.publicKey()).numBits).toBe(2048);
  });
});
