/**
 * The crypto the verifier needs, as a small interface with two implementations:
 * `crypto-node.ts` (Node's native OpenSSL) and `crypto-purejs.ts` (tweetnacl + our SHA-256),
 * the latter being what the boot stage runs on ES5 engines. Tests prove they agree.
 */
export interface ImageCrypto {
  readonly name: string;
  sha256(data: Uint8Array): Uint8Array;
  /** Incremental hashing for payloads read in chunks. */
  sha256Stream(): { update(chunk: Uint8Array): void; digest(): Uint8Array };
  /** Plain ed25519 (RFC 8032, not ph/ctx). Must return false, never throw, on malformed input. */
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}
