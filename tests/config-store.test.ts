/**
 * The config store (bootloader/src/configstore.ts, docs/boot-state.md §Config store): its
 * format, its caps and errors, its power-cut rule (a write cut at any sector or byte leaves the
 * old or the new store, never garbage), and its place in the state partition (the boot stage
 * and the root chain never write it, across slot switches and fallbacks).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { PartitionDevice, type BlockDevice } from '../bootloader/src/block';
import { SimFlash } from '../bootloader/src/block-sim';
import { ConfigError } from '../bootloader/src/config-errors';
import {
  CONFIG_HEADER, CONFIG_MAX_DATA, ConfigStore, decodeConfig, encodeConfig, fileConfigAreas, readConfig, seqNewer,
  stateConfigAreas, type ConfigArea, type ConfigEntry,
} from '../bootloader/src/configstore';
import { chainAreas, readRootChain, writeRootChain } from '../bootloader/src/rootstore';
import { readState } from '../bootloader/src/state';
import { loadBoard } from '../sdk/board';
import { bootFixtures, bootOnce, newFlash, parts, type BootFixtures } from './helpers/boot';

const enc = (s: string) => new TextEncoder().encode(s);
const SECTOR = 512;

function fileStore(): { dev: SimFlash; areas: [ConfigArea, ConfigArea]; store: ConfigStore } {
  const areas = fileConfigAreas(SECTOR);
  const dev = new SimFlash(2 * areas[0].count * SECTOR, SECTOR);
  return { dev, areas, store: new ConfigStore(dev, areas) };
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).code;
  }
  return 'no error';
}

describe('config store format', () => {
  it('round-trips settings, files and secrets through encode/decode, canonical order', () => {
    const entries: ConfigEntry[] = [
      { kind: 'secret', key: 'admin.key', value: enc('-----BEGIN PRIVATE KEY-----\nx\n') },
      { kind: 'setting', key: 'wifi-name', value: enc('Café 5G') },
      { kind: 'file', key: 'admin.crt', value: enc('cert') },
      { kind: 'setting', key: 'region', value: enc('eu') },
    ];
    const b = encodeConfig({ seq: 7, entries });
    const d = decodeConfig(b)!;
    expect(d.seq).toBe(7);
    expect(d.entries.map((e) => e.kind + ':' + e.key)).toEqual(['setting:region', 'setting:wifi-name', 'file:admin.crt', 'secret:admin.key']);
    expect(new TextDecoder().decode(d.entries[1].value)).toBe('Café 5G');
    // Golden header: magic, version 1, header size 32, seq 7.
    expect([...b.subarray(0, 12)]).toEqual([0x53, 0x43, 0x46, 0x47, 1, 0, 32, 0, 7, 0, 0, 0]);
    expect(encodeConfig(d)).toEqual(b);
  });

  it('refuses any single flipped bit, trailing garbage in the entries, unsorted or duplicate entries', () => {
    const b = encodeConfig({ seq: 1, entries: [{ kind: 'setting', key: 'a', value: enc('1') }, { kind: 'setting', key: 'b', value: enc('2') }] });
    for (let i = 0; i < b.length * 8; i++) {
      const m = b.slice();
      m[i >> 3] ^= 1 << (i & 7);
      expect(decodeConfig(m), 'bit ' + i).toBeNull();
    }
    expect(decodeConfig(b.subarray(0, b.length - 1))).toBeNull();
    expect(() => encodeConfig({ seq: 1, entries: [{ kind: 'setting', key: 'a', value: enc('1') }, { kind: 'setting', key: 'a', value: enc('2') }] })).toThrow(ConfigError);
  });

  it('writes alternate between the copies with a rising sequence number; both copies decode', () => {
    const { dev, areas, store } = fileStore();
    store.set('wifi-name', 'one');
    store.set('wifi-name', 'two');
    store.set('region', 'eu');
    const c0 = decodeConfig(dev.read(areas[0].first, areas[0].count))!;
    const c1 = decodeConfig(dev.read(areas[1].first, areas[1].count))!;
    expect([c0.seq, c1.seq]).toEqual([3, 2]);
    expect(new ConfigStore(dev.reboot(), areas).get('wifi-name')).toBe('two');
    expect(new ConfigStore(dev.reboot(), areas).keys()).toEqual(['region', 'wifi-name']);
  });

  it('one copy corrupt: the other is read, the damage is reported, the next write repairs it', () => {
    const { dev, areas, store } = fileStore();
    store.set('wifi-name', 'old');
    store.set('wifi-name', 'new'); // copy 1, seq 2
    dev.flipBit(areas[1].first * SECTOR + CONFIG_HEADER + 5, 3);
    const booted = dev.reboot();
    const s = new ConfigStore(booted, areas);
    expect(s.get('wifi-name')).toBe('old');
    expect(s.damaged()).toEqual([false, true]);
    s.set('region', 'eu'); // goes over the damaged copy
    const r = readConfig(booted, areas);
    expect(r.damaged).toEqual([false, false]);
    expect(r.newest).toBe(1);
    expect(new ConfigStore(booted.reboot(), areas).get('region')).toBe('eu');
    // Erased flash is an empty store, not damage.
    const fresh = fileStore();
    expect(fresh.store.damaged()).toEqual([false, false]);
    expect(fresh.store.keys()).toEqual([]);
  });

  it('the sequence number wraps at 2^32: 0 is newer than 0xffffffff', () => {
    expect(seqNewer(0, 0xffffffff)).toBe(true);
    expect(seqNewer(0xffffffff, 0)).toBe(false);
    expect(seqNewer(5, 4)).toBe(true);
    const areas = fileConfigAreas(SECTOR);
    const dev = new SimFlash(2 * areas[0].count * SECTOR, SECTOR);
    const put = (i: number, seq: number, v: string) => {
      const buf = new Uint8Array(areas[i].count * SECTOR);
      buf.set(encodeConfig({ seq, entries: [{ kind: 'setting', key: 'k', value: enc(v) }] }));
      dev.write(areas[i].first, buf);
    };
    put(0, 0xfffffffe, 'older');
    put(1, 0xffffffff, 'newest');
    const s = new ConfigStore(dev, areas);
    expect(s.get('k')).toBe('newest');
    s.set('k', 'wrapped'); // seq 0 into copy 0
    expect(decodeConfig(dev.read(areas[0].first, areas[0].count))!.seq).toBe(0);
    expect(new ConfigStore(dev.reboot(), areas).get('k')).toBe('wrapped');
  });

  it('caps and key pattern: coded errors, nothing written', () => {
    const { dev, store } = fileStore();
    store.set('ok', 'x');
    const writes = dev.sectorWrites;
    for (const k of ['', 'A', 'has space', '-lead', 'x'.repeat(49), 'wifi/name', 'é']) expect(code(() => store.set(k, 'v')), k).toBe('E_CONFIG_KEY');
    expect(code(() => store.set(7 as unknown as string, 'v'))).toBe('E_CONFIG_KEY');
    expect(code(() => store.set('n', 5))).toBe('E_CONFIG_VALUE');
    expect(code(() => store.set('n', enc('bytes')))).toBe('E_CONFIG_VALUE');
    expect(code(() => store.set('n', 'x'.repeat(1025)))).toBe('E_CONFIG_TOO_LARGE');
    expect(code(() => store.put('secret', 'k', 'x'.repeat(4097)))).toBe('E_CONFIG_TOO_LARGE');
    expect(code(() => store.text('secret', 'absent'))).toBe('E_CONFIG_MISSING');
    store.set('n', 'x'.repeat(1024)); // exactly at the cap
    // Fill: 1024-byte values until the total cap refuses one.
    let i = 0;
    let last = '';
    for (; i < 20; i++) {
      last = code(() => store.set('fill-' + i, 'y'.repeat(1024)));
      if (last !== 'no error') break;
    }
    expect(last).toBe('E_CONFIG_FULL');
    expect(store.used()).toBeLessThanOrEqual(CONFIG_MAX_DATA);
    const before = dev.sectorWrites;
    expect(code(() => store.set('fill-' + i, 'y'.repeat(1024)))).toBe('E_CONFIG_FULL');
    expect(dev.sectorWrites).toBe(before);
    expect(writes).toBeLessThan(before);
    // The refused value never appears in a message.
    try {
      store.set('n', 'TOP-SECRET'.repeat(200));
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('TOP-SECRET');
    }
  });
});

/** A device whose writes land byte by byte: the cut may fall inside a sector (no atomic sectors). */
class ByteCutDevice implements BlockDevice {
  readonly sectorSize = SECTOR;
  readonly sectorCount: number;
  bytesWritten = 0;
  cutAt = Infinity;
  constructor(readonly bytes: Uint8Array) {
    this.sectorCount = bytes.length / SECTOR;
  }
  read(sector: number, count: number): Uint8Array {
    return this.bytes.slice(sector * SECTOR, (sector + count) * SECTOR);
  }
  write(sector: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      if (this.bytesWritten >= this.cutAt) throw Object.assign(new Error('power cut'), { code: 'E_POWER_CUT' });
      this.bytes[sector * SECTOR + i] = data[i];
      this.bytesWritten++;
    }
  }
  flush(): void {
    if (this.bytesWritten >= this.cutAt) throw Object.assign(new Error('power cut'), { code: 'E_POWER_CUT' });
  }
}

