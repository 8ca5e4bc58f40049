import { enrollIdentity } from '../../keys/device';
import { adminClientFor } from '../../ota/repository-http';
import { intOption, JSON_OPTION, need, type Command } from '../command';
import { ADMIN_OPTIONS } from './publish';

export const deviceEnroll: Command = {
  path: ['device', 'enroll'],
  summary: 'issue a device (or, with --admin, an admin) key and X.509 certificate from the vendor CA for mutual TLS',
  options: {
    id: { type: 'string', valueName: 'id', description: 'device id (the certificate CN), e.g. tv-0001' },
    board: { type: 'string', valueName: 'id', description: 'the board the device is (required for devices; bound into its certificate)' },
    channel: { type: 'string', valueName: 'name', description: 'the rollout channel the device follows (default stable; bound into its certificate)' },
    keys: { type: 'string', valueName: 'folder', description: 'folder with vendor-ca.crt and vendor-ca.key' },
    'ca-key': { type: 'string', valueName: 'pkcs11:uri', description: 'the vendor CA key in a PKCS#11 token (RSA), instead of vendor-ca.key in --keys' },
    out: { type: 'string', valueName: 'folder', description: 'identity folder to write (default devices/<id>, or ./admin with --admin)' },
    admin: { type: 'boolean', description: 'an admin identity (publish, rollouts, revocation) instead of a device' },
    days: { type: 'string', valueName: 'n', description: 'certificate lifetime (default 3650 for devices, 365 for admins)' },
    ...JSON_OPTION,
  },
  details: [
    'Writes client.crt, client.key (0600), vendor-ca.crt and identity.json. The key is RSA-2048.',
    'The server refuses check-ins and reports that claim another board or channel (E_DEVICE_BOARD); to move a device, enroll it again.',
  ],
  async run(ctx) {
    const id = need(ctx, 'id');
    const admin = ctx.values.admin === true;
    const r = await enrollIdentity({
      id, keysDir: need(ctx, 'keys'), outDir: (ctx.values.out as string | undefined) ?? (admin ? 'admin' : `devices/${id}`), admin,
      board: ctx.values.board as string | undefined, channel: ctx.values.channel as string | undefined,
      days: intOption(ctx, 'days', 1, 36500), caKey: ctx.values['ca-key'] as string | undefined,
    });
    if (ctx.json) ctx.out(JSON.stringify(r, null, 2));
    else {
      const bound = r.board ? ` for ${r.board}/${r.channel}` : '';
      ctx.out(`enrolled ${r.role} ${r.id}${bound} in ${r.outDir} (certificate serial ${r.serial.slice(0, 16)}…, valid until ${r.notAfter})`);
    }
  },
};

export const deviceRevoke: Command = {
  path: ['device', 'revoke'],
  summary: 'put a device (or admin) id on the server\'s revocation list: every request with its certificate is refused',
  options: {
    id: { type: 'string', valueName: 'id', description: 'the id to revoke' },
    reason: { type: 'string', valueName: 'text', description: 'why (required; shown in refusals, on the dashboard and in the audit log)' },
    ...ADMIN_OPTIONS,
    ...JSON_OPTION,
  },
  async run(ctx) {
    const id = need(ctx, 'id');
    const reason = need(ctx, 'reason');
    const r = await adminClientFor(ctx.values.server as string | undefined, ctx.values.admin as string | undefined)
      .json<{ id: string; reason: string }>('POST', `/api/v1/devices/${encodeURIComponent(id)}/revoke`, { reason });
    if (ctx.json) ctx.out(JSON.stringify(r));
    else ctx.out(`revoked ${r.id}: ${r.reason}`);
  },
};

