/**
 * The C host's `signet_native`, implemented on Node, so the same ES5 boot-stage bundle runs on
 * V8 (here) and on Duktape (bootloader/native). Used by the differential test, the power-cut
 * harness and simulated devices. Halting (powerOff/reboot/exit) ends the run as it would end
 * the guest: nothing after it prints.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { createContext, runInContext } from 'node:vm';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { nodeFitCrypto } from '../sdk/ota/boot-target';
import type { SignetNative } from './src/native';

export type HaltKind = 'poweroff' | 'reboot' | 'exit';

export interface NodeRunOptions {
  args?: string[];
  /** Fixed clock (unix seconds); default the real clock. -1 = no clock. */
  nowSeconds?: number;
  /** Called for every console line as it is printed. */
  onLine?: (line: string) => void;
}

export interface NodeRunResult {
  lines: string[];
  halt: HaltKind | 'returned';
  exitCode?: number;
}

class Halt {
  constructor(readonly kind: HaltKind, readonly code?: number) {}
}

/** Any buffer (ArrayBuffer, typed array, DataView, from any realm) as bytes, as Duktape sees it; else null. */
function bytesOf(x: unknown): Uint8Array | null {
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const tag = Object.prototype.toString.call(x);
  if (tag === '[object ArrayBuffer]' || tag === '[object SharedArrayBuffer]') return new Uint8Array(x as ArrayBuffer);
  return null;
}

export function runBootBundleOnNode(code: string, opts: NodeRunOptions = {}): NodeRunResult {
  const lines: string[] = [];
  let halted: Halt | null = null;
  const fds = new Map<number, number>();
  let nextHandle = 1;
  const halt = (h: Halt): never => {
    halted = halted ?? h;
    for (const fd of fds.values()) closeSync(fd);
    fds.clear();
    throw halted;
  };
  const fdOf = (h: number) => {
    const fd = fds.get(h);
    if (fd === undefined) throw new Error('bad block handle ' + h);
    return fd;
  };
  const native: SignetNative = {
    print(line: string) {
      if (halted) return;
      lines.push(String(line));
      opts.onLine?.(String(line));
    },
    blockOpen(path: string, writable: boolean) {
      const h = nextHandle++;
      fds.set(h, openSync(path, writable ? 'r+' : 'r'));
      return h;
    },
    blockSize: (h) => fstatSync(fdOf(h)).size,
    blockRead(h, offset, length) {
      const b = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fdOf(h), b, got, length - got, offset + got);
        if (n === 0) throw new Error('short read at ' + (offset + got));
        got += n;
      }
      return inner(b);
    },
    blockWrite(h, offset, data) {
      let done = 0;
      while (done < data.length) done += writeSync(fdOf(h), data, done, data.length - done, offset + done);
    },
    blockFlush: (h) => fsyncSync(fdOf(h)),
    blockClose(h) {
      closeSync(fdOf(h));
      fds.delete(h);
    },
    readFile: (p) => inner(readFileSync(p)),
    monotonicMs: () => Number(process.hrtime.bigint() / 1000000n),
    nowSeconds: () => opts.nowSeconds ?? Math.floor(Date.now() / 1000),
    random: (n) => inner(randomBytes(n)),
    sha256: (d) => inner(createHash('sha256').update(d).digest()),
    // OpenSSL behind libsodium's encoding rules (nodeCrypto applies them): the C host's answers.
    ed25519Verify(sig, msg, pub) {
      const s = bytesOf(sig), m = bytesOf(msg), p = bytesOf(pub);
      return s !== null && m !== null && p !== null && nodeCrypto.ed25519Verify(s, m, p);
    },
    // The BigInt verifier of sdk/fit/pkcs1.ts behind the C host's input checks (nodeFitCrypto).
    rsaVerify(modulus, exponent, digest, signature) {
      const n = bytesOf(modulus), e = bytesOf(exponent), d = bytesOf(digest), s = bytesOf(signature);
      return n !== null && e !== null && d !== null && s !== null && nodeFitCrypto.rsaVerify(n, e, d, s);
    },
    evalScript: (source, filename) => runInContext(source, ctx, { filename }),
    powerOff: () => halt(new Halt('poweroff')),
    reboot: () => halt(new Halt('reboot')),
    exit: (c) => halt(new Halt('exit', c)),
    args: opts.args ?? [],
    isPid1: false,
    arch: 'node',
  };
  const ctx = createContext({ signet_native: native });
  // Bytes handed to the script must be the script realm's Uint8Array, as on the device
  // (libraries such as tweetnacl check `instanceof Uint8Array`).
  const InnerU8 = runInContext('Uint8Array', ctx) as Uint8ArrayConstructor;
  function inner(b: Uint8Array): Uint8Array {
    const out = new InnerU8(b.length);
    out.set(b);
    return out;
  }
  try {
    runInContext(code, ctx, { filename: 'boot.js' });
  } catch (e) {
    if (!(e instanceof Halt)) throw e;
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  const h = halted as Halt | null;
  return { lines, halt: h ? h.kind : 'returned', exitCode: h?.code };
}
