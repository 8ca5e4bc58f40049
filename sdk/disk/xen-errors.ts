/** What can go wrong while preparing or booting a Xen dom0less guest. Closed set. */
import { CodedError } from '../util/errors';

export type XenErrorCode =
  | 'E_XEN_PACKAGE' // the Xen package does not hold exactly one hypervisor image
  | 'E_XEN_BOARD' // the board is not a Xen board QEMU can run (hypervisor, arch, qemu section)
  | 'E_XEN_ADDRESS' // a boot module or the device tree does not fit where the board says
  | 'E_XEN_DTB' // the platform device tree lacks what dom0less needs (/chosen, /memory)
  | 'E_XEN_INPUT' // neither or both of an app image and a disk image were given, or root.json is missing
  | 'E_XEN_GUEST' // the guest booted but did not run its app
  | 'E_XEN_SOURCE' // Xen's pinned source package: unknown version, download failed or a sha256 mismatch
  | 'E_XEN_CONFIG' // boards/<id>/xen.config is missing or malformed, or an option it sets lost its value
  | 'E_XEN_BUILD' // building Xen from source failed (toolchain, dpkg-source, make)
  | 'E_XEN_NET'; // a network was asked of a Xen board that cannot give its DomU one (Debian's binary Xen or kernel)

export class XenError extends CodedError<XenErrorCode> {
  constructor(code: XenErrorCode, message: string, hint: string, cause?: unknown) {
    super('XenError', code, message, hint, cause);
  }
}
