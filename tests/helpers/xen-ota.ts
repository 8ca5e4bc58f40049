/**
 * The on-device OTA agent on Xen/arm32 (issue 14), for tests/xen-ota.test.ts and bench/xen.ts
 * (xen.ota_confirmed). Everything outside the guest goes through the CLI, as a vendor would:
 * keys, a service built for xen-arm32 at 1.0.0 (counter 1) and 1.1.0 (counter 2), a factory disk
 * of 1.0.0 (`signet disk`), a real `signet server` (SQLite, HTTPS with mutual TLS, 127.0.0.1), the
 * device enrolled and provisioned (`signet device provision --identity`: the server as
 * https://10.0.2.2:PORT, which is the host from QEMU's user network), 1.1.0 published and a
 * rollout created. Then the guest does the rest: `signet run --board xen-arm32 --net user` boots
 * the factory disk, the agent checks in, downloads, verifies and stages 1.1.0 into app slot B and
 * reboots (Xen's DomU reboots, the runner quits QEMU); powered on again with the same disk file,
 * the boot stage trial-boots slot B, the app confirms and the agent reports it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, cpSync, mkdirSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Board } from '../../sdk/board';
import { sdkRoot } from '../../sdk/util/paths';
import { powerOn } from './device-run';
import { serverListening } from './server-child';

// Not ./cli (its __dirname does not exist when bench/ bundles this as ESM).
const CLI = join(sdkRoot(), 'dist', 'signet.mjs');

function signet(args: string[], opts: { cwd?: string; timeout?: number } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd, encoding: 'utf8', timeout: opts.timeout ?? 120_000, maxBuffer: 64 << 20, env: { ...process.env, SIGNET_PASSPHRASE: '' } });
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export const XEN_DEVICE = 'xen-0001';
const NEW_VERSION = '1.1.0';

export interface XenOtaRun {
  factory: string;
  trial: string;
  /** `signet rollout status --json` once the trial boot ended. */
  statuses: { target: string; counts: Record<string, number>; state: string }[];
  confirmed: boolean;
}

export class XenOtaWorld {
  server: ChildProcess | undefined;
  url = '';

  constructor(
    readonly board: Board,
    readonly dir: string,
  ) {}

  at(p: string): string {
    return join(this.dir, p);
  }