export const deviceList: Command = {
  path: ['device', 'list'],
  summary: 'list devices the server knows: board, version, last check-in, last error',
  options: { ...ADMIN_OPTIONS, ...JSON_OPTION },
  async run(ctx) {
    const r = await adminClientFor(ctx.values.server as string | undefined, ctx.values.admin as string | undefined)
      .json<{ devices: { id: string; board: string; version: string; channel: string; lastCheckin: number; lastError: string | null }[]; revoked: { id: string }[] }>('GET', '/api/v1/devices');
    if (ctx.json) {
      ctx.out(JSON.stringify(r, null, 2));
      return;
    }
    const revoked = new Set(r.revoked.map((x) => x.id));
    if (!r.devices.length) ctx.out('no devices have checked in');
    for (const d of r.devices) {
      ctx.out(`${d.id.padEnd(20)} ${d.board.padEnd(18)} ${d.version.padEnd(10)} ${d.channel.padEnd(8)} ${new Date(d.lastCheckin * 1000).toISOString()}` +
        `${d.lastError ? '  last error ' + d.lastError : ''}${revoked.has(d.id) ? '  REVOKED' : ''}`);
    }
  },
};

export const deviceSimulate: Command = {
  path: ['device', 'simulate'],
  summary: 'run a simulated device (real boot stage over a flash file, real agent over mutual TLS): boot, check in, update, trial boot, confirm',
  options: {
    dir: { type: 'string', valueName: 'folder', description: 'the identity folder from `signet device enroll`; the flash file lives there' },
    board: { type: 'string', valueName: 'id', description: 'the board it simulates' },
    root: { type: 'string', valueName: 'root.json', description: 'the root built into the device' },
    server: { type: 'string', valueName: 'url', description: 'update server (default $SIGNET_SERVER or https://localhost:8443)' },
    factory: { type: 'string', valueName: 'app.simg', description: 'factory image for slot A on first use' },
    disk: { type: 'string', valueName: 'disk.img', description: 'on first use, start from this disk image (`signet disk`; with --boot-ab for boot-image updates)' },
    'key-dtb': { type: 'string', valueName: 'pub.dtb', description: 'A/B boot slots: the U-Boot public-key DTB (`signet disk --key-dtb`); boots through U-Boot\'s A/B bootcmd and updates boot images too' },
    mirror: { type: 'string', multiple: true, valueName: 'url', description: 'a `signet mirror sync` folder\'s URL for metadata and targets (repeatable, tried in order)' },
    'server-fallback': { type: 'boolean', description: 'with --mirror: try the server\'s own /tuf after the last mirror' },
    ...JSON_OPTION,
  },
  async run(ctx) {
    const { loadBoard } = await import('../../board');
    const { simulateDevice } = await import('../../ota/simulate');
    const r = await simulateDevice({
      dir: need(ctx, 'dir'),
      board: loadBoard(need(ctx, 'board')),
      rootPath: need(ctx, 'root'),
      server: (ctx.values.server as string | undefined) ?? process.env.SIGNET_SERVER ?? 'https://localhost:8443',
      factory: ctx.values.factory as string | undefined,
      disk: ctx.values.disk as string | undefined,
      keyDtb: ctx.values['key-dtb'] as string | undefined,
      mirrors: ctx.values.mirror as string[] | undefined,
      serverFallback: ctx.values['server-fallback'] === true,
      onLine: ctx.json ? undefined : (l) => ctx.out('  ' + l),
    });
    const last = r.after ?? r.first;
    const boot = last.boot ? { slot: last.boot.slot, version: last.boot.release.version, securityCounter: last.boot.release.securityCounter } : null;
    if (ctx.json) ctx.out(JSON.stringify({ update: r.update, running: { slot: last.slot, version: last.version, confirmed: last.confirmed, boot }, lines: r.lines }, null, 2));
    else ctx.out(`device runs ${last.version ?? 'nothing (recovery)'} from slot ${last.slot ?? '-'}${r.update.outcome === 'staged' ? `, updated from ${r.first.version}` : ''} (update check: ${r.update.outcome})` +
      (boot ? `; boot image ${boot.version} from boot slot ${boot.slot}${r.update.boot?.outcome === 'staged' ? `, updated from ${r.first.boot?.release.version}` : ''}` : ''));
    return last.slot ? 0 : 1;
  },
};