describe('config store power cuts', () => {
  // Old store: three writes (so the next lands in copy 0 over an older copy), a 900-byte value
  // so the write spans several sectors; the new write changes it and adds a key.
  function oldStore(): Uint8Array {
    const { dev, store } = fileStore();
    store.put('secret', 'admin.key', 'K'.repeat(900));
    store.set('wifi-name', 'old-name-' + 'o'.repeat(400));
    store.set('region', 'eu');
    return dev.bytes.slice();
  }
  const areas = fileConfigAreas(SECTOR);
  const newName = 'new-name-' + 'n'.repeat(800);
  const check = (bytes: Uint8Array, label: string) => {
    const s = new ConfigStore(new SimFlash(bytes.length, SECTOR, bytes), areas);
    const name = s.get('wifi-name');
    const isOld = name === 'old-name-' + 'o'.repeat(400) && s.get('added') === undefined;
    const isNew = name === newName && s.get('added') === 'yes';
    expect(isOld || isNew, label + ': ' + String(name).slice(0, 12)).toBe(true);
    expect(s.text('secret', 'admin.key'), label).toBe('K'.repeat(900));
    expect(s.get('region'), label).toBe('eu');
    return isNew;
  };
  const update = (s: ConfigStore) => {
    s.put('setting', 'wifi-name', newName); // not atomic as a pair: two writes
    s.set('added', 'yes');
  };

  it('cut after every sector write of two updates (SimFlash): old or new, never garbage', () => {
    const base = oldStore();
    let cuts = 0;
    let sawNew = false;
    let sawOld = false;
    for (let n = 0; ; n++) {
      const dev = new SimFlash(base.length, SECTOR, base);
      dev.cutPowerAfter(n);
      let completed = true;
      try {
        update(new ConfigStore(dev, areas));
      } catch (e) {
        expect((e as { code?: string }).code).toBe('E_POWER_CUT');
        completed = false;
      }
      const s = new ConfigStore(dev.reboot(), areas);
      const name = s.get('wifi-name');
      // The two sets are separate writes: between them the name is new and `added` absent.
      expect([('old-name-' + 'o'.repeat(400)), newName]).toContain(name);
      expect(s.text('secret', 'admin.key')).toBe('K'.repeat(900));
      expect(s.get('region')).toBe('eu');
      if (name === newName) sawNew = true;
      else sawOld = true;
      cuts++;
      if (completed) {
        expect(s.get('added')).toBe('yes');
        break;
      }
    }
    expect(cuts).toBeGreaterThan(4);
    expect(sawOld && sawNew).toBe(true);
  });

  it('cut at every byte of a write (sectors not atomic): old or new, never garbage', () => {
    const base = oldStore();
    let news = 0;
    let total = 0;
    for (let k = 0; ; k++) {
      const dev = new ByteCutDevice(base.slice());
      dev.cutAt = k;
      let completed = true;
      try {
        new ConfigStore(dev, areas).put('setting', 'wifi-name', newName);
        new ConfigStore(dev, areas).set('added', 'yes');
      } catch {
        completed = false;
      }
      // A half-done pair (name new, `added` absent) is the first write done: check each write alone.
      const s = new ConfigStore(new SimFlash(dev.bytes.length, SECTOR, dev.bytes), areas);
      const name = s.get('wifi-name');
      expect([('old-name-' + 'o'.repeat(400)), newName], 'cut at byte ' + k).toContain(name);
      if (s.get('added') !== undefined) {
        expect(name).toBe(newName);
        expect(check(dev.bytes, 'byte ' + k)).toBe(true);
      }
      expect(s.text('secret', 'admin.key')).toBe('K'.repeat(900));
      if (name === newName) news++;
      total++;
      if (completed) break;
    }
    expect(total).toBeGreaterThan(2 * 1300); // both writes span several sectors
    expect(news).toBeGreaterThan(0);
    expect(news).toBeLessThan(total);
  });
});

