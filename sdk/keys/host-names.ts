/**
 * The names a server certificate is issued for (`signet server keys --host`, `signet server
 * --host`): each is a DNS name (RFC 1123 labels) or an IP literal, and becomes a subjectAltName
 * entry of the matching type — dNSName or iPAddress. Anything else is refused: a certificate
 * with a malformed subjectAltName (`999.1.1.1`, `a..b`) matches no client's idea of the host.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { hintedError } from '../util/errors';

export type HostNameErrorCode = 'E_HOST_NAME';

export class HostNameError extends hintedError<HostNameErrorCode>('HostNameError', {
  E_HOST_NAME: 'pass a DNS name (labels of letters, digits and "-", 1–63 characters each) or an IPv4/IPv6 address, e.g. --host updates.example.com --host 192.0.2.10 --host ::1',
}) {}

export type ServerHost = { type: 'dns'; name: string } | { type: 'ip'; address: string };

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_DNS_NAME = 253;

/** One `--host` value as a subjectAltName entry, or HostNameError. */
export function parseServerHost(host: string): ServerHost {
  const bad = (why: string) => new HostNameError('E_HOST_NAME', `bad --host ${JSON.stringify(host)}: ${why}`);
  if (host === '') throw bad('empty');
  if (isIPv4(host)) return { type: 'ip', address: host };
  if (host.includes(':')) {
    if (host.includes('%')) throw bad('an IPv6 zone (%…) has no place in a certificate');
    if (host.startsWith('[') || !isIPv6(host)) throw bad('not an IPv6 address (write it without brackets, e.g. ::1)');
    // The URL parser writes an IPv6 address in its canonical form (an embedded IPv4 part as hex groups).
    return { type: 'ip', address: new URL(`https://[${host}]/`).hostname.slice(1, -1) };
  }
  if (/^[0-9.]+$/.test(host)) throw bad('not an IPv4 address (four numbers 0–255 without leading zeros)');
  const wildcard = host.startsWith('*.');
  const name = (wildcard ? host.slice(2) : host).toLowerCase();
  if (name.length + (wildcard ? 2 : 0) > MAX_DNS_NAME) throw bad(`longer than ${MAX_DNS_NAME} characters`);
  const labels = name.split('.');
  for (const label of labels) {
    if (label === '') throw bad('an empty label (two dots in a row, or a dot at either end)');
    if (label.length > 63) throw bad(`the label "${label.slice(0, 16)}…" is longer than 63 characters`);
    if (!LABEL.test(label)) throw bad(`the label ${JSON.stringify(label)} may hold only letters, digits and "-" (not at either end)`);
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) throw bad('a DNS name cannot end in an all-numeric label');
  if (wildcard && labels.length < 2) throw bad('a wildcard needs at least two labels after "*."');
  return { type: 'dns', name: (wildcard ? '*.' : '') + name };
}

/** All `--host` values, split by type, duplicates dropped (first use kept). */
export function parseServerHosts(hosts: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const h of hosts) {
    const p = parseServerHost(h);
    if (p.type === 'dns') {
      if (!dnsNames.includes(p.name)) dnsNames.push(p.name);
    } else if (!ipAddresses.includes(p.address)) ipAddresses.push(p.address);
  }
  return { dnsNames, ipAddresses };
}
