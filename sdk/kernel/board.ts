/** A board's kernel build: its pinned source version and boards/<id>/kernel.config. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { boardFolder, type Board } from '../board';
import { buildKernel, type KernelBuild } from './build';
import { KernelError } from './errors';

export const KERNEL_FRAGMENT = 'kernel.config';

export function buildBoardKernel(board: Board, options: { progress?: boolean; cache?: string } = {}): Promise<KernelBuild> {
  if (board.kernel.source !== 'debian-source') {
    return Promise.reject(new KernelError('E_KERNEL_SOURCE', `board ${board.id} uses Debian's binary kernel (kernel.source "${board.kernel.source ?? 'debian-binary'}"): there is nothing to build`, 'set kernel.source to "debian-source" and kernel.version in its board.json, with a kernel.config beside it'));
  }
  const version = board.kernel.version;
  if (!version) return Promise.reject(new KernelError('E_KERNEL_SOURCE', `board ${board.id} builds its kernel from source but pins no kernel.version`, 'set kernel.version, e.g. "6.1"'));
  const fragmentPath = join(boardFolder(board.id), KERNEL_FRAGMENT);
  let fragment: string;
  try {
    fragment = readFileSync(fragmentPath, 'utf8');
  } catch (cause) {
    return Promise.reject(new KernelError('E_KERNEL_CONFIG', `board ${board.id} builds its kernel from source but has no ${fragmentPath}`, 'write the fragment (see docs/kernel.md), or set kernel.source to "debian-binary"', cause));
  }
  return buildKernel({ boardId: board.id, arch: board.arch, version, fragmentPath, fragment, progress: options.progress, cache: options.cache });
}