describe('config store in the state partition', () => {
  let fx: BootFixtures;
  beforeAll(async () => {
    fx = await bootFixtures();
  });

  it('areas are disjoint from the state copies and the root chain areas on every board', () => {
    for (const id of ['qemu-virt-arm64', 'xen-arm32', 'bpi-r4-router', 'tv-soc-armv7']) {
      const b = loadBoard(id);
      const st = b.flash.partitions.find((p) => p.name === 'state')!;
      const dev = new SimFlash(st.size, b.flash.blockSize);
      const cfg = stateConfigAreas(dev)!;
      expect(cfg, id).not.toBeNull();
      const half = Math.floor(dev.sectorCount / 2);
      const used = new Uint8Array(dev.sectorCount);
      const mark = (a: ConfigArea) => { for (let i = a.first; i < a.first + a.count; i++) used[i]++; };
      used[0]++; used[half]++;
      chainAreas(dev).forEach(mark);
      cfg.forEach(mark);
      expect(Math.max(...used), id).toBe(1);
      expect(chainAreas(dev)[0].count, id).toBeGreaterThanOrEqual(cfg[0].count);
    }
  });

  it('the boot stage never touches config: staged update, trial, confirm, switch back by fallback, a full root chain', () => {
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    const st = parts(f).state;
    const store = ConfigStore.inStatePartition(st);
    store.set('wifi-name', 'home');
    store.put('secret', 'admin.key', 'PRIVATE');
    const areas = stateConfigAreas(st)!;
    const raw = () => [st.read(areas[0].first, areas[0].count), st.read(areas[1].first, areas[1].count)];
    const before = raw();

    expect(bootOnce(f, fx.ks, { stage: fx.v130 }).ran).toBe('a@1.2.0'); // stage 1.3.0 into b
    expect(bootOnce(f, fx.ks).ran).toBe('b@1.3.0'); // trial, confirms: b active
    expect(readState(st).state!.active).toBe('b');
    expect(bootOnce(f, fx.ks, { stage: fx.v130NoConfirm }).ran).toBe('b@1.3.0'); // into a, never confirms
    for (let i = 0; i < 4; i++) bootOnce(f, fx.ks); // tries run out, fallback to b
    expect(readState(st).state!.slotA).toBe('bad');
    // The largest root chain the area takes (fake links: only the bytes matter here).
    const area = chainAreas(st)[readRootChain(st).newest === 0 ? 1 : 0];
    const link = new Uint8Array(area.count * SECTOR - 20 - 4).fill(0x7b);
    writeRootChain(st, readRootChain(st), [link]);
    writeRootChain(st, readRootChain(st), [link]);

    expect(raw()).toEqual(before);
    const again = ConfigStore.inStatePartition(new PartitionDevice(f.reboot(), 576 * 1024, 64 * 1024));
    expect(again.get('wifi-name')).toBe('home');
    expect(again.text('secret', 'admin.key')).toBe('PRIVATE');
    expect(again.damaged()).toEqual([false, false]);
  });

  it('a full config store never reaches the boot state or the root chain', () => {
    const f = newFlash({ slotA: fx.v120, floor: 3 });
    const st = parts(f).state;
    const s = ConfigStore.inStatePartition(st);
    for (let i = 0; i < 7; i++) s.set('fill-' + i, 'z'.repeat(1024));
    for (let i = 0; i < 7; i++) s.set('fill-' + i, 'w'.repeat(1024)); // both copies full
    expect(readState(st).valid).toEqual([true, true]);
    expect(bootOnce(f, fx.ks).ran).toBe('a@1.2.0');
    expect(ConfigStore.inStatePartition(parts(f).state).get('fill-6')).toBe('w'.repeat(1024));
  });
});

