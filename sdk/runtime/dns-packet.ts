/**
 * DNS messages (RFC 1035 §4) for the runtime's stub resolver: a query for one name and type,
 * and the check of a server's answer. Pure functions over bytes; dns.ts does the sending.
 *
 * The answer comes from the network, so reading it assumes nothing: every read is checked
 * against the message's length, names are at most 255 bytes of labels of at most 63, a
 * compression pointer must point backwards (before every place this name was read from), so
 * pointer loops cannot happen, and label types other than plain and pointer are refused. The
 * answer must echo our question exactly (id, name, type, class); of its records only the answer
 * section is read: CNAMEs from the name we asked (at most MAX_CNAMES), then the A or AAAA
 * records of any name on that chain. Anything malformed throws an Error with code EBADRESP.
 */
import { codedError } from './host';
import { formatIPv6 } from './ip';

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_AAAA = 28;
const CLASS_IN = 1;

const HEADER = 12;
const MAX_NAME = 255;
const MAX_LABEL = 63;
/** CNAME links followed from the name asked. */
const MAX_CNAMES = 8;
/** The largest answer read (a UDP message without EDNS is at most 512; some servers send more). */
export const MAX_MESSAGE = 4096;

/** RCODEs (RFC 1035 §4.1.1). */
export const RCODE_OK = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

export interface DnsAnswer {
  rcode: number;
  /** TC: the server cut the answer (no TCP retry here: the caller asks another server). */
  truncated: boolean;
  /** Addresses of the type asked, in the order given. */
  addresses: string[];
  /** The smallest TTL among the records used (seconds), 0 when none. */
  ttl: number;
}

function bad(why: string): Error {
  return codedError('EBADRESP', 'dns: a malformed answer: ' + why);
}

/**
 * A hostname's labels, checked as a name we may ask for: 1-63 characters of letters, digits,
 * '-' and '_' each, 253 in all, one trailing dot allowed. Null when it is not one.
 */
export function nameLabels(name: string): string[] | null {
  if (typeof name !== 'string') return null;
  const n = name.charAt(name.length - 1) === '.' ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return null;
  const labels = n.split('.');
  for (let i = 0; i < labels.length; i++) {
    if (!/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(labels[i])) return null;
  }
  return labels;
}

/** The query: header (id, RD), one question (name, type, IN). `name` must pass nameLabels. */
export function encodeQuery(id: number, name: string, type: number): Uint8Array {
  const labels = nameLabels(name);
  if (!labels) throw codedError('EBADNAME', "dns: '" + name + "' is not a hostname");
  let size = HEADER + 1 + 4;
  for (let i = 0; i < labels.length; i++) size += 1 + labels[i].length;
  const q = new Uint8Array(size);
  q[0] = (id >> 8) & 255;
  q[1] = id & 255;
  q[2] = 0x01; // RD: the server may recurse for us
  q[5] = 1; // QDCOUNT
  let at = HEADER;
  for (let i = 0; i < labels.length; i++) {
    q[at++] = labels[i].length;
    for (let k = 0; k < labels[i].length; k++) q[at++] = labels[i].charCodeAt(k);
  }
  q[at++] = 0;
  q[at++] = type >> 8;
  q[at++] = type & 255;
  q[at++] = 0;
  q[at] = CLASS_IN;
  return q;
}

/** A name in canonical text: lower case, bytes other than [a-z0-9_-] as \ddd (so a '.' inside a label cannot pass for two labels). */
function labelText(m: Uint8Array, from: number, len: number): string {
  let s = '';
  for (let i = from; i < from + len; i++) {
    let c = m[i];
    if (c >= 65 && c <= 90) c += 32;
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95;
    s += ok ? String.fromCharCode(c) : '\\' + (c < 10 ? '00' : c < 100 ? '0' : '') + c;
  }
  return s;
}

/** Reads the name at `at`; returns [text, the offset after it where it was written]. */
function readName(m: Uint8Array, at: number, limit: number): [string, number] {
  const labels: string[] = [];
  let total = 0;
  let next = -1; // where reading goes on once the name is done (after its first pointer)
  let floor = at; // every pointer must point before every place read so far
  for (;;) {
    if (at >= limit) throw bad('a name runs past its end');
    const len = m[at];
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= limit) throw bad('a name pointer is cut off');
      const target = ((len & 0x3f) << 8) | m[at + 1];
      if (next < 0) next = at + 2;
      if (target >= floor) throw bad('a name pointer does not point backwards');
      floor = target;
      at = target;
      limit = m.length; // a pointer may lead anywhere earlier in the message
      continue;
    }
    if (len & 0xc0) throw bad('an unknown label type');
    if (len === 0) {
      if (next < 0) next = at + 1;
      break;
    }
    if (len > MAX_LABEL) throw bad('a label over 63 bytes');
    if (at + 1 + len > limit) throw bad('a label runs past its end');
    total += len + 1;
    if (total + 1 > MAX_NAME) throw bad('a name over 255 bytes');
    labels.push(labelText(m, at + 1, len));
    at += 1 + len;
  }
  return [labels.join('.'), next];
}

