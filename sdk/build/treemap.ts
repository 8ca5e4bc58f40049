/**
 * Squarified treemap layout (Bruls, Huizing, van Wijk 2000): rectangles whose areas are
 * proportional to their values, filling the canvas, with aspect ratios kept near 1 so small
 * modules stay visible and labels fit.
 */

export interface TreemapItem<T> {
  value: number;
  data: T;
}

export interface TreemapRect<T> {
  x: number;
  y: number;
  w: number;
  h: number;
  data: T;
}

/** Worst aspect ratio of a row of areas laid along a side of length `side`. */
function worst(row: number[], side: number): number {
  let sum = 0;
  let max = 0;
  let min = Infinity;
  for (const a of row) {
    sum += a;
    if (a > max) max = a;
    if (a < min) min = a;
  }
  const s2 = side * side;
  const sum2 = sum * sum;
  return Math.max((s2 * max) / sum2, sum2 / (s2 * min));
}

/**
 * Lay out items with value > 0 in the `width`×`height` canvas. Items are placed largest first;
 * the returned rectangles are in that order.
 */
export function squarify<T>(items: readonly TreemapItem<T>[], width: number, height: number): TreemapRect<T>[] {
  const sorted = items.filter((i) => i.value > 0).sort((a, b) => b.value - a.value);
  const total = sorted.reduce((s, i) => s + i.value, 0);
  const out: TreemapRect<T>[] = [];
  if (total === 0 || width <= 0 || height <= 0) return out;
  const scale = (width * height) / total;
  const areas = sorted.map((i) => i.value * scale);

  let x = 0;
  let y = 0;
  let w = width;
  let h = height;
  let i = 0;
  while (i < sorted.length) {
    const side = Math.min(w, h);
    const row = [areas[i]];
    let j = i + 1;
    while (j < sorted.length && worst(row.concat([areas[j]]), side) <= worst(row, side)) {
      row.push(areas[j]);
      j++;
    }
    const rowArea = row.reduce((s, a) => s + a, 0);
    const last = j === sorted.length;
    if (w >= h) {
      // A column on the left, as tall as the remaining space.
      const colW = last ? w : rowArea / h;
      let cy = y;
      row.forEach((a, k) => {
        const rh = k === row.length - 1 ? y + h - cy : a / colW;
        out.push({ x, y: cy, w: colW, h: rh, data: sorted[i + k].data });
        cy += rh;
      });
      x += colW;
      w -= colW;
    } else {
      // A row along the top, as wide as the remaining space.
      const rowH = last ? h : rowArea / w;
      let cx = x;
      row.forEach((a, k) => {
        const rw = k === row.length - 1 ? x + w - cx : a / rowH;
        out.push({ x: cx, y, w: rw, h: rowH, data: sorted[i + k].data });
        cx += rw;
      });
      y += rowH;
      h -= rowH;
    }
    i = j;
  }
  return out;
}
