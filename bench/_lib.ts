/** Shared bits for benchmarks. Figures are ratios against an anchor measured in the same run. */
export type Figures = Record<string, { value: number; unit: string }>;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function timeMs(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Best of n: the least disturbed run on a noisy machine. */
export function bestOf(n: number, f: () => void): number {
  let best = Infinity;
  for (let i = 0; i < n; i++) best = Math.min(best, timeMs(f));
  return best;
}
