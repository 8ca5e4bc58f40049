/**
 * The boot stage's entry on the device: `/signet/boot.js` (and, precompiled, /signet/boot.dukbc),
 * run by the C host as PID 1 (or by `node-host.ts` on Node). Reads the compiled-in
 * configuration, boots a verified slot, runs its app with a host object (`__signet_host`), then
 * powers off (test mode) or reboots.
 *
 * Crypto is the C host's: SHA-256 and ed25519 (libsodium), behind the encoding rules of
 * sdk/image/ed25519-rules.ts. Words after `--` on the kernel command line select the pure-JS
 * code instead, which gives the same answers, slower: `--purejs-hash` (our SHA-256),
 * `--purejs-ed25519` (tweetnacl), `--purejs-crypto` (both). A host without ed25519Verify gets
 * tweetnacl too. `--restart-backoff-ms N` sets the first delay before a failed service runs
 * again (default 1000).
 */
import { makePureJsCrypto } from '../../sdk/image/crypto-purejs';
import { verifyTrustedRoot, type RootSigned } from '../../sdk/ota/metadata';
import { LINE_TABLE_MAX_BYTES, LINE_TABLE_PAYLOAD, lookupLine, parseLineTable, type LineTable } from '../../sdk/build/linetable';
import { utf8Decode, utf8Encode } from '../../sdk/util/bytes';
import { PartitionDevice } from './block';
import type { BootConfig } from './config';
import { errorCode } from './errors';
import { NativeBlockDevice, type SignetNative } from './native';
import { BootStage, type BootChoice } from './stage';
import type { ImageCrypto } from '../../sdk/image/crypto';
import { confirmBootSlot } from './bootenv';
import { ConfigStore } from './configstore';
import type { HostConfig } from '../../sdk/runtime/config-types';
import { readAgentConfig, startDeviceAgent, type DeviceAgentHandle } from '../../sdk/ota/agent-device';
import type { BootSlotsDevice } from '../../sdk/ota/boot-target-agent';
import type { BootFitKey } from '../../sdk/ota/boot-target-fit';
import { fromHex } from '../../sdk/util/bytes';

declare const signet_native: SignetNative;
declare const __SIGNET_BOOT_CONFIG__: BootConfig;

/** A service whose handler throws is run again after 1 s, 2 s, 4 s, 8 s, 16 s, then given up. */
const RESTART_BACKOFF_MS = 1000;
const MAX_RESTARTS = 5;
/** A service that ran this long before failing starts its back-off over. */
const RESTART_RESET_MS = 5 * 60 * 1000;

function argValue(args: string[], name: string): string | null {
  for (let i = 0; i < args.length - 1; i++) if (args[i] === name) return args[i + 1];
  return null;
}

function hasArg(args: string[], name: string): boolean {
  for (let i = 0; i < args.length; i++) if (args[i] === name) return true;
  return false;
}

/**
 * The config store as the runtime's `config` reaches it (`__signet_host.config`). Its own
 * window of the state partition; the store only ever writes its two areas, which the boot
 * stage never writes (docs/boot-state.md §Config store).
 */
function hostConfig(open: () => PartitionDevice, log: (line: string) => void): HostConfig {
  let store: ConfigStore | null = null;
  const s = function (): ConfigStore {
    if (!store) {
      store = ConfigStore.inStatePartition(open());
      const d = store.damaged();
      for (let i = 0; i < 2; i++) if (d[i]) log('boot[CONFIG] copy=' + i + ' reason=E_CONFIG_TORN');
    }
    return store;
  };
  return {
    get: function (key: string) { return s().get(key); },
    set: function (key: string, value: unknown) { s().set(key, value); },
    delete: function (key: string) { return s().delete(key); },
    keys: function () { return s().keys(); },
    file: function (name: string) { return s().text('file', name); },
    secret: function (name: string) { return s().text('secret', name); },
  };
}

/** The image's line table (payload app.lines), or null when it has none or it does not parse. */
function appLineTable(payloads: { name: string; bytes: Uint8Array }[]): LineTable | null {
  for (let i = 0; i < payloads.length; i++) {
    if (payloads[i].name !== LINE_TABLE_PAYLOAD || payloads[i].bytes.length > LINE_TABLE_MAX_BYTES) continue;
    const text = utf8Decode(payloads[i].bytes);
    return text === null ? null : parseLineTable(text);
  }
  return null;
}

/**
 * Start the OTA agent next to the app (docs/ota-agent.md "On the device") when the config store
 * names an update server; a server without the device's identity is logged, not fatal.
 */
