/** What can go wrong while building the native host. */
import { unhintedError } from '../../sdk/util/errors';
export type NativeBuildErrorCode =
  | 'E_NATIVE_TARGET' // unknown build target
  | 'E_NATIVE_CC_MISSING' // the (cross) compiler for the target is not installed
  | 'E_NATIVE_ENGINE_MISSING' // duktape-dev did not contain the engine source
  | 'E_NATIVE_LIB_MISSING' // a -dev package (libsodium-dev, libuv1-dev) lacked its static archive or header
  | 'E_NATIVE_SOURCE_MISSING' // host.c is not where the SDK expects it
  | 'E_NATIVE_SOURCE' // a pinned library source package could not be downloaded, did not match its sha256 or did not unpack
  | 'E_NATIVE_COMPILE'; // the compiler or linker failed

export class NativeBuildError extends unhintedError<NativeBuildErrorCode>('NativeBuildError') {}