describe('runtime config under Node', () => {
  it('backs onto the SIGNET_CONFIG_FILE file in the same format, with the same coded errors', async () => {
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const path = join(mkdtempSync(join(tmpdir(), 'signet-cfg-')), 'config.bin');
    process.env.SIGNET_CONFIG_FILE = path;
    try {
      const { config } = await import('../sdk/runtime/index');
      const { nodeConfig } = await import('../sdk/runtime/config-node');
      config.set('wifi-name', 'attic');
      config.set('region', 'eu');
      expect(config.delete('region')).toBe(true);
      expect(config.delete('region')).toBe(false);
      expect(config.keys()).toEqual(['wifi-name']);
      expect(nodeConfig()!.get('wifi-name')).toBe('attic'); // a second process would see it
      const bytes = new Uint8Array(readFileSync(path));
      const r = readConfig(new SimFlash(bytes.length, SECTOR, bytes), fileConfigAreas(SECTOR));
      expect(r.copy!.seq).toBe(3);
      for (const [f, c] of [
        [() => config.set('Bad Key', 'x'), 'E_CONFIG_KEY'],
        [() => config.set('k', 'x'.repeat(1025)), 'E_CONFIG_TOO_LARGE'],
        [() => config.secret('admin.key'), 'E_CONFIG_MISSING'],
      ] as const) {
        let got = '';
        try {
          f();
        } catch (e) {
          got = (e as { code: string }).code;
        }
        expect(got).toBe(c);
      }
    } finally {
      delete process.env.SIGNET_CONFIG_FILE;
    }
  });
});
