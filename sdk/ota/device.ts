/**
 * A simulated device on Node: the real boot stage (`BootStage`) over a file-backed flash, the
 * real OTA agent over HTTP(S), and the app run as the boot stage hands it over. A reboot is a
 * new `BootStage` on the same flash file, so everything that survives a reboot on a device
 * (slots, boot state, trusted metadata, the agent's pending install and report queue) survives
 * it here, and nothing else does.
 *
 * Tests, benches and `signet` demos use it; it is Node-only (files, sockets) and never bundled.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureOutputFolder } from '../util/fs-atomic';
import { PartitionDevice, readBytes } from '../../bootloader/src/block';
import { FileBlockDevice } from '../../bootloader/src/block-file';
import { provisionFlash, type FlashLayout } from '../../bootloader/src/provision';
import { BootStage, type BootChoice } from '../../bootloader/src/stage';
import { confirmBootSlot, provisionBootEnv } from '../../bootloader/src/bootenv';
import type { FitVerifyKey } from '../fit/fit-verify';
import { BootTargetAgent, bootSlotsOn, nodeFitCrypto, ubootAbBoot, type BootRelease, type BootSlotName } from './boot-target';
import type { BootState } from '../../bootloader/src/state';
import type { ImageCrypto } from '../image/crypto';
import { nodeCrypto } from '../image/crypto-node';
import type { SignetError } from '../util/errors';
import { OtaAgent, tufSources, type DeviceStatus, type SlotName, type UpdateResult } from './agent';
import type { MetadataLimits } from './client';
import { DirMetadataStore } from './client-store-node';
import { OtaError } from './errors';
import { verifyTrustedRoot } from './metadata';
import type { Fetcher } from './fetcher';
import { NodeFetcher, type NodeFetcherOptions, type NodeFetcherTls } from './fetcher-node';

export interface SimulatedDeviceOptions {
  /** The device's own folder: flash.img and tuf/ (its persistent metadata store). */
  dir: string;
  id?: string;
  board: string;
  layout: FlashLayout;
  /** The root built into the device (its initramfs). */
  rootBytes: Uint8Array;
  serverUrl: string;
  /** TUF repository mirrors tried before the server (AgentOptions.mirrors). */
  mirrors?: string[];
  /** After the last mirror, the server's own /tuf/ (AgentOptions.serverFallback). */
  serverFallback?: boolean;
  /** Client certificate, key and the CA for mutual TLS. */
  tls?: NodeFetcherTls;
  /** Use this fetcher instead of a NodeFetcher (tests that misbehave on purpose). */
  fetcher?: Fetcher;
  fetcherOptions?: Omit<NodeFetcherOptions, 'tls'>;
  crypto?: ImageCrypto;
  now?: () => number | null;
  trialTries?: number;
  limits?: Partial<MetadataLimits>;
  maxResumes?: number;
  sectorSize?: number;
  /**
   * A/B boot slots (an A/B disk's byte ranges, sdk/disk/boot-ab.ts): the device boots through a
   * model of U-Boot's A/B bootcmd (`ubootAbBoot`) and its agent updates boot images too.
   */
  bootAb?: { boot_a: { offset: number; size: number }; boot_b: { offset: number; size: number }; bootenv: { offset: number; size: number } };
  /** The FIT public key(s) U-Boot holds (`required = "conf"`), for bootAb. */
  fitKeys?: FitVerifyKey[];
}

export interface ProvisionDeviceOptions extends SimulatedDeviceOptions {
  /** The factory image in slot A. */
  factoryImage: Uint8Array;
  flashBytes: number;
  /** The security floor the device leaves the factory with (default 0). */
  securityFloor?: number;
  /** With bootAb: the factory boot image (FIT), written to both boot slots as `signet disk --boot-ab` does. */
  bootImage?: Uint8Array;
  bootlimit?: number;
}

export interface BootOutcome {
  /** null: recovery (nothing verifies). */
  slot: SlotName | null;
  trial: boolean;
  version: string | null;
  /** The app called confirm() during this boot. */
  confirmed: boolean;
  /** The app threw (its code, if it had one). */
  appError: string | null;
  state: BootState | null;
  /** With A/B boot slots: the boot slot U-Boot booted and the boot image in it (null: neither boots). */
  boot?: { slot: BootSlotName; release: BootRelease } | null;
}

const FLASH_FILE = 'flash.img';

