/**
 * IP address literals, as node:net's isIP/isIPv4/isIPv6 tell them: what needs no DNS query.
 * Plain ES5, no dependencies (net, dgram and dns all use it).
 */

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: string): boolean {
  return typeof s === 'string' && V4.test(s);
}

/** RFC 4291 text: up to 8 groups of 1-4 hex digits, one `::`, an IPv4 tail; no zone (`%eth0`). */
export function isIPv6(s: string): boolean {
  if (typeof s !== 'string' || s.length < 2 || s.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(s)) return false;
  const halves = s.split('::');
  if (halves.length > 2) return false;
  let groups = 0;
  for (let h = 0; h < halves.length; h++) {
    if (halves[h] === '') continue;
    const parts = halves[h].split(':');
    for (let i = 0; i < parts.length; i++) {
      const last = h === halves.length - 1 && i === parts.length - 1;
      if (last && parts[i].indexOf('.') >= 0) {
        if (!isIPv4(parts[i])) return false;
        groups += 2;
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(parts[i])) {
        groups += 1;
      } else {
        return false;
      }
    }
  }
  return halves.length === 2 ? groups <= 7 : groups === 8;
}

/** 4, 6, or 0 when `s` is not an address literal. */
export function isIP(s: string): number {
  return isIPv4(s) ? 4 : isIPv6(s) ? 6 : 0;
}

/** 16 bytes as RFC 5952 text: lower case, leading zeros dropped, the longest run of zeros as `::`. */
export function formatIPv6(b: Uint8Array, at: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[at + 2 * i] << 8) | b[at + 2 * i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = function (from: number, to: number): string {
    const out: string[] = [];
    for (let i = from; i < to; i++) out.push(g[i].toString(16));
    return out.join(':');
  };
  return best < 0 ? hex(0, 8) : hex(0, best) + '::' + hex(best + bestLen, 8);
}
