// The byte regions of a DTB that a FIT configuration signature covers: a
// line-by-line port of U-Boot's fdt_find_regions() (boot/fdt_region.c), which
// both `mkimage` (signing) and U-Boot (verifying) call. The quirks are kept on
// purpose — the signed bytes must match U-Boot's to the byte:
//  - a node on the include list contributes its FDT_BEGIN_NODE, all its
//    properties (except excluded names) and its FDT_END_NODE;
//  - a direct subnode of an included node contributes only its BEGIN/END tags;
//  - an FDT_END_NODE that immediately follows included bytes is included;
//  - adjacent regions merge; the FDT_END token always ends the last region.

import { FdtError } from './errors';
import { checkFdtHeader, DEFAULT_MAX_DEPTH, walkFdtTags } from './fdt';

export interface FdtRegion {
  /** Absolute offset in the blob. */
  offset: number;
  size: number;
}

export interface FindRegionsOptions {
  /** Extend the last region over the whole strings block (mkimage passes 1). */
  addStringTable: boolean;
}

export function fdtFindRegions(
  blob: Uint8Array,
  includeNodes: readonly string[],
  excludeProps: readonly string[],
  options: FindRegionsOptions,
): FdtRegion[] {
  const h = checkFdtHeader(blob, { allowTrailingData: true });
  const base = h.offDtStruct;
  const include = new Set(includeNodes);
  const exclude = new Set(excludeProps);
  const regions: FdtRegion[] = [];
  const wantStack: number[] = [];
  const path: string[] = [];
  let want = 0;
  let start = -1;
  let depth = -1;
  let sawEnd = false;
  let rootClosed = false;

  for (const tag of walkFdtTags(blob, h)) {
    let included = false;
    let stopAt = tag.next;
    switch (tag.kind) {
      case 'prop':
        included = want >= 2 && !exclude.has(tag.name);
        stopAt = tag.offset;
        break;
      case 'nop':
        included = want >= 2;
        stopAt = tag.offset;
        break;
      case 'begin': {
        depth++;
        if (depth === DEFAULT_MAX_DEPTH) {
          throw new FdtError('E_FDT_NESTING', `nodes nest deeper than ${DEFAULT_MAX_DEPTH} levels — the file is corrupt`);
        }
        if (depth === 0 && tag.name !== '') {
          throw new FdtError('E_FDT_BAD_NAME', 'the root node has a name — the file is corrupt');
        }
        if (depth === 0 && rootClosed) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', 'device tree has a second root node — the file is corrupt');
        }
        path.push(tag.name);
        wantStack[depth] = want;
        if (want === 1) stopAt = tag.offset;
        if (include.has(pathString(path))) want = 2;
        else if (want) want--;
        else stopAt = tag.offset;
        included = want > 0;
        break;
      }
      case 'end_node':
        if (depth < 0) {
          throw new FdtError('E_FDT_NESTING', `FDT_END_NODE at offset ${tag.offset} closes no node — the file is corrupt`);
        }
        included = want > 0;
        want = wantStack[depth--]!;
        path.pop();
        if (depth === -1) rootClosed = true;
        break;
      case 'end':
        if (depth !== -1) {
          throw new FdtError('E_FDT_NESTING', `FDT_END at offset ${tag.offset} with nodes still open — the file is corrupt`);
        }
        if (tag.next !== h.sizeDtStruct) {
          throw new FdtError('E_FDT_BAD_STRUCTURE', 'FDT_END is not the end of the structure block — the file is corrupt');
        }
        included = true;
        sawEnd = true;
        break;
    }

    if (included && start === -1) {
      const last = regions[regions.length - 1];
      if (last && tag.offset === last.offset + last.size - base) {
        start = regions.pop()!.offset - base;
      } else {
        start = tag.offset;
      }
    }
    if (!included && start !== -1) {
      regions.push({ offset: base + start, size: stopAt - start });
      start = -1;
    }
  }
  if (!sawEnd) throw new FdtError('E_FDT_TRUNCATED', 'structure block has no FDT_END token — the file is truncated');

  regions.push({
    offset: base + start,
    size: h.sizeDtStruct - start + (options.addStringTable ? h.sizeDtStrings : 0),
  });
  return regions;
}

function pathString(parts: readonly string[]): string {
  // parts[0] is the root's empty name.
  return parts.length <= 1 ? '/' : parts.join('/');
}

/** The bytes of each region, in order (what the signature digest is taken over). */
export function regionBytes(blob: Uint8Array, regions: readonly FdtRegion[]): Uint8Array[] {
  return regions.map((r) => blob.subarray(r.offset, r.offset + r.size));
}
