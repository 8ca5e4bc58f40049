/**
 * A tiny authoritative DNS server on 127.0.0.1 for tests: A, AAAA and CNAME records from a
 * table, NXDOMAIN for names it does not know, and per-name misbehaviour (no answer, SERVFAIL,
 * a malformed answer, an answer with another id first). Answers point back at the question
 * with a compression pointer, as real servers do. It records every question it gets, so a test
 * can tell that a lookup did (or did not) send anything.
 */
import { createSocket, type Socket } from 'node:dgram';

export interface DnsZone {
  [name: string]: { a?: string[]; aaaa?: string[]; cname?: string; behave?: 'silent' | 'servfail' | 'garbage' | 'spoof-first' };
}

export interface DnsTestServer {
  port: number;
  /** "name TYPE" per question received, in order (TYPE: A, AAAA or the number). */
  questions: string[];
  close(): Promise<void>;
}

function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.replace(/\.$/, '').split('.')) out.push(label.length, ...Buffer.from(label, 'latin1'));
  out.push(0);
  return out;
}

function ipv6Bytes(a: string): number[] {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 255]);
}

/** Parses the question of a query: [id, name (lower case), type, end of question]. */
function question(q: Buffer): [number, string, number, number] | null {
  if (q.length < 17) return null;
  let at = 12;
  const labels: string[] = [];
  while (at < q.length && q[at] !== 0) {
    const len = q[at]!;
    if (len > 63 || at + 1 + len > q.length) return null;
    labels.push(q.subarray(at + 1, at + 1 + len).toString('latin1').toLowerCase());
    at += 1 + len;
  }
  if (at + 5 > q.length) return null;
  return [q.readUInt16BE(0), labels.join('.'), q.readUInt16BE(at + 1), at + 5];
}

export function answerFor(zone: DnsZone, q: Buffer, idOverride?: number): Buffer | null {
  const parsed = question(q);
  if (!parsed) return null;
  const [id, name, type, end] = parsed;
  const entry = zone[name];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(idOverride ?? id, 0);
  const records: number[] = [];
  let count = 0;
  let rcode = 0;
  if (!entry) rcode = 3;
  else if (entry.behave === 'servfail') rcode = 2;
  else {
    // The owner of the first record is the question's name (pointer 0xc00c); a CNAME's target
    // is then written out and the records of the target use a pointer to it.
    let owner = [0xc0, 12];
    let current = entry;
    let hops = 0;
    while (current.cname && hops++ < 16) {
      const target = encodeName(current.cname);
      const at = 12 + (end - 12) + records.length + owner.length + 10;
      records.push(...owner, 0, 5, 0, 1, 0, 0, 1, 44, target.length >> 8, target.length & 255, ...target);
      count++;
      owner = [0xc0 | (at >> 8), at & 255];
      current = zone[current.cname.toLowerCase()] ?? {};
    }
    const list = type === 1 ? current.a ?? [] : type === 28 ? current.aaaa ?? [] : [];
    for (const a of list) {
      const bytes = type === 1 ? a.split('.').map(Number) : ipv6Bytes(a);
      records.push(...owner, 0, type, 0, 1, 0, 0, 0, 60, 0, bytes.length, ...bytes);
      count++;
    }
  }
  header.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(count, 6);
  return Buffer.concat([header, q.subarray(12, end), Buffer.from(records)]);
}

export function startDnsServer(zone: DnsZone, host = '127.0.0.1'): Promise<DnsTestServer> {
  const questions: string[] = [];
  const s: Socket = createSocket('udp4');
  s.on('message', (q, rinfo) => {
    const parsed = question(q);
    if (!parsed) return;
    questions.push(`${parsed[1]} ${parsed[2] === 1 ? 'A' : parsed[2] === 28 ? 'AAAA' : parsed[2]}`);
    const behave = zone[parsed[1]]?.behave;
    if (behave === 'silent') return;
    if (behave === 'garbage') {
      // the right id, then nonsense: a pointer that points at itself
      const g = Buffer.from([q[0]!, q[1]!, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12]);
      s.send(g, rinfo.port, rinfo.address);
      return;
    }
    if (behave === 'spoof-first') {
      const spoof = answerFor({ [parsed[1]]: { a: ['10.66.66.66'] } }, q, (parsed[0] + 1) & 0xffff);
      if (spoof) s.send(spoof, rinfo.port, rinfo.address);
    }
    const a = answerFor(zone, q);
    if (a) s.send(a, rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => {
    s.bind(0, host, () => {
      resolve({ port: s.address().port, questions, close: () => new Promise((r) => s.close(() => r())) });
    });
  });
}
