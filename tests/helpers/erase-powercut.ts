/**
 * The power-cut sweep on an erase-block flash (NOR behind mtdblock, SimFlash's erase mode) for a
 * board's real layout: the factory device boots, its app confirms and writes a config setting,
 * the stage installs a newer root (a root-chain write) and stages an update, then the device boots on (trial, confirm, config writes each boot).
 * The power is cut after every single erase or sector program of that cycle; the device is
 * powered on again and must boot a verified slot, with a security floor never below the one a
 * completed confirm left on flash, its config store holding the last completed write, and the
 * root chain holding a completed install.
 */
import type { ImageCrypto } from '../../sdk/image/crypto';
import type { RootSigned } from '../../sdk/ota/metadata';
import { bootOnce, cutEverywhere, factoryFlash, sweepPart, type SweepDevice } from '../../bootloader/powercut';
import type { BlockDevice } from '../../bootloader/src/block';
import { ConfigStore } from '../../bootloader/src/configstore';
import { readRootChain } from '../../bootloader/src/rootstore';
import type { BootStage } from '../../bootloader/src/stage';
import type { FlashLayout } from '../../bootloader/src/provision';
import { readState } from '../../bootloader/src/state';

export interface EraseSweepInput {
  layout: FlashLayout;
  eraseBlockSize: number;
  root: RootSigned;
  board: string;
  crypto: ImageCrypto;
  factory: Uint8Array;
  factoryCounter: number;
  update: Uint8Array;
  bootsAfterStage: number;
  /**
   * Lay the state partition out as on a sector-atomic device (the writers are not told the
   * erase block): how every board was laid out before the erase-block rule, to show the defect.
   */
  hideEraseBlock?: boolean;
  /** A newer root envelope the first boot installs (a root-chain write) after its config write. */
  rotateRoot?: Uint8Array;
}

/** The medium without its erase block size: the writers lay their areas out sector by sector. */
class SectorView implements BlockDevice {
  readonly sectorSize: number;
  readonly sectorCount: number;
  constructor(private readonly dev: BlockDevice) {
    this.sectorSize = dev.sectorSize;
    this.sectorCount = dev.sectorCount;
  }
  read(sector: number, count: number): Uint8Array { return this.dev.read(sector, count); }
  write(sector: number, data: Uint8Array): void { this.dev.write(sector, data); }
  flush(): void { this.dev.flush(); }
}

/** What a cut run promised before the cut: the floor and config value a completed write left. */
interface Promised { floor: number; boots: number; chainLinks: number }

export interface EraseCutFailure { cutAfter: number; what: string }

export interface EraseSweepResult {
  /** Erases and sector programs of the uncut cycle: the cut points. */
  cutPoints: number;
  /** Cut points after which an area shared an erase block with the one being written. */
  failures: EraseCutFailure[];
  /** What the first boot after each cut ran, counted. */
  outcomes: Record<string, number>;
  reference: string[];
}

const FACTORY_KEY = 'device.name';
const BOOTS_KEY = 'app.boots';

function flashBytes(inp: EraseSweepInput): number {
  const end = inp.layout.state.offset + inp.layout.state.size;
  return Math.ceil(end / inp.eraseBlockSize) * inp.eraseBlockSize;
}

/** The app of this cycle: confirms, then counts the boot in the config store; optionally rotates the root and stages. */
function appOf(d: SweepDevice, inp: EraseSweepInput, flash: BlockDevice, stageUpdate: boolean, promised: Promised) {
  return (stage: BootStage) => {
    const state = sweepPart(flash, d, inp.layout.state);
    stage.confirm();
    const st = readState(state).state;
    if (st) promised.floor = Math.max(promised.floor, st.securityFloor);
    const cfg = ConfigStore.inStatePartition(state);
    const boots = Number(cfg.get(BOOTS_KEY) ?? '0') + 1;
    cfg.set(BOOTS_KEY, String(boots));
    promised.boots = boots;
    if (stageUpdate && inp.rotateRoot) {
      stage.installRootChain([inp.rotateRoot]);
      promised.chainLinks = 1;
    }
    if (stageUpdate) stage.stageImage(inp.update);
  };
}

export function erasePowercutSweep(inp: EraseSweepInput): EraseSweepResult {
  const d: SweepDevice = { ...inp, trialTries: 3, view: inp.hideEraseBlock ? (f) => new SectorView(f) : undefined };
  const failures: EraseCutFailure[] = [];
  const outcomes: Record<string, number> = {};
  const r = cutEverywhere<{ promised: Promised; log: string[] }>({
    fresh: () => {
      const f = factoryFlash(d, { flashBytes: flashBytes(inp), factory: inp.factory, factoryCounter: inp.factoryCounter, eraseBlockSize: inp.eraseBlockSize });
      const cfg = ConfigStore.inStatePartition(sweepPart(f, d, inp.layout.state));
      cfg.set(FACTORY_KEY, 'router-1');
      cfg.set(BOOTS_KEY, '0');
      f.sectorWrites = 0;
      return f;
    },
    context: () => ({ promised: { floor: inp.factoryCounter, boots: 0, chainLinks: 0 }, log: [] }),
    cycle: (f, c) => {
      c.log.push(bootOnce(f, d, appOf(d, inp, f, true, c.promised)).ran ?? 'recovery');
      for (let i = 0; i < inp.bootsAfterStage; i++) c.log.push(bootOnce(f, d, appOf(d, inp, f, false, c.promised)).ran ?? 'recovery');
    },
    afterCut: (dev, k, { promised }) => {
      const part = sweepPart(dev, d, inp.layout.state);
      // Read before booting: the boot's own writes must not hide what the cut left.
      const st = readState(part).state;
      const cfg = ConfigStore.inStatePartition(part);
      const fail = (what: string) => failures.push({ cutAfter: k, what });
      if (!st) fail('no valid boot state');
      else if (st.securityFloor < promised.floor) fail(`floor ${st.securityFloor} below the confirmed ${promised.floor}`);
      if (cfg.get(FACTORY_KEY) !== 'router-1') fail('config store lost ' + FACTORY_KEY);
      const boots = Number(cfg.get(BOOTS_KEY) ?? '-1');
      if (boots < promised.boots) fail(`config store rolled back: ${BOOTS_KEY}=${boots}, last written ${promised.boots}`);
      if (readRootChain(part).links.length < promised.chainLinks) fail('root chain lost its installed link');
      const ran = bootOnce(dev, d, appOf(d, inp, dev, false, { floor: 0, boots: 0, chainLinks: 0 })).ran;
      outcomes[ran ?? 'recovery'] = (outcomes[ran ?? 'recovery'] ?? 0) + 1;
      if (!ran) fail('nothing boots');
    },
  });
  return { cutPoints: r.cutPoints, failures, outcomes, reference: r.reference.log };
}
