/**
 * The DomU's network: QEMU's `virtio-net-device` (virtio over MMIO) on the user-mode network,
 * passed through by Xen to the direct-mapped DomU. No dom0, no netback: the guest drives the
 * device itself (virtio-mmio + virtio-net in boards/xen-arm32/kernel.config) and /init gets its
 * address by DHCP from QEMU (10.0.2.15, the host is 10.0.2.2), as on arm64.
 *
 * A virtio NIC does DMA: its rings and buffers are guest addresses, which QEMU reads as host
 * physical ones. That works here because the DomU is direct-mapped (Xen built from source with
 * CONFIG_STATIC_MEMORY, /chosen/domU1 `xen,static-mem` + `direct-map`): guest physical == host
 * physical. QEMU virt has no SMMU for arm32, so the partial tree says
 * `xen,force-assign-without-iommu`; on a real SoC the NIC must sit behind an SMMU (docs/xen.md).
 *
 * QEMU `virt` (hw/arm/virt.c) has 32 virtio-mmio transports of 0x200 bytes from 0x0a000000, on
 * SPIs 16..47; the first `-device virtio-*-device` lands on the highest one (0x0a003e00, SPI 47),
 * and that is the one passed through: Xen maps its 4 KiB page (xen,reg, 1:1) and routes its SPI
 * (xen,path names the host node).
 */
import type { Board } from '../board';
import { cellsValue, fdtNode, fdtProp, getProp, readU32, stringProp, u32Prop, type Fdt, type FdtNode } from '../fit/fdt';
import { checkForwards, type GuestNetwork } from './network';
import { hex, rootChildRanges } from './xen-dt';
import { XenError } from './xen-errors';

/** QEMU virt's virtio-mmio transports (hw/arm/virt.c VIRT_MMIO, NUM_VIRTIO_TRANSPORTS, irqmap). */
export const QEMU_VIRT_MMIO = { base: 0x0a000000, stride: 0x200, count: 32, firstSpi: 16 } as const;
const PAGE = 0x1000;

/** The phandle of the partial tree's /gic placeholder (Xen's own default, GUEST_PHANDLE_GIC). */
export const PARTIAL_GIC_PHANDLE = 65000;

export interface PassthroughNic {
  /** The host tree's node, e.g. /virtio_mmio@a003e00 (xen,path). */
  hostPath: string;
  address: number;
  size: number;
  /** The 4 KiB page Xen maps (1:1: the DomU is direct-mapped). */
  page: number;
  /** The SPI number (GIC interrupt = 32 + spi) and its trigger flags, as the host node says. */
  spi: number;
  flags: number;
}

/**
 * Whether the board can give its DomU a network: Xen built from source (static memory,
 * direct-map) and the DomU kernel built with virtio-mmio/virtio-net. E_XEN_NET otherwise.
 */
export function checkXenNetwork(board: Board): void {
  if (board.xen?.source !== 'debian-source') {
    throw new XenError('E_XEN_NET', `board ${board.id} boots Debian's binary Xen (xen.source "${board.xen?.source ?? 'debian-binary'}"), which has no static memory for a direct-mapped DomU, so its DomU gets no network`, 'set xen.source to "debian-source" (docs/xen.md), or boot without --net');
  }
  if (board.kernel.source !== 'debian-source') {
    throw new XenError('E_XEN_NET', `board ${board.id} boots Debian's binary kernel, which is not built for the passed-through virtio-mmio NIC`, 'set kernel.source to "debian-source", or boot without --net');
  }
}

/** Whether the board's DomU has a NIC to bring up (its initramfs then carries /signet/network). */
export function xenHasNetwork(board: Board): boolean {
  return board.hypervisor === 'xen' && board.xen?.source === 'debian-source' && board.kernel.source === 'debian-source';
}

/** The transport QEMU puts the first virtio device on, checked against the host tree (E_XEN_DTB). */
export function passthroughNic(platform: Fdt): PassthroughNic {
  const m = QEMU_VIRT_MMIO;
  const index = m.count - 1;
  const address = m.base + index * m.stride;
  const name = `virtio_mmio@${address.toString(16)}`;
  const node = platform.root.children.find((n) => n.name === name);
  const compat = node && getProp(node, 'compatible');
  const irq = node && getProp(node, 'interrupts');
  const reg = node ? rootChildRanges(platform, node) : [];
  if (!node || !compat || !irq || irq.length !== 12 || reg.length !== 1 || reg[0]!.address !== address || reg[0]!.size !== m.stride) {
    throw new XenError('E_XEN_DTB', `the platform device tree has no virtio-mmio transport /${name} (reg ${hex(address)}+${hex(m.stride)}, one interrupt)`, 'boot QEMU virt, whose transports the NIC passthrough assumes');
  }
  const type = readU32(irq.subarray(0, 4), `/${name} interrupts`);
  const spi = readU32(irq.subarray(4, 8), `/${name} interrupts`);
  if (type !== 0 || spi !== m.firstSpi + index) {
    throw new XenError('E_XEN_DTB', `/${name} interrupts is type ${type} number ${spi}, not SPI ${m.firstSpi + index}`, 'boot QEMU virt');
  }
  return { hostPath: `/${name}`, address, size: m.stride, page: address & ~(PAGE - 1), spi, flags: readU32(irq.subarray(8, 12), `/${name} interrupts`) };
}

/**
 * The NIC's node in the partial tree (under /passthrough), 1:1:
 *
 *   virtio_mmio@a003e00 { compatible = "virtio,mmio"; reg = <0 0x0a003e00 0 0x200>;
 *     interrupt-parent = <&gic>; interrupts = <0 47 1>; dma-coherent;
 *     xen,reg = <0 0x0a003000 0 0x1000 0 0x0a003000>; xen,path = "/virtio_mmio@a003e00";
 *     xen,force-assign-without-iommu; };
 */
export function nicNode(n: PassthroughNic): FdtNode {
  return fdtNode(n.hostPath.slice(1), [
    stringProp('compatible', 'virtio,mmio'),
    fdtProp('reg', cellsValue([0, n.address, 0, n.size], 1)),
    u32Prop('interrupt-parent', PARTIAL_GIC_PHANDLE),
    fdtProp('interrupts', cellsValue([0, n.spi, n.flags], 1)),
    fdtProp('dma-coherent', new Uint8Array(0)),
    fdtProp('xen,reg', cellsValue([0, n.page, 0, PAGE, 0, n.page], 1)),
    stringProp('xen,path', n.hostPath),
    fdtProp('xen,force-assign-without-iommu', new Uint8Array(0)),
  ]);
}

/** The /gic placeholder Xen replaces by the guest's GIC node (docs/misc/arm/passthrough.txt). */
export function gicPlaceholder(): FdtNode {
  return fdtNode('gic', [u32Prop('#interrupt-cells', 3), fdtProp('interrupt-controller', new Uint8Array(0)), u32Prop('phandle', PARTIAL_GIC_PHANDLE)]);
}

/** QEMU options: the NIC on the user-mode network, host ports forwarded on 127.0.0.1 only. */
export function xenNetworkArgs(n: GuestNetwork): string[] {
  checkForwards(n.forwards);
  const fwd = n.forwards.map((f) => `,hostfwd=${f.proto}:127.0.0.1:${f.host}-:${f.guest}`).join('');
  return ['-netdev', `user,id=n0${fwd}`, '-device', 'virtio-net-device,netdev=n0'];
}
