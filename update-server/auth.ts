/**
 * Who is asking, from what mutual TLS established: the certificate must chain to the vendor
 * CA (checked by TLS, reported by the adapter), carry a Signet role in its OU, and name an
 * identity that is not revoked. The device id is the certificate's CN, never a body field.
 */
import { ServerError } from './errors';
import type { AppRequest } from './http';
import type { RevocationRecord, Storage } from './storage';

export type CallerRole = 'device' | 'admin';

export interface Caller {
  id: string;
  role: CallerRole;
  serial: string | null;
  /**
   * Devices: the board and channel bound into the certificate at enrollment (OU `board:<id>`,
   * `channel:<name>`); null when the certificate carries none (enrolled before binding) or
   * several (ambiguous), which the fleet refuses.
   */
  board: string | null;
  channel: string | null;
}

/** The one value of an OU `<prefix>:<value>`, or null when there is none or more than one. */
function bound(ous: string[], prefix: string): string | null {
  const v = ous.filter((o) => o.startsWith(prefix + ':'));
  return v.length === 1 ? v[0].slice(prefix.length + 1) : null;
}

export async function authenticate(req: AppRequest, storage: Storage, need: CallerRole | 'any'): Promise<Caller> {
  const caller = identify(req);
  refuseRevoked(caller.id, await storage.revocation(caller.id));
  requireRole(caller, need);
  return caller;
}

/**
 * What the certificate says, checked: it chains to the vendor CA, names a CN and carries a
 * Signet role. NOT yet checked: that the identity is not revoked (a database read) and that
 * the role is the endpoint's; `authenticate` does all three. A route that reads the revocation
 * in its own first read (the check-in, `Storage.checkinState`) calls `refuseRevoked` itself,
 * before it reads the body or writes anything.
 */
export function identify(req: AppRequest): Caller {
  const c = req.client;
  if (!c.present) throw new ServerError('E_AUTH_NO_CERT', 'no client certificate presented');
  if (!c.authorized) throw new ServerError('E_AUTH_BAD_CERT', 'client certificate refused (' + (c.authorizationError ?? 'not issued by the vendor CA') + ')');
  if (!c.commonName) throw new ServerError('E_AUTH_BAD_CERT', 'client certificate has no subject CN');
  // OU values: the role, and for devices `board:…` / `channel:…`.
  const role: CallerRole | null = c.roles.includes('admin') ? 'admin' : c.roles.includes('device') ? 'device' : null;
  if (!role) throw new ServerError('E_AUTH_BAD_CERT', 'client certificate has no Signet role (OU=device or OU=admin)');
  return { id: c.commonName, role, serial: c.serial ?? null, board: bound(c.roles, 'board'), channel: bound(c.roles, 'channel') };
}

/** A revoked identity is refused (E_AUTH_REVOKED), whatever it asks for. */
export function refuseRevoked(id: string, revoked: RevocationRecord | null): void {
  if (revoked) throw new ServerError('E_AUTH_REVOKED', `${id} was revoked: ${revoked.reason}`);
}

export function requireRole(caller: Caller, need: CallerRole | 'any'): void {
  if (need !== 'any' && caller.role !== need) {
    throw new ServerError('E_AUTH_ROLE', `${caller.id} is a${caller.role === 'admin' ? 'n admin' : ' device'}; this endpoint is for ${need}s`);
  }
}

export function isLoopback(address: string): boolean {
  return address === '::1' || /^(::ffff:)?127\./.test(address);
}
