/**
 * The device's signet-host (bootloader/native/device.ts): the pinned library sources are refused
 * when their bytes differ from the pin (downloaded or already cached), and the built /init for
 * arm64 and armhf links musl, not glibc.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildNativeHost, nativeHostTcb, type NativeTarget } from '../bootloader/native/build';
import { NativeBuildError } from '../bootloader/native/errors';
import { fetchNativeSource, NATIVE_SOURCES, type NativeSourcePin } from '../bootloader/native/sources';

const work = mkdtempSync(join(tmpdir(), 'signet-native-src-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A pinned two-file "source package" served from a local folder laid out like the pool. */
function localPool(name: string): { pin: NativeSourcePin; base: string; pool: string } {
  const base = join(work, name, 'mirror');
  const pool = join(base, 'x', 'xpkg');
  mkdirSync(pool, { recursive: true });
  const files = ['xpkg_1.0-1.dsc', 'xpkg_1.0.orig.tar.gz'].map((f) => {
    const bytes = Buffer.from(`contents of ${f}\n`);
    writeFileSync(join(pool, f), bytes);
    return { name: f, sha256: sha(bytes), bytes: bytes.length };
  });
  return { pin: { pkg: 'xpkg', version: '1.0-1', pool: 'x/xpkg/', files, marker: 'x' }, base: pathToFileURL(base).href + '/', pool };
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(NativeBuildError);
    return (e as NativeBuildError).code;
  }
}

describe('pinned library sources (bootloader/native/sources.ts)', () => {
  it('takes files matching their pins into the cache', async () => {
    const { pin, base } = localPool('good');
    const cache = join(work, 'good', 'cache');
    const dir = await fetchNativeSource(pin, cache, base);
    expect(readdirSync(dir).sort()).toEqual(pin.files.map((f) => f.name).sort());
  });

  it('refuses a tampered download with E_NATIVE_SOURCE and keeps nothing of it', async () => {
    const { pin, base, pool } = localPool('tampered');
    writeFileSync(join(pool, pin.files[1]!.name), 'contents of xpkg_1.0.orig.tar.gz\n/* one more line */\n');
    const cache = join(work, 'tampered', 'cache');
    expect(await code(fetchNativeSource(pin, cache, base))).toBe('E_NATIVE_SOURCE');
    const dir = join(cache, 'native-src', 'xpkg_1.0-1');
    expect(existsSync(join(dir, pin.files[1]!.name))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes(pin.files[1]!.name))).toEqual([]);
  });

  it('refuses a cached file changed after it was checked', async () => {
    const { pin, base } = localPool('cached');
    const cache = join(work, 'cached', 'cache');
    const dir = await fetchNativeSource(pin, cache, base);
    const f = join(dir, pin.files[0]!.name);
    writeFileSync(f, readFileSync(f, 'utf8').replace('contents', 'content5'));
    expect(await code(fetchNativeSource(pin, cache, base))).toBe('E_NATIVE_SOURCE');
  });

  it('pins bookworm sources of the -dev package versions: .dsc first, sha256 and size for each file', () => {
    for (const pin of Object.values(NATIVE_SOURCES)) {
      expect(pin.files[0]!.name).toBe(`${pin.pkg}_${pin.version}.dsc`);
      for (const f of pin.files) {
        expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(f.bytes).toBeGreaterThan(0);
      }
    }
    expect(NATIVE_SOURCES.mbedtls.version).toBe('2.28.3-1');
    expect(NATIVE_SOURCES.libuv.version).toBe('1.44.2-1+deb12u1');
    expect(NATIVE_SOURCES.libsodium.version).toBe('1.0.18-1+deb12u1');
  });
});

describe.each(['arm64', 'armhf'] as NativeTarget[])('the device /init for %s', (target) => {
  it('links musl and the source-built libraries, no glibc', async () => {
    const binary = await buildNativeHost(target);
    const bytes = readFileSync(binary);
    // glibc's static libc carries its symbol-version and tunables strings; musl's strerror table says "No error information".
    expect(bytes.includes('GLIBC_')).toBe(false);
    expect(bytes.includes('GNU C Library')).toBe(false);
    expect(bytes.includes('No error information')).toBe(true);
    const tcb = await nativeHostTcb(binary);
    const libs = Object.fromEntries(tcb.parts.map((p) => [p.library, p]));
    expect(libs.libc).toBeUndefined();
    expect(Object.keys(libs.musl!.members)).toEqual(expect.arrayContaining(['libc.a', 'crt1.o']));
    expect(Object.keys(libs.mbedtls!.members)).toEqual(['libmbedtls.a']);
    expect(Object.keys(libs.libuv!.members)).toEqual(['libuv.a']);
    expect(Object.keys(libs.libsodium!.members)).toEqual(['libsodium.a']);
    // Smaller than the glibc build (2.1 MB on arm64) by far.
    expect(tcb.fileBytes).toBeLessThan(800_000);
  }, 600_000);
});
