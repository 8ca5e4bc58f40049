/**
 * Power cuts during the boot-slot write of the device's own agent, in QEMU (issue 13): a device
 * provisioned with an update server that offers it a boot image (boot_a running, boot_b written)
 * is powered on with `signet run` `points` times; each time QEMU is killed with SIGKILL when the
 * console shows that power-on's cut point of the write (`ota[BOOT-WRITE] start`, chunk lines
 * spread over the slot, `ota[BOOT-ARMED]` last), and the next power-on is the restart after it.
 * A last power-on follows the last cut and runs until `done` says so. Used by
 * tests/device-boot-agent-failures and bench/_device-failures.
 */
import { powerOn, type PowerOn } from './device-run';

/** The agent writes a boot slot in chunks of this size, a console line after each (sdk/ota/boot-target-agent.ts BOOT_WRITE_CHUNK). */
const CHUNK = 128 * 1024;

export interface CutRun extends PowerOn {
  /** Where this power-on's cut was aimed: 'start', 'chunk I/N', 'armed' (none: not cut). */
  point?: string;
}

export const abPicks = (c: string) => [...c.matchAll(/signet-ab: boot_slot=([ab]) bootcount=(\w+)/g)].map((m) => `${m[1]}${m[2]}`);

/** A run that went wrong in a way no cut point expects: stopped, and the caller's checks say why. */
export const brokenRun = (c: string) => /boot\[RECOVERY\]|host\[ERROR\]|ota\[(DISABLED|BOOT-REFUSED|BOOT-DISABLED)\]/.test(c) || (c.match(/ota\[RETRY\]/g) ?? []).length >= 3;

/** Where cut `k` of `n` lands (n >= 4), given the number of chunk lines of the write. */
export function cutPoint(k: number, n: number, chunks: number): { name: string; reached: (c: string) => boolean } {
  if (k === 0) return { name: 'start', reached: (c) => /ota\[BOOT-WRITE\] start slot=b/.test(c) };
  if (k === n - 1) return { name: 'armed', reached: (c) => /ota\[BOOT-ARMED\] slot=b/.test(c) };
  // Chunks 1..chunks over points 1..n-2; the last: the whole slot written, not yet read back and armed.
  const chunk = Math.round(1 + ((k - 1) * (chunks - 1)) / (n - 3));
  return { name: `chunk ${chunk}/${chunks}`, reached: (c) => (c.match(/ota\[BOOT-WRITE\] slot=b written=/g) ?? []).length >= chunk };
}

/**
 * Whether the restart after a cut booted a boot slot U-Boot verified and a verified app slot:
 * boot_a (first try) when the cut came before the arming write, boot_b's trial after it.
 */
export function restartVerified(c: string, afterArming: boolean): boolean {
  const picks = abPicks(c);
  return /sha256,rsa2048:fit\+ OK/.test(c) && picks.length === 1 && picks[0] === (afterArming ? 'b1' : 'a1') &&
    /boot\[(OK|TRIAL)\] slot=[ab] version=/.test(c) && !/boot\[RECOVERY\]|Kernel panic/.test(c);
}

export async function bootWriteCutSweep(o: { runArgs: string[]; points: number; limitMs: number; done: (console: string) => boolean }): Promise<{ runs: CutRun[]; chunks: number }> {
  const runs: CutRun[] = [];
  let chunks = 0;
  for (let k = 0; k < o.points; k++) {
    let point: ReturnType<typeof cutPoint> | undefined;
    const r = await powerOn(o.runArgs, {
      limitMs: o.limitMs,
      label: `power-on ${k + 1}`,
      until: brokenRun,
      cut: (c) => {
        // The whole line (a console chunk may end inside the number).
        const start = /ota\[BOOT-WRITE\] start slot=b bytes=(\d+)\s/.exec(c);
        if (!start) return false;
        chunks ||= Math.ceil(Number(start[1]) / CHUNK);
        point ||= cutPoint(k, o.points, chunks);
        return point.reached(c.slice(start.index));
      },
    });
    runs.push({ ...r, point: point?.name });
    if (r.ended !== 'cut') return { runs, chunks };
  }
  runs.push(await powerOn(o.runArgs, { limitMs: o.limitMs, label: 'power-on after the last cut', until: (c) => brokenRun(c) || o.done(c) }));
  return { runs, chunks };
}