function startAgent(config: HostConfig, stage: BootStage, choice: BootChoice, cfg: BootConfig, crypto: ImageCrypto,
  now: () => number | null, log: (line: string) => void, reboot: () => void, n: SignetNative, disk: NativeBlockDevice): DeviceAgentHandle | null {
  try {
    const c = readAgentConfig(config);
    if (!c) return null;
    const bootSlots = agentBootSlots(cfg, n, disk, log);
    const m = choice.image.manifest;
    const st = stage.currentState();
    return startDeviceAgent({
      config: config,
      agent: c,
      device: function () {
        const s = stage.currentState();
        return { board: cfg.board, version: m.version, securityCounter: m.securityCounter, slot: choice.slot, securityFloor: s ? s.securityFloor : m.securityCounter };
      },
      boot: { slot: choice.slot, trial: choice.trial, lastError: st ? st.lastError : '' },
      install: {
        stageImage: function (bytes: Uint8Array) { return stage.stageImage(bytes); },
        rootVersion: function () { return stage.trustedRoot().version; },
        installRoots: function (links: Uint8Array[]) { return stage.installRootChain(links).version; },
      },
      crypto: crypto,
      rootBytes: utf8Encode(cfg.root),
      now: now,
      maxImageBytes: cfg.partitions.slot_b.size < cfg.partitions.slot_a.size ? cfg.partitions.slot_b.size : cfg.partitions.slot_a.size,
      log: log,
      reboot: reboot,
      bootSlots: bootSlots || undefined,
    });
  } catch (e) {
    // A disk without a config store (small test disks) has no agent to start, and says nothing.
    if (errorCode(e) !== 'E_CONFIG_NO_STORE') log('ota[DISABLED] reason=' + errorCode(e));
    return null;
  }
}

/**
 * What the agent needs for boot-image updates, from the compiled-in configuration (no board file
 * on the device): the A/B layout, the FIT key, and the host's SHA-256 and mbedTLS RSA. Null on a
 * disk without A/B boot slots; a host without rsaVerify cannot check a boot image and takes none.
 */
function agentBootSlots(cfg: BootConfig, n: SignetNative, disk: NativeBlockDevice, log: (line: string) => void) {
  const ab = cfg.bootSlots;
  const env = cfg.bootenv;
  if (!ab || !env || env.offset + env.size > disk.sectorCount * disk.sectorSize) return null;
  const rsaVerify = n.rsaVerify;
  if (typeof rsaVerify !== 'function' || !cfg.fitKeys || !cfg.fitKeys.length) {
    log('ota[BOOT-DISABLED] reason=E_BOOT_FIT_KEY');
    return null;
  }
  const keys: BootFitKey[] = [];
  for (let i = 0; i < cfg.fitKeys.length; i++) {
    const m = fromHex(cfg.fitKeys[i].modulus);
    const e = fromHex(cfg.fitKeys[i].exponent);
    if (m && e) keys.push({ keyName: cfg.fitKeys[i].keyName, publicKey: { modulus: m, exponent: e } });
  }
  const part = function (p: { offset: number; size: number }) { return new PartitionDevice(disk, p.offset, p.size); };
  return {
    board: cfg.board,
    fitKeys: keys,
    fitCrypto: {
      sha256: function (d: Uint8Array) { return n.sha256(d); },
      rsaVerify: function (m: Uint8Array, e: Uint8Array, d: Uint8Array, s: Uint8Array) { return rsaVerify.call(n, m, e, d, s) === true; },
    },
    device: function (): BootSlotsDevice {
      return { slots: { a: part(ab.boot_a), b: part(ab.boot_b) }, env: part(env) };
    },
  };
}