export class SimulatedDevice {
  readonly id: string;
  readonly flashPath: string;
  readonly store: DirMetadataStore;
  readonly agent: OtaAgent;
  /** Every console line: boot stage, agent, app. */
  readonly lines: string[] = [];
  private readonly o: SimulatedDeviceOptions;
  private flash: FileBlockDevice | null = null;
  private stage: BootStage | null = null;
  private running: BootChoice | null = null;
  /** The agent's boot-image side, on a device with A/B boot slots. */
  readonly bootAgent: BootTargetAgent | null = null;

  /** Factory provisioning: a fresh flash with the factory image in slot A. */
  static provision(o: ProvisionDeviceOptions): SimulatedDevice {
    tufSources(o.serverUrl, o.mirrors, o.serverFallback); // a bad mirror list is refused before flash is written
    ensureOutputFolder(o.dir);
    const path = join(o.dir, FLASH_FILE);
    writeFileSync(path, new Uint8Array(o.flashBytes).fill(0xff));
    const dev = new FileBlockDevice(path, o.sectorSize ?? 512);
    try {
      provisionFlash(dev, o.layout, { slotA: o.factoryImage, securityFloor: o.securityFloor ?? 0 });
      if (o.bootAb && o.bootImage) {
        const slots = bootSlotsOn(dev, o.bootAb);
        for (const s of [slots.slots.a, slots.slots.b]) {
          const buf = new Uint8Array(Math.ceil(o.bootImage.length / dev.sectorSize) * dev.sectorSize).fill(0xff);
          buf.set(o.bootImage);
          s.write(0, buf);
        }
        provisionBootEnv(slots.env, 'a', o.bootlimit ?? 3);
      }
    } finally {
      dev.close();
    }
    return new SimulatedDevice(o);
  }

  constructor(o: SimulatedDeviceOptions) {
    this.o = o;
    this.id = o.id ?? o.dir;
    this.flashPath = join(o.dir, FLASH_FILE);
    this.store = new DirMetadataStore(join(o.dir, 'tuf'));
    const now = o.now ?? (() => Math.floor(Date.now() / 1000));
    this.agent = new OtaAgent({
      serverUrl: o.serverUrl,
      mirrors: o.mirrors,
      serverFallback: o.serverFallback,
      fetcher: o.fetcher ?? new NodeFetcher({ ...(o.fetcherOptions ?? {}), tls: o.tls }),
      store: this.store,
      crypto: o.crypto ?? nodeCrypto,
      rootBytes: o.rootBytes,
      now,
      device: () => this.status(),
      install: {
        stageImage: (bytes) => this.requireStage().stageImage(bytes),
        rootVersion: () => this.requireStage().trustedRoot().version,
        installRoots: (links) => this.requireStage().installRootChain(links).version,
      },
      maxImageBytes: o.layout.slot_b.size,
      limits: o.limits,
      maxResumes: o.maxResumes,
      log: (l) => this.lines.push(l),
      boot: o.bootAb ? {
        checkin: () => this.bootAgent!.checkin(),
        afterCheckin: (answer, result, cb) => this.bootAgent!.afterCheckin(answer, result, cb),
      } : undefined,
    });
    if (o.bootAb) {
      const ab = o.bootAb;
      this.bootAgent = new BootTargetAgent({
        agent: this.agent, store: this.store, fitKeys: o.fitKeys ?? [], fitCrypto: nodeFitCrypto, board: o.board,
        device: () => {
          if (!this.flash) throw new OtaError('E_CLIENT_STATE', 'the device is powered off');
          return bootSlotsOn(this.flash, ab);
        },
        log: (l) => this.lines.push(l),
      });
    }
  }

  private requireStage(): BootStage {
    if (!this.stage || !this.running) throw new OtaError('E_CLIENT_STATE', 'the device has not booted an app');
    return this.stage;
  }

  private part(p: { offset: number; size: number }): PartitionDevice {
    return new PartitionDevice(this.flash as FileBlockDevice, p.offset, p.size);
  }

  /** What the agent reports and decides with: the running image and the boot state's floor. */
  status(): DeviceStatus {
    const stage = this.requireStage();
    const run = this.running as BootChoice;
    const st = stage.currentState();
    return {
      board: this.o.board,
      version: run.image.manifest.version,
      securityCounter: run.image.manifest.securityCounter,
      slot: run.slot,
      securityFloor: st ? st.securityFloor : 0,
    };
  }

