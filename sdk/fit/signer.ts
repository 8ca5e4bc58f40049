// What sdk/fit needs from a key: a one-method signer and the public half as
// bytes. The node-forge adapter (rsa.ts) implements these; nothing else here
// touches a private key.

export interface RsaSigner {
  /** RSASSA-PKCS1-v1_5 signature over a SHA-256 digest (32 bytes in, modulus-size bytes out). */
  sign(sha256Digest: Uint8Array): Uint8Array;
}

export interface RsaPublicKey {
  /** Big-endian unsigned modulus, no leading zero byte. */
  modulus: Uint8Array;
  /** Big-endian unsigned public exponent (usually 01 00 01). */
  exponent: Uint8Array;
}