function u16(m: Uint8Array, at: number): number {
  return (m[at] << 8) | m[at + 1];
}

function u32(m: Uint8Array, at: number): number {
  return ((m[at] << 24) >>> 0) + ((m[at + 1] << 16) | (m[at + 2] << 8) | m[at + 3]);
}

interface Record_ {
  name: string;
  type: number;
  cls: number;
  ttl: number;
  rdata: number;
  rdlength: number;
}

/**
 * Checks `m` as the answer to query `id` for `name`/`type` and returns its rcode and
 * addresses; throws EBADRESP when it is malformed or answers another question.
 */
export function parseAnswer(m: Uint8Array, id: number, name: string, type: number): DnsAnswer {
  if (m.length < HEADER) throw bad('shorter than a header');
  if (m.length > MAX_MESSAGE) throw bad('longer than ' + MAX_MESSAGE + ' bytes');
  if (u16(m, 0) !== id) throw bad('another query id');
  const flags = u16(m, 2);
  if (!(flags & 0x8000)) throw bad('not a response');
  if ((flags >> 11) & 15) throw bad('not a standard query response');
  const rcode = flags & 15;
  const qd = u16(m, 4);
  const an = u16(m, 6);
  if (qd !== 1) throw bad('not one question');
  const asked = nameLabels(name);
  if (!asked) throw codedError('EBADNAME', "dns: '" + name + "' is not a hostname");
  const want = asked.join('.').toLowerCase();
  const q = readName(m, HEADER, m.length);
  if (q[1] + 4 > m.length) throw bad('the question is cut off');
  if (q[0] !== want || u16(m, q[1]) !== type || u16(m, q[1] + 2) !== CLASS_IN) throw bad('it answers another question');
  let at = q[1] + 4;
  const records: Record_[] = [];
  for (let i = 0; i < an; i++) {
    const r = readName(m, at, m.length);
    at = r[1];
    if (at + 10 > m.length) throw bad('a record is cut off');
    const rdlength = u16(m, at + 8);
    if (at + 10 + rdlength > m.length) throw bad('record data runs past the end');
    records.push({ name: r[0], type: u16(m, at), cls: u16(m, at + 2), ttl: u32(m, at + 4), rdata: at + 10, rdlength });
    at += 10 + rdlength;
  }
  // The chain of names: the one asked, then each CNAME target from a name already on it.
  const chain: string[] = [want];
  let ttl = -1;
  for (let link = 0; ; link++) {
    const last = chain[chain.length - 1];
    let found: Record_ | null = null;
    for (let i = 0; i < records.length; i++) {
      if (records[i].type === TYPE_CNAME && records[i].cls === CLASS_IN && records[i].name === last) {
        found = records[i];
        break;
      }
    }
    if (!found) break;
    if (link === MAX_CNAMES) throw bad('more than ' + MAX_CNAMES + ' CNAMEs');
    const target = readName(m, found.rdata, found.rdata + found.rdlength);
    if (target[1] !== found.rdata + found.rdlength) throw bad('a CNAME with data after its name');
    for (let i = 0; i < chain.length; i++) if (chain[i] === target[0]) throw bad('a CNAME loop');
    chain.push(target[0]);
    ttl = ttl < 0 ? found.ttl : Math.min(ttl, found.ttl);
  }
  const addresses: string[] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (r.type !== type || r.cls !== CLASS_IN) continue;
    let onChain = false;
    for (let k = 0; k < chain.length; k++) if (chain[k] === r.name) onChain = true;
    if (!onChain) continue; // an answer about a name we did not ask for is not believed
    if (type === TYPE_A) {
      if (r.rdlength !== 4) throw bad('an A record of ' + r.rdlength + ' bytes');
      addresses.push(m[r.rdata] + '.' + m[r.rdata + 1] + '.' + m[r.rdata + 2] + '.' + m[r.rdata + 3]);
    } else {
      if (r.rdlength !== 16) throw bad('an AAAA record of ' + r.rdlength + ' bytes');
      addresses.push(formatIPv6(m, r.rdata));
    }
    ttl = ttl < 0 ? r.ttl : Math.min(ttl, r.ttl);
  }
  return { rcode, truncated: (flags & 0x0200) !== 0, addresses, ttl: ttl < 0 ? 0 : ttl };
}