export const deviceProvision: Command = {
  path: ['device', 'provision'],
  summary: 'write per-device secrets (TLS key and certificate from the vendor CA) and initial settings into a disk image\'s config store',
  options: {
    disk: { type: 'string', valueName: 'file', description: 'the disk image (made by `signet disk`) to provision' },
    id: { type: 'string', valueName: 'id', description: 'device id: the certificate CN, stored as file device-id' },
    board: { type: 'string', valueName: 'id', description: 'the board the disk was made for' },
    'ca-dir': { type: 'string', valueName: 'folder', description: 'folder with vendor-ca.crt (and vendor-ca.key for --issue)' },
    issue: { type: 'boolean', description: 'issue a new RSA-2048 key and server certificate from the vendor CA' },
    'ca-key': { type: 'string', valueName: 'pkcs11:uri', description: 'with --issue: the vendor CA key in a PKCS#11 token (RSA), instead of vendor-ca.key in --ca-dir' },
    cert: { type: 'string', valueName: 'file', description: 'a certificate to install instead (with --key)' },
    key: { type: 'string', valueName: 'file', description: 'its unencrypted PEM private key' },
    host: { type: 'string', multiple: true, valueName: 'name', description: 'DNS name for the issued certificate (repeatable; default the id)' },
    days: { type: 'string', valueName: 'n', description: 'issued certificate lifetime (default 825)' },
    set: { type: 'string', multiple: true, valueName: 'name=value', description: 'an initial setting (repeatable)' },
    identity: { type: 'string', valueName: 'folder', description: 'the device\'s update-server identity (`signet device enroll` folder): the on-device OTA agent\'s client certificate and key' },
    ...JSON_OPTION,
  },
  details: [
    'Stores file admin.crt, secret admin.key, file vendor-ca.crt and file device-id: the service reads them with config.file() / config.secret().',
    'With --identity: file ota-client.crt, secret ota-client.key, file ota-ca.crt; with --set ota.server=https://HOST:PORT (and ota.servername, ota.interval-s, ota.first-s) the boot stage runs the OTA agent.',
    'Everything is checked before the single store write; a refusal changes nothing.',
  ],
  async run(ctx) {
    const { loadBoard } = await import('../../board');
    const { provisionDevice, parseSettings } = await import('../../disk/provision-device');
    const { ProvisionError } = await import('../../disk/provision-errors');
    const issue = ctx.values.issue === true;
    const cert = ctx.values.cert as string | undefined;
    const key = ctx.values.key as string | undefined;
    if ((issue && (cert || key)) || (!issue && !!cert !== !!key)) {
      throw new ProvisionError('E_PROVISION_TLS', issue ? '--issue and --cert/--key both given' : '--cert and --key go together');
    }
    if (ctx.values['ca-key'] !== undefined && !issue) throw new ProvisionError('E_PROVISION_TLS', '--ca-key signs the certificate --issue makes: give --issue, or drop --ca-key');
    const r = await provisionDevice({
      disk: need(ctx, 'disk'), id: need(ctx, 'id'), board: loadBoard(need(ctx, 'board')),
      caDir: ctx.values['ca-dir'] as string | undefined,
      caKey: ctx.values['ca-key'] as string | undefined,
      tls: issue ? { issue: true, days: intOption(ctx, 'days', 1, 36500), hosts: ctx.values.host as string[] | undefined } : cert && key ? { certFile: cert, keyFile: key } : undefined,
      settings: parseSettings((ctx.values.set as string[] | undefined) ?? []),
      identity: ctx.values.identity as string | undefined,
    });
    if (ctx.json) ctx.out(JSON.stringify(r, null, 2));
    else {
      ctx.out(`provisioned ${r.id} (${r.board}) in ${r.disk}: ${r.written.map((w) => `${w.kind} ${w.name}`).join(', ')}` +
        (r.certSerial ? `; certificate serial ${r.certSerial.slice(0, 16)}…, valid until ${r.certNotAfter}` : ''));
      ctx.out(`  config store ${r.storeBytes} of 8160 bytes used (seq ${r.seq})`);
    }
  },
};
