import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listBoards, loadBoard, validateBoard, BoardError } from '../sdk/board';

const qemu = () => JSON.parse(readFileSync(join(__dirname, '..', 'boards', 'qemu-virt-arm64', 'board.json'), 'utf8'));

function problem(mutate: (b: any) => void): string {
  const b = qemu();
  mutate(b);
  try {
    validateBoard(b, 'test.json');
  } catch (e) {
    expect(e).toBeInstanceOf(BoardError);
    expect((e as BoardError).code).toBe('E_BOARD_INVALID');
    return (e as BoardError).message;
  }
  return 'valid';
}

describe('boards', () => {
  it('every shipped board validates; the two runtime profiles and two real boards exist', () => {
    const ids = listBoards();
    expect(ids).toEqual(expect.arrayContaining(['qemu-virt-arm64', 'xen-arm32', 'bpi-r4-router', 'tv-soc-armv7']));
    for (const id of ids) expect(loadBoard(id).id).toBe(id);
    expect(loadBoard('qemu-virt-arm64')).toMatchObject({ arch: 'arm64', hypervisor: 'kvm', engine: 'duktape-es5' });
    expect(loadBoard('xen-arm32')).toMatchObject({ arch: 'armhf', hypervisor: 'xen' });
  });
  it('unknown board: error lists the known ones', () => {
    let line = '';
    try { loadBoard('no-such-board'); } catch (e) { line = (e as BoardError).line(); }
    expect(line).toMatch(/^error\[E_BOARD_UNKNOWN\]: unknown board "no-such-board" — known boards: .*qemu-virt-arm64/);
    expect(() => loadBoard('../etc')).toThrow(BoardError);
  });
  it('schema errors name the file and the JSON path', () => {
    expect(problem(() => {})).toBe('valid');
    expect(problem((b) => { b.colour = 'red'; })).toMatch(/^test\.json: colour: unknown field/);
    expect(problem((b) => { delete b.arch; })).toMatch(/arch: missing/);
    expect(problem((b) => { b.arch = 'mips'; })).toMatch(/arch: must be one of arm64, armhf/);
    expect(problem((b) => { b.loadAddresses.fit = '5000'; })).toMatch(/loadAddresses\.fit: must be a hex address/);
    expect(problem((b) => { b.flash.blockSize = 'big'; })).toMatch(/flash\.blockSize: must be an integer/);
    expect(problem((b) => { b.serial.write = 'mmc write'; })).toMatch(/serial\.write/);
    expect(problem((b) => { b.serial.envMode = 'sometimes'; })).toMatch(/serial\.envMode: must be one of save, check/);
    expect(problem((b) => { b.serial.envMode = 'save'; })).toBe('valid');
    expect(problem((b) => { b.serial.env.bootcmd = "echo 'hi'"; })).toMatch(/serial\.env\.bootcmd/);
    expect(problem((b) => { b.serial.env['boot cmd'] = 'x'; })).toMatch(/serial\.env\.boot cmd: not an allowed name/);
  });
  it('flash layout rules: required partitions, alignment, overlap, bounds, equal slots', () => {
    expect(problem((b) => { b.flash.partitions = b.flash.partitions.filter((p: any) => p.name !== 'state').concat([{ name: 'misc', offset: 0, size: 512 }]); })).toMatch(/no "state" partition/);
    expect(problem((b) => { b.flash.partitions[1].offset += 100; })).toMatch(/multiples of blockSize/);
    expect(problem((b) => { b.flash.partitions[2].offset = b.flash.partitions[1].offset; })).toMatch(/overlaps/);
    expect(problem((b) => { b.flash.partitions[3].offset = b.flash.size; })).toMatch(/ends past the flash size/);
    expect(problem((b) => { b.flash.partitions[2].size = 1 << 20; })).toMatch(/same size/);
    expect(problem((b) => { b.hypervisor = 'xen'; })).toMatch(/xen: required/);
  });
});
