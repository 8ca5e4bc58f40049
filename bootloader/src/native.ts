/**
 * The native calls the C host (bootloader/native/host.c) gives the boot stage as the global
 * `signet_native`. On Node, `node-host.ts` provides the same object so that the *same* ES5
 * bundle runs on both engines (the differential test compares their logs and flash).
 */
import type { UvBinding } from '../../sdk/runtime/binding';
import type { BlockDevice } from './block';

export interface SignetNative {
  print(line: string): void;
  blockOpen(path: string, writable: boolean): number;
  blockSize(h: number): number;
  blockRead(h: number, offset: number, length: number): Uint8Array;
  blockWrite(h: number, offset: number, data: Uint8Array): void;
  blockFlush(h: number): void;
  blockClose(h: number): void;
  readFile(path: string): Uint8Array;
  monotonicMs(): number;
  nowSeconds(): number;
  random(n: number): Uint8Array;
  sha256(data: Uint8Array): Uint8Array;
  /**
   * Plain ed25519 (RFC 8032, no context): libsodium in the C host, OpenSSL with the same
   * encoding rules on Node (sdk/image/ed25519-rules.ts). False, never a throw, for anything
   * malformed.
   */
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  /**
   * RSASSA-PKCS1-v1_5 with SHA-256 over a precomputed digest (a FIT's configuration signature):
   * mbedTLS in the C host, sdk/fit/pkcs1.ts on Node. False, never a throw, for a signature that
   * does not verify and for inputs that are not an RSA-2048 key (modulus 256 bytes, top bit set,
   * odd), an odd exponent of 1..4 bytes (≥ 3), a 32-byte digest and a 256-byte signature.
   * Absent on hosts built before it: the agent then refuses boot images (E_BOOT_FIT_KEY).
   */
  rsaVerify?(modulus: Uint8Array, exponent: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean;
  evalScript(source: string, filename: string): unknown;
  /** Set by the boot stage: the host calls it to name a throwing handler's file and line. */
  where?: (file: string, line: number) => string;
  powerOff(): void;
  reboot(): void;
  exit(code: number): void;
  args: string[];
  isPid1: boolean;
  arch: string;
  /** The event loop (libuv): timers, TCP, UDP. Absent on hosts without one (node-host.ts). */
  uv?: UvBinding;
}

/** A device node or disk-image file through the native block calls. */
export class NativeBlockDevice implements BlockDevice {
  readonly sectorSize: number;
  readonly sectorCount: number;
  /** The board's flash.eraseBlockSize (NOR behind mtdblock): the state partition is laid out by it. */
  readonly eraseBlockSize?: number;
  private readonly n: SignetNative;
  private readonly h: number;

  constructor(n: SignetNative, path: string, sectorSize: number, eraseBlockSize?: number) {
    this.n = n;
    this.h = n.blockOpen(path, true);
    this.sectorSize = sectorSize;
    if (eraseBlockSize) this.eraseBlockSize = eraseBlockSize;
    this.sectorCount = Math.floor(n.blockSize(this.h) / sectorSize);
  }

  read(sector: number, count: number): Uint8Array {
    return this.n.blockRead(this.h, sector * this.sectorSize, count * this.sectorSize);
  }

  write(sector: number, data: Uint8Array): void {
    this.n.blockWrite(this.h, sector * this.sectorSize, data);
  }

  flush(): void {
    this.n.blockFlush(this.h);
  }
}