function main(): void {
  const n = signet_native;
  const cfg = __SIGNET_BOOT_CONFIG__;
  const args = n.args || [];
  const log = function (line: string) { n.print(line); };
  const halt = function () {
    if (cfg.testMode || hasArg(args, '--halt')) {
      log('boot[HALT]');
      n.powerOff();
    } else n.reboot();
  };
  const pureAll = hasArg(args, '--purejs-crypto');
  const pureHash = pureAll || hasArg(args, '--purejs-hash');
  const pureEd = pureAll || hasArg(args, '--purejs-ed25519') || typeof n.ed25519Verify !== 'function';
  const crypto = makePureJsCrypto(pureHash ? undefined : n.sha256, pureEd ? undefined : n.ed25519Verify);
  const nowFn = function (): number | null {
    const t = n.nowSeconds();
    return t > 0 ? t : null;
  };

  let root: RootSigned;
  try {
    // Signatures only: an expired root must not stop a device from booting what it has
    // (freshness matters for updates, which the OTA agent checks).
    root = verifyTrustedRoot(utf8Encode(cfg.root), crypto, null);
  } catch (e) {
    // E_ROOT, the image format's verdict for an unusable trust anchor; detail= says why.
    log('boot[RECOVERY] reason=E_ROOT what=root detail=' + errorCode(e));
    halt();
    return;
  }

  if (cfg.bootRelease) log('boot[BOOT-IMAGE] version=' + cfg.bootRelease.version + ' counter=' + cfg.bootRelease.securityCounter);
  const disk = new NativeBlockDevice(n, argValue(args, '--disk') || cfg.device, cfg.sectorSize, cfg.eraseBlockSize);
  const part = function (p: { offset: number; size: number }) { return new PartitionDevice(disk, p.offset, p.size); };
  const stage = new BootStage({
    slots: { a: part(cfg.partitions.slot_a), b: part(cfg.partitions.slot_b) },
    state: part(cfg.partitions.state),
    root,
    board: cfg.board,
    crypto,
    now: nowFn,
    log,
    trialTries: cfg.trialTries,
  });

  const choice = stage.boot();
  if (!choice) {
    halt();
    return;
  }
  const source = utf8Decode(choice.app);
  if (source === null) {
    log('boot[APP-ERROR] slot=' + choice.slot + ' reason=E_APP_ENCODING');
    halt();
    return;
  }
  // The OTA agent (sdk/ota/agent-device.ts), when the device was provisioned with a server.
  let agent: DeviceAgentHandle | null = null;
  // The app confirmed this boot: an agent started again after a service restart reports from there.
  let confirmedThisBoot = false;
  const host = {
    board: cfg.board,
    version: choice.image.manifest.version,
    log: log,
    // The app's health check passed: its slot is confirmed, and so is the boot slot U-Boot
    // booted (an A/B disk's boot environment: bootcount back to 0 before U-Boot gives up on it).
    confirm: function () {
      stage.confirm();
      confirmedThisBoot = true;
      // A device too small to hold the area is no A/B disk (the stage also runs on small test disks).
      const env = cfg.bootenv;
      if (env && env.offset + env.size <= disk.sectorCount * disk.sectorSize) {
        try {
          confirmBootSlot(part(env), log);
        } catch (e) {
          log('boot[BOOTENV] reason=' + errorCode(e));
        }
      }
      // After the boot slot's confirm: the agent reads the boot environment to report it.
      if (agent) agent.confirmed();
    },
    /** Install API for the OTA agent: stage an image into the inactive slot. */
    stage: function (bytes: Uint8Array) { return stage.stageImage(bytes).manifest.version; },
    /** Install API for root rotation: newer root envelopes, oldest first. */
    installRoots: function (links: Uint8Array[]) { return stage.installRootChain(links).version; },
    exit: function (code: number) { log('boot[APP-EXIT] code=' + code); halt(); },
    /** The event loop the runtime's timers and sockets use (sdk/runtime/binding.ts). */
    uv: n.uv,
    /** The config store in the state partition (sdk/runtime/config.ts), opened on first use. */
    config: hostConfig(function () { return part(cfg.partitions.state); }, log),
  };
  (Function('return this')() as { __signet_host: unknown }).__signet_host = host;
  const runAgent = function (): DeviceAgentHandle | null {
    const current = confirmedThisBoot ? { slot: choice.slot, trial: false, image: choice.image, app: choice.app } : choice;
    return startAgent(host.config, stage, current, cfg, crypto, nowFn, log, function () { n.reboot(); }, n, disk);
  };
  agent = runAgent();
  // The host names a throwing handler's line through this: the image's line table turns a
  // line of app.js into the service's own file and line; the last one goes on APP-RESTART.
  const lines = appLineTable(choice.image.payloads);
  let lastWhere = '';
  n.where = function (file: string, line: number): string {
    const mapped = file === 'app.js' && lines ? lookupLine(lines, line) : null;
    lastWhere = mapped || file + ':' + line;
    return lastWhere;
  };
  try {
    n.evalScript(source, 'app.js');
  } catch (e) {
    log('boot[APP-ERROR] slot=' + choice.slot + ' reason=' + errorCode(e));
    halt();
    return;
  }
  // The app has set up its timers and sockets: serve until none is left. A handler that
  // throws is reported by the host (host[ERROR] with file and line); the service's sockets and
  // timers are closed and it is run again after a back-off that doubles each time, until it
  // has failed MAX_RESTARTS times in a row (a run of RESTART_RESET_MS or more starts over).
  if (n.uv) {
    const base = Number(argValue(args, '--restart-backoff-ms')) || RESTART_BACKOFF_MS;
    let restarts = 0;
    let startedAt = n.monotonicMs();
    while (n.uv.run(true)) {
      if (n.monotonicMs() - startedAt >= RESTART_RESET_MS) restarts = 0;
      if (restarts === MAX_RESTARTS) {
        log('boot[APP-GAVE-UP] slot=' + choice.slot + ' restarts=' + restarts);
        break;
      }
      const delay = base * Math.pow(2, restarts++);
      log('boot[APP-RESTART] slot=' + choice.slot + ' attempt=' + restarts + ' delay_ms=' + delay + (lastWhere ? ' at=' + lastWhere : ''));
      lastWhere = '';
      // The agents (app and boot image) share the service's loop: closeAll ends their timers and
      // exchanges too, so they start again with it. Stopped first: after closeAll a timer id
      // may already name another handle. Their records are in the config store, so a report cut
      // off here goes out from the queue.
      if (agent) agent.stop();
      agent = null;
      n.uv.closeAll();
      n.uv.timerStart(function () {}, delay, 0);
      n.uv.run(false);
      startedAt = n.monotonicMs();
      agent = runAgent();
      try {
        n.evalScript(source, 'app.js');
      } catch (e) {
        log('boot[APP-ERROR] slot=' + choice.slot + ' reason=' + errorCode(e));
        break;
      }
    }
  }
  halt();
}

main();
