/**
 * Test rig (tests only): the xen-arm32 board powered on into its U-Boot, for `signet flash`.
 * Debian's U-Boot for qemu_arm runs as QEMU's firmware (`-bios`, which QEMU puts in NOR bank 0,
 * so bank 0 takes no drive), and the board's flash is NOR bank 1 backed by `flashFile`, exactly as
 * Xen's boot flow later gets it (`-drive if=pflash,unit=1`). The console is a unix socket that
 * QEMU serves and waits on (`wait=on`): the CPU starts when the flasher connects, so it sees the
 * board boot from its first line. `powerCut()` is SIGKILL: what the flash holds is what QEMU
 * had written to the file (pflash writes each program and erase through at once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Board } from '../../sdk/board';
import { boardFirmware, checkQemuInstalled, machineArgs } from '../../sdk/disk/qemu';

export class NorBoard {
  readonly exited: Promise<number | null>;
  private stderr = '';

  private constructor(
    private readonly dir: string,
    private readonly qemu: ChildProcess,
    /** `unix:/…/console.sock`: `signet flash --port`. */
    readonly address: string,
  ) {
    qemu.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => {
      qemu.on('exit', (code) => resolve(code));
      qemu.on('error', () => resolve(null));
    });
  }

  static async powerOn(board: Board, flashFile: string): Promise<NorBoard> {
    const dir = mkdtempSync(join(tmpdir(), 'signet-nor-'));
    const sock = join(dir, 'console.sock');
    const qemu = spawn(
      checkQemuInstalled(board),
      [
        ...machineArgs(board),
        '-bios', boardFirmware(board),
        '-drive', `if=pflash,unit=1,format=raw,file=${flashFile}`,
        '-chardev', `socket,id=con,path=${sock},server=on,wait=on`,
        '-serial', 'chardev:con',
        '-display', 'none',
        '-monitor', 'none',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const rig = new NorBoard(dir, qemu, `unix:${sock}`);
    for (let waited = 0; !existsSync(sock); waited += 50) {
      if (qemu.exitCode !== null || waited > 30_000) throw new Error(`QEMU did not start: ${rig.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return rig;
  }

  /** Pulls the plug. */
  async powerCut(): Promise<void> {
    this.qemu.kill('SIGKILL');
    await this.exited;
  }

  /** A clean power-off (QEMU closes the flash file). */
  async stop(): Promise<void> {
    if (this.qemu.exitCode === null && this.qemu.signalCode === null) this.qemu.kill('SIGTERM');
    await this.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
