/** The board registry: boards/<id>/board.json, plus any folder named in SIGNET_BOARDS. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sdkRoot } from '../util/paths';
import { BoardError } from './errors';
import { layoutErrors, schemaErrors, type Board, type Partition } from './schema';

export type { Board, Partition } from './schema';
export { BoardError } from './errors';

function boardDirs(): string[] {
  const dirs = [join(sdkRoot(), 'boards')];
  if (process.env.SIGNET_BOARDS) dirs.unshift(...process.env.SIGNET_BOARDS.split(':').filter(Boolean));
  return dirs;
}

export function listBoards(): string[] {
  const ids = new Set<string>();
  for (const d of boardDirs()) {
    if (!existsSync(d)) continue;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && existsSync(join(d, e.name, 'board.json'))) ids.add(e.name);
    }
  }
  return [...ids].sort();
}

/** Validate parsed board JSON; `source` names the file in error messages. */
export function validateBoard(v: unknown, source: string): Board {
  const errs = schemaErrors(v);
  if (!errs.length) errs.push(...layoutErrors(v as Board));
  if (errs.length) {
    const more = errs.length > 1 ? ` (and ${errs.length - 1} more problem${errs.length > 2 ? 's' : ''})` : '';
    throw new BoardError('E_BOARD_INVALID', `${source}: ${errs[0]}${more}`, 'fix the board file; see docs/boards.md for every field');
  }
  return v as Board;
}

export function loadBoard(id: string): Board {
  for (const d of boardDirs()) {
    const file = join(d, id, 'board.json');
    if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(id) || !existsSync(file)) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new BoardError('E_BOARD_INVALID', `${file}: not valid JSON (${(e as Error).message})`, 'fix the board file');
    }
    const board = validateBoard(parsed, file);
    if (board.id !== id) throw new BoardError('E_BOARD_INVALID', `${file}: id "${board.id}" does not match its folder "${id}"`, 'make the id match the folder name');
    return board;
  }
  throw new BoardError('E_BOARD_UNKNOWN', `unknown board "${id}"`, `known boards: ${listBoards().join(', ')}`);
}

/** The folder holding boards/<id>/board.json (and the board's kernel.config), as loadBoard finds it. */
export function boardFolder(id: string): string {
  for (const d of boardDirs()) {
    if (/^[a-z0-9][a-z0-9-]{0,63}$/.test(id) && existsSync(join(d, id, 'board.json'))) return join(d, id);
  }
  throw new BoardError('E_BOARD_UNKNOWN', `unknown board "${id}"`, `known boards: ${listBoards().join(', ')}`);
}

export function partition(board: Board, name: string): Partition {
  const p = board.flash.partitions.find((x) => x.name === name);
  if (!p) throw new BoardError('E_BOARD_INVALID', `board ${board.id} has no partition "${name}"`, 'add it to flash.partitions');
  return p;
}