  ok(args: string[], timeout = 900_000): string {
    const r = signet(args, { cwd: this.dir, timeout });
    if (r.code !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Keys, both releases, the server, the identities, the provisioned factory disk, the release and its rollout. */
  async prepare(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const b = this.board.id;
    this.ok(['keys', 'init', '--dir', this.at('keys')]);
    this.ok(['init', this.at('svc'), '--board', b]);
    // 1.1.0 carries 2 MiB of incompressible data: its slot write spans erase blocks and lasts long
    // enough under emulation for a power cut to land inside it.
    cpSync(this.at('svc'), this.at('svc-1.1.0'), { recursive: true });
    const main = readdirSync(join(this.at('svc-1.1.0'), 'src')).find((f) => f.endsWith('.ts'))!;
    let pad = '';
    for (let h = createHash('sha256').update('pad').digest(); pad.length < 2 * 1024 * 1024; h = createHash('sha256').update(h).digest()) pad += h.toString('base64');
    appendFileSync(join(this.at('svc-1.1.0'), 'src', main), `\nconst PAD = '${pad}';\nlog('pad ' + PAD.length);\n`);
    for (const [v, c, project] of [['1.0.0', '1', 'svc'], [NEW_VERSION, '2', 'svc-1.1.0']] as const) {
      this.ok(['build', '--project', this.at(project), '--version', v, '--security-counter', c, '--keys', this.at('keys'), '--out', this.at(`app-${v}.simg`), '--no-typecheck']);
    }
    this.ok(['server', 'keys', '--keys', this.at('keys'), '--out', this.at('server-keys')]);
    this.server = spawn(process.execPath, [CLI, 'server', '--data', this.at('ota-data'), '--keys', this.at('server-keys'), '--port', '0', '--bind', '127.0.0.1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.url = (await serverListening(this.server)).url;
    this.ok(['device', 'enroll', '--admin', '--id', 'admin', '--keys', this.at('keys'), '--out', this.at('admin')]);
    this.ok(['device', 'enroll', '--id', XEN_DEVICE, '--board', b, '--keys', this.at('keys'), '--out', this.at(`devices/${XEN_DEVICE}`)]);
    this.ok(['disk', this.at('app-1.0.0.simg'), '--board', b, '--keys', this.at('keys'), '--out', this.at('factory.img')]);
    const port = new URL(this.url).port;
    this.ok(['device', 'provision', '--disk', this.at('factory.img'), '--id', XEN_DEVICE, '--board', b, '--ca-dir', this.at('keys'),
      '--identity', this.at(`devices/${XEN_DEVICE}`), '--set', `ota.server=https://10.0.2.2:${port}`, '--set', 'ota.servername=localhost',
      '--set', 'ota.first-s=1', '--set', 'ota.interval-s=5']);
    // The release and its rollout: the only steps taken from outside the guest.
    this.ok(['publish', this.at(`app-${NEW_VERSION}.simg`), '--server', this.url, '--keys', this.at('keys'), '--admin', this.at('admin')]);
    this.ok(['rollout', 'create', '--board', b, '--version', NEW_VERSION, '--percent', '100', '--halt-failure-rate', '0.5', '--server', this.url, '--admin', this.at('admin')]);
  }

  /** A fresh copy of the provisioned factory disk: one device. */
  device(name: string): string {
    const disk = this.at(`${name}.img`);
    cpSync(this.at('factory.img'), disk);
    return disk;
  }

  rollouts(): XenOtaRun['statuses'] {
    return JSON.parse(this.ok(['rollout', 'status', '--json', '--server', this.url, '--admin', this.at('admin')]));
  }

  /**
   * Powers the board on with `disk` (`signet run --net user`) until the guest ends (its reboot or
   * power-off quits QEMU) or `until` says so, then stops it. `cut`: SIGKILL of QEMU the moment
   * `cut(console)` is true (a power cut).
   */
  async powerOn(disk: string, label: string, until: ((c: string) => boolean) | null, timeoutMs: number, cut?: (c: string) => boolean): Promise<string> {
    const r = await powerOn([disk, '--board', this.board.id, '--net', 'user'], {
      limitMs: timeoutMs, until: until ?? undefined, cut, label, logFile: this.at(`console-${label.replace(/\W+/g, '-')}.log`),
    });
    return r.console;
  }

  /** The update on one device: the factory boot stages 1.1.0, the trial boot confirms it. */
  async update(timeoutMs: number): Promise<XenOtaRun> {
    const disk = this.device('ota');
    const failed = (c: string) => /boot\[RECOVERY\]|host\[ERROR\]|ota\[DISABLED\]/.test(c) || (c.match(/ota\[RETRY\]/g) ?? []).length >= 3;
    const factory = await this.powerOn(disk, 'factory boot', failed, timeoutMs);
    let trial = '';
    let statuses: XenOtaRun['statuses'] = [];
    if (factory.includes('ota[REBOOT]')) {
      let askedAt = 0;
      trial = await this.powerOn(disk, 'trial boot', (c) => {
        if (failed(c)) return true;
        if (!/ota\[REPORT\] status=confirmed/.test(c)) return (c.match(/ota\[CHECKIN\]/g) ?? []).length >= 4;
        if (Date.now() - askedAt < 2000) return false;
        askedAt = Date.now();
        statuses = this.rollouts();
        return statuses.length === 1 && statuses[0]!.counts.confirmed === 1;
      }, timeoutMs);
    }
    if (statuses.length === 0 && this.server) statuses = this.rollouts();
    const confirmed = statuses.length === 1 && statuses[0]!.counts.confirmed === 1 && /boot\[CONFIRM\] slot=b version=1\.1\.0/.test(trial);
    return { factory, trial, statuses, confirmed };
  }

  /**
   * A power cut during the app-slot write: the factory boot is killed (SIGKILL of QEMU) when the
   * stage prints boot[STAGE-WRITE] (the write of 1.1.0 into slot B starts), then the board is
   * powered on again with the same disk file until a slot boots or the stage gives up.
   */
  async powerCutDuringStage(timeoutMs: number): Promise<{ cut: string; after: string; slotB: 'untouched' | 'partial' | 'complete' }> {
    const disk = this.device('cut');
    const slot = this.board.flash.partitions.find((p) => p.name === 'slot_b')!;
    const image = readFileSync(this.at(`app-${NEW_VERSION}.simg`));
    const fd = openSync(disk, 'r');
    const head = Buffer.alloc(4096);
    // Cut once the write is under way: the stage has said it writes slot B and the first 4 KiB of
    // the (erased, all-0xff) slot hold programmed bytes on the flash file.
    const writing = (c: string) => c.includes('boot[STAGE-WRITE] slot=b') && readSync(fd, head, 0, head.length, slot.offset) === head.length && head.some((b) => b !== 0xff);
    let cut: string;
    try {
      cut = await this.powerOn(disk, 'cut boot', (c) => /boot\[RECOVERY\]|host\[ERROR\]|ota\[DISABLED\]|ota\[REBOOT\]/.test(c), timeoutMs, writing);
    } finally {
      closeSync(fd);
    }
    const inSlot = readFileSync(disk).subarray(slot.offset, slot.offset + image.length);
    const slotB = inSlot.equals(image) ? 'complete' : inSlot.every((b) => b === 0xff) ? 'untouched' : 'partial';
    const after = await this.powerOn(disk, 'after the cut', (c) => /boot\[(OK|TRIAL|RECOVERY)\]|host\[ERROR\]/.test(c) && /\n/.test(c.slice(c.search(/boot\[(OK|TRIAL|RECOVERY)\]|host\[ERROR\]/))), timeoutMs);
    return { cut, after, slotB };
  }

  close(): void {
    this.server?.kill('SIGTERM');
  }
}