  /** Power on (or reboot): the boot stage decides, the agent reports, the app runs. */
  async boot(): Promise<BootOutcome> {
    this.shutdown();
    this.flash = new FileBlockDevice(this.flashPath, this.o.sectorSize ?? 512);
    const L = this.o.layout;
    const crypto = this.o.crypto ?? nodeCrypto;
    // U-Boot first: it counts the try and picks the boot slot whose FIT it boots.
    let bootSlot: BootOutcome['boot'];
    if (this.o.bootAb) {
      bootSlot = ubootAbBoot(bootSlotsOn(this.flash, this.o.bootAb), this.o.fitKeys ?? [], (l) => this.lines.push(l));
      if (!bootSlot) return { slot: null, trial: false, version: null, confirmed: false, appError: null, state: null, boot: null };
    }
    const now = this.o.now ?? (() => Math.floor(Date.now() / 1000));
    // The boot stage starts from the root built into the device and follows the chain it
    // stored in the state partition (the agent installs each rotation there before staging).
    this.stage = new BootStage({
      slots: { a: this.part(L.slot_a), b: this.part(L.slot_b) },
      state: this.part(L.state),
      root: verifyTrustedRoot(this.o.rootBytes, crypto, null),
      board: this.o.board,
      crypto,
      now,
      log: (l) => this.lines.push(l),
      trialTries: this.o.trialTries ?? 3,
    });
    const choice = this.stage.boot();
    this.running = choice;
    if (!choice) return { slot: null, trial: false, version: null, confirmed: false, appError: null, state: this.stage.currentState(), boot: bootSlot };
    const st = this.stage.currentState();
    const trial = choice.trial; // confirm() below turns the choice into a good boot
    await this.call((cb) => this.agent.afterBoot({ slot: choice.slot, trial, lastError: st ? st.lastError : '' }, cb));
    const bootAgent = this.bootAgent;
    if (bootAgent) await this.call((cb) => bootAgent.afterBoot(cb));
    let confirmed = false;
    let appError: string | null = null;
    const stage = this.stage;
    const host = {
      board: this.o.board,
      version: choice.image.manifest.version,
      log: (line: string) => this.lines.push(line),
      confirm: () => {
        stage.confirm();
        // As the boot stage does on an A/B disk (bootloader/src/device-main.ts): the boot slot too.
        if (this.o.bootAb && this.flash) confirmBootSlot(bootSlotsOn(this.flash, this.o.bootAb).env, (l) => this.lines.push(l));
        confirmed = true;
      },
    };
    try {
      new Function('__signet_host', new TextDecoder().decode(choice.app))(host);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      appError = typeof code === 'string' ? code : 'E_APP_CRASHED';
      this.lines.push('app[CRASH] ' + String((e as Error).message ?? e));
    }
    if (confirmed) await this.call((cb) => this.agent.confirmed(cb));
    if (confirmed && bootAgent) await this.call((cb) => bootAgent.afterBoot(cb));
    return { slot: choice.slot, trial, version: choice.image.manifest.version, confirmed, appError, state: this.stage.currentState(), boot: bootSlot };
  }

  /** One agent cycle: check in, and if offered, refresh, download, verify, stage, report. */
  checkForUpdate(): Promise<UpdateResult> {
    return new Promise((resolve, reject) => {
      this.agent.checkForUpdate((err, r) => (err ? reject(err) : resolve(r as UpdateResult)));
    });
  }

  private call(fn: (cb: (err: SignetError | null) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
  }

  /** The raw bytes of a boot slot (A/B devices). */
  bootSlotBytes(slot: BootSlotName): Uint8Array {
    if (!this.o.bootAb) throw new OtaError('E_CLIENT_STATE', 'this device has no A/B boot slots');
    const dev = new FileBlockDevice(this.flashPath, this.o.sectorSize ?? 512, false);
    try {
      const p = slot === 'a' ? this.o.bootAb.boot_a : this.o.bootAb.boot_b;
      return readBytes(new PartitionDevice(dev, p.offset, p.size), 0, p.size).slice();
    } finally {
      dev.close();
    }
  }

  /** The raw bytes of a slot (tests compare them before and after an attack). */
  slotBytes(slot: SlotName): Uint8Array {
    const dev = new FileBlockDevice(this.flashPath, this.o.sectorSize ?? 512, false);
    try {
      const p = slot === 'a' ? this.o.layout.slot_a : this.o.layout.slot_b;
      return readBytes(new PartitionDevice(dev, p.offset, p.size), 0, p.size);
    } finally {
      dev.close();
    }
  }

  state(): BootState | null {
    return this.stage ? this.stage.currentState() : null;
  }

  /** Power off: close the flash. */
  shutdown(): void {
    if (this.flash) this.flash.close();
    this.flash = null;
    this.stage = null;
    this.running = null;
  }
}
