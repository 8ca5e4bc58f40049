/**
 * Just enough of source map v3 to answer "which source line produced this generated
 * position": the build uses it to name the module and line of an engine error.
 */

export interface SourcePosition {
  source: string;
  line: number; // 1-based
  column: number; // 0-based
}

interface Segment {
  genColumn: number;
  source: number;
  line: number; // 0-based
  column: number;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE: Record<string, number> = {};
for (let i = 0; i < B64.length; i++) B64_VALUE[B64[i]] = i;

function decodeVlq(s: string, pos: { i: number }): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    const v = B64_VALUE[s[pos.i++]];
    if (v === undefined) throw new Error('bad source map mapping');
    result += (v & 31) << shift;
    if ((v & 32) === 0) break;
    shift += 5;
  }
  return result & 1 ? -(result >>> 1) : result >>> 1;
}

export class SourceMap {
  readonly sources: string[];
  private readonly lines: Segment[][];

  constructor(json: string | { sources: string[]; mappings: string }) {
    const raw = typeof json === 'string' ? (JSON.parse(json) as { sources: string[]; mappings: string }) : json;
    this.sources = raw.sources;
    this.lines = [];
    let source = 0;
    let line = 0;
    let column = 0;
    for (const text of raw.mappings.split(';')) {
      const segs: Segment[] = [];
      let genColumn = 0;
      if (text) {
        for (const seg of text.split(',')) {
          const pos = { i: 0 };
          genColumn += decodeVlq(seg, pos);
          if (pos.i >= seg.length) continue; // a segment without a source
          source += decodeVlq(seg, pos);
          line += decodeVlq(seg, pos);
          column += decodeVlq(seg, pos);
          segs.push({ genColumn, source, line, column });
        }
      }
      this.lines.push(segs);
    }
  }

  /** Generated lines the map covers. */
  get lineCount(): number {
    return this.lines.length;
  }

  /** The original position of the first mapped segment on a generated line (1-based), if any. */
  firstOnLine(line: number): (SourcePosition & { genColumn: number }) | undefined {
    const segs = this.lines[line - 1];
    if (!segs || segs.length === 0) return undefined;
    const s = segs[0];
    return { source: this.sources[s.source], line: s.line + 1, column: s.column, genColumn: s.genColumn };
  }

  /**
   * The original position for a generated one (line 1-based, column 0-based): the closest
   * mapped segment at or before it, looking back over earlier lines if needed.
   */
  lookup(line: number, column: number): SourcePosition | undefined {
    for (let l = Math.min(line - 1, this.lines.length - 1); l >= 0; l--) {
      const segs = this.lines[l];
      for (let k = segs.length - 1; k >= 0; k--) {
        if (l === line - 1 && segs[k].genColumn > column) continue;
        const s = segs[k];
        const delta = l === line - 1 ? column - s.genColumn : 0;
        return { source: this.sources[s.source], line: s.line + 1, column: s.column + delta };
      }
    }
    return undefined;
  }
}
