/**
 * Boots an A/B disk (`signet disk --boot-ab`) through Debian's U-Boot in QEMU the way a device
 * would: the A/B bootcmd (sdk/disk/boot-ab.ts) in U-Boot's environment, the FIT key in its
 * control DTB, and no `-no-reboot`, so a kernel panic (panic=-1) resets into U-Boot again.
 * Returns everything the console printed once QEMU exits (the boot stage powers off in test mode).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Board } from '../../sdk/board';
import { mergePublicKeyIntoDtb, readPublicKeysFromDtb } from '../../sdk/fit/keydtb';
import { abUbootEnv, type AbLayout } from '../../sdk/disk/boot-ab';
import { boardFirmware, bootControlDtb, checkQemuInstalled, dumpMachineDtb, GuestConsole, machineArgs } from '../../sdk/disk/qemu';
import { UBOOT_ENV_SIZE, VIRT_PFLASH_BANK_BYTES } from '../../sdk/disk/run-arm64';
import { encodeUbootEnv } from '../../sdk/disk/uboot-env';

export async function bootAbDisk(board: Board, ab: AbLayout, disk: string, keyDtb: Uint8Array, timeoutMs: number): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'signet-ab-'));
  let out = '';
  try {
    let control = bootControlDtb(await dumpMachineDtb(board));
    for (const k of readPublicKeysFromDtb(keyDtb)) control = mergePublicKeyIntoDtb(control, k.publicKey, k.keyName);
    writeFileSync(join(work, 'u-boot.dtb'), control);
    const env = new Uint8Array(VIRT_PFLASH_BANK_BYTES).fill(0xff);
    env.set(encodeUbootEnv({ bootdelay: '0', ...abUbootEnv(board, ab, Number(board.serial!.loadAddress)) }, UBOOT_ENV_SIZE), 0);
    writeFileSync(join(work, 'pflash1.img'), env);
    const guest = await GuestConsole.start({
      system: checkQemuInstalled(board),
      args: [
        ...machineArgs(board),
        '-bios', boardFirmware(board),
        '-dtb', join(work, 'u-boot.dtb'),
        '-drive', `if=pflash,unit=1,format=raw,file=${join(work, 'pflash1.img')}`,
        '-drive', `if=none,id=flash,format=raw,file=${disk}`, '-device', 'virtio-blk-device,drive=flash',
      ],
      onOutput: (c) => (out += c),
    });
    try {
      await guest.waitExit(timeoutMs);
    } finally {
      await guest.close();
    }
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
