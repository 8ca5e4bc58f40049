/**
 * Power cuts on an erase-block flash (issue 14: xen-arm32's NOR bank behind mtdblock, where a
 * write to one sector erases and reprograms its whole 256 KiB block). The sweep of
 * tests/helpers/erase-powercut.ts on the board's real layout: every cut point leaves a device
 * that boots a verified slot, with its floor never below a confirmed one and its config store
 * holding the last completed write. The same sweep on the board's layout before the fix (a
 * 512 KiB state partition laid out as on a sector-atomic device: state copy, chain area and
 * config copy of a half in one erase block) finds the rollback window, and on the new partition
 * size with the sector layout a lost root chain, so the sweep can fail.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBoard, validateBoard } from '../sdk/board';
import { BoardError } from '../sdk/board/errors';
import { flashLayout } from '../sdk/disk/disk';
import { nodeCrypto } from '../sdk/image/crypto-node';
import { QEMU_VIRT_PFLASH } from '../sdk/disk/xen-flash';
import { PartitionDevice } from '../bootloader/src/block';
import { SimFlash } from '../bootloader/src/block-sim';
import { stateConfigAreas } from '../bootloader/src/configstore';
import { chainAreas } from '../bootloader/src/rootstore';
import { signEnvelope } from '../sdk/ota/sign';
import { utf8Encode } from '../sdk/util/bytes';
import { canonicalString } from '../sdk/util/canonical-json';
import { erasePowercutSweep, type EraseSweepInput } from './helpers/erase-powercut';
import { appSource } from './helpers/boot';
import { makeImage, makeKeySet, type TestKeySet } from './helpers/fixtures';

let ks: TestKeySet;
let v120: Uint8Array;
let v130: Uint8Array;
let root2: Uint8Array;
beforeAll(async () => {
  ks = await makeKeySet(1, 1);
  const s = [ks.targets[0].signer];
  // Root version 2, same keys, signed by the root key: a rotation the stage accepts (a chain write).
  root2 = utf8Encode(canonicalString(await signEnvelope({ ...JSON.parse(JSON.stringify(ks.root)), version: 2 }, [ks.rootKeys[0].signer])));
  v120 = await makeImage({ version: '1.2.0', securityCounter: 3, board: 'xen-arm32', app: appSource('svc', true), signers: s });
  v130 = await makeImage({ version: '1.3.0', securityCounter: 4, board: 'xen-arm32', app: appSource('svc', true), signers: s });
});

function input(hideEraseBlock: boolean, oldStateSize = hideEraseBlock): EraseSweepInput {
  const board = loadBoard('xen-arm32');
  const eb = board.flash.eraseBlockSize ?? 0;
  // The board's state partition and erase block; its 8 MiB slots shortened to two erase blocks
  // each (the image takes a few KiB), so that a cut point's fresh flash is 1.5 MiB + state, not 18.
  // Hidden erase block: the 512 KiB state partition the board had before the erase-block rule.
  const state = oldStateSize ? { size: 2 * eb } : flashLayout(board).state;
  return {
    layout: { slot_a: { offset: 0, size: 2 * eb }, slot_b: { offset: 2 * eb, size: 2 * eb }, state: { offset: 4 * eb, size: state.size } },
    eraseBlockSize: eb,
    root: ks.root,
    board: board.id,
    crypto: nodeCrypto,
    factory: v120,
    factoryCounter: 3,
    update: v130,
    bootsAfterStage: 3,
    hideEraseBlock,
    rotateRoot: root2,
  };
}

describe('power cuts on xen-arm32\'s erase-block flash (mtdblock)', () => {
  it('the board declares the NOR bank\'s erase block', () => {
    expect(loadBoard('xen-arm32').flash.eraseBlockSize).toBe(QEMU_VIRT_PFLASH.eraseBlock);
  });
  it('every cut point boots a verified slot, keeps the confirmed floor and the last config write', () => {
    const r = erasePowercutSweep(input(false));
    expect(r.reference).toEqual(['a@1.2.0', 'b@1.3.0', 'b@1.3.0', 'b@1.3.0']);
    expect(r.cutPoints).toBeGreaterThan(15);
    expect(r.failures).toEqual([]);
    expect(Object.keys(r.outcomes).sort()).toEqual(['a@1.2.0', 'b@1.3.0']);
  });
  it('laid out as on sector-atomic flash, a cut write loses the confirmed floor or the config', () => {
    const r = erasePowercutSweep(input(true));
    expect(r.failures.some((f) => /floor 3 below the confirmed 4/.test(f.what))).toBe(true);
    expect(r.failures.some((f) => /config store rolled back/.test(f.what))).toBe(true);
  });
  it('with the 1.5 MiB partition but the sector layout, a state or config write still erases the installed root chain', () => {
    // The chain area then runs from sector 1 to the config copy: through the state copy's and the config copy's blocks.
    const r = erasePowercutSweep(input(true, false));
    expect(r.failures.some((f) => f.what === 'root chain lost its installed link')).toBe(true);
  });
});

describe('the board loader\'s erase-block rule', () => {
  const refusal = (edit: (b: any) => void): string => {
    const b = JSON.parse(JSON.stringify(loadBoard('xen-arm32')));
    edit(b);
    try {
      validateBoard(b, 'board.json');
    } catch (e) {
      expect(e).toBeInstanceOf(BoardError);
      expect((e as BoardError).code).toBe('E_BOARD_INVALID');
      return (e as Error).message;
    }
    return '';
  };
  const state = (b: any) => b.flash.partitions.find((p: any) => p.name === 'state');
  it('refuses a state partition too small for six erase-block areas, and partitions sharing erase blocks', () => {
    expect(refusal(() => undefined)).toBe('');
    expect(refusal((b) => { state(b).size = 512 * 1024; })).toMatch(/state: 524288 bytes cannot give .* make it 1572864 bytes/);
    expect(refusal((b) => { b.flash.partitions.find((p: any) => p.name === 'slot_a').offset -= 4096; })).toMatch(/slot_a: offset and size must be multiples of eraseBlockSize 262144/);
    expect(refusal((b) => { b.flash.eraseBlockSize = 1000; })).toMatch(/eraseBlockSize: 1000 is not a multiple of blockSize 512/);
  });
  it('a board without an erase block keeps the sector layout; xen-arm32\'s six areas each own their erase blocks', () => {
    const arm = loadBoard('qemu-virt-arm64');
    expect(arm.flash.eraseBlockSize).toBeUndefined();
    const areas = (size: number, eb?: number) => {
      const dev = new PartitionDevice(new SimFlash(size, 512, undefined, eb), 0, size);
      const c = stateConfigAreas(dev)!;
      const r = chainAreas(dev);
      return { c, r, half: dev.sectorCount / 2 };
    };
    // Sector-atomic: state copies at 0 and H, chains from 1 and H+1, config copies in the last 16 sectors of each half.
    const st = arm.flash.partitions.find((p) => p.name === 'state')!;
    const s = areas(st.size);
    expect(s.r).toEqual([{ first: 1, count: s.half - 17 }, { first: s.half + 1, count: s.half - 17 }]);
    expect(s.c).toEqual([{ first: s.half - 16, count: 16 }, { first: 2 * s.half - 16, count: 16 }]);
    // 256 KiB erase blocks (512 sectors), 1.5 MiB: blocks 0-2 for copy 0, chain 0, config 0; 3-5 for the second half.
    const x = areas(1536 * 1024, 256 * 1024);
    expect(x.r).toEqual([{ first: 512, count: 512 }, { first: 2048, count: 512 }]);
    expect(x.c).toEqual([{ first: 1024, count: 16 }, { first: 2560, count: 16 }]);
  });
});
