/** What can go wrong while preparing or booting a Xen dom0less guest. Closed set. */
import { CodedError } from '../util/errors';

export type XenErrorCode =
  | 'E_XEN_PACKAGE' // the Xen package does not hold exactly one hypervisor image
  | 'E_XEN_BOARD' // the board is not a Xen board QEMU can run (hypervisor, arch, qemu section)
  | 'E_XEN_ADDRESS' // a boot module or the device tree does not fit where the board says
  | 'E_XEN_DTB' // the platform device tree lacks what dom0less needs (/chosen, /memory)
  | 'E_XEN_INPUT' // neither or both of an app image and a disk image were given, or root.json is missing
  | 'E_XEN_GUEST'; // the guest booted but did not run its app

export class XenError extends CodedError<XenErrorCode> {
  constructor(code: XenErrorCode, message: string, hint: string, cause?: unknown) {
    super('XenError', code, message, hint, cause);
  }
}
