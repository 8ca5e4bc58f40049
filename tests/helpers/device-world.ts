/**
 * A device and its update server, everything through the CLI a vendor uses: keys, examples/hello
 * 1.2.0, `signet server` on 127.0.0.1 (SQLite, mutual TLS; the guest dials 10.0.2.2 through
 * QEMU's user network), an admin and the device enrolled, its factory disk with A/B boot slots
 * (`signet disk --boot-ab`, boot image 1.0.0 #1) provisioned with its identity and the server.
 * Used by tests/device-boot-agent-failures and bench/_device-failures.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Board } from '../../sdk/board';
import { sdkRoot } from '../../sdk/util/paths';
import { serverListening } from './server-child';

/** The CLI bundle the tests run (tests/helpers/cli.ts CLI; spelled out here, as benches bundle this file as ESM, without __dirname). */
const CLI = join(sdkRoot(), 'dist', 'signet.mjs');

export interface DeviceWorld {
  url: string;
  at(p: string): string;
  /** `signet ARGS` in the work folder; a non-zero exit throws with its output. */
  signet(args: string[]): string;
  /** `signet run` arguments for the device's disk, with the user network. */
  runArgs: string[];
  rollouts(): { target: string; counts: Record<string, number>; state: string }[];
  stop(): void;
}

export async function startDeviceWorld(work: string, board: Board, device: string): Promise<DeviceWorld> {
  const at = (p: string) => join(work, p);
  const signet = (args: string[]): string => {
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd: work, encoding: 'utf8', timeout: 900_000 });
    if (r.status !== 0) throw new Error(`signet ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  signet(['keys', 'init', '--dir', at('keys')]);
  signet(['build', '--project', join(sdkRoot(), 'examples/hello'), '--version', '1.2.0', '--security-counter', '3', '--keys', at('keys'), '--out', at('app.simg'), '--no-typecheck']);
  signet(['server', 'keys', '--keys', at('keys'), '--out', at('server-keys')]);
  const server: ChildProcess = spawn(process.execPath, [CLI, 'server', '--data', at('ota-data'), '--keys', at('server-keys'), '--port', '0', '--bind', '127.0.0.1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = (await serverListening(server)).url;
    signet(['device', 'enroll', '--admin', '--id', 'admin', '--keys', at('keys'), '--out', at('admin')]);
    signet(['device', 'enroll', '--id', device, '--board', board.id, '--keys', at('keys'), '--out', at(`devices/${device}`)]);
    signet(['disk', at('app.simg'), '--board', board.id, '--keys', at('keys'), '--out', at('disk.img'), '--key-dtb', at('pub.dtb'),
      '--boot-ab', '--boot-version', '1.0.0', '--boot-security-counter', '1']);
    signet(['device', 'provision', '--disk', at('disk.img'), '--id', device, '--board', board.id, '--ca-dir', at('keys'),
      '--identity', at(`devices/${device}`), '--set', `ota.server=https://10.0.2.2:${new URL(url).port}`, '--set', 'ota.servername=localhost',
      '--set', 'ota.first-s=1', '--set', 'ota.interval-s=5']);
    return {
      url,
      at,
      signet,
      runArgs: [at('disk.img'), '--board', board.id, '--key-dtb', at('pub.dtb'), '--net', 'user'],
      rollouts: () => JSON.parse(signet(['rollout', 'status', '--json', '--server', url, '--admin', at('admin')])),
      stop: () => void server.kill('SIGTERM'),
    };
  } catch (e) {
    server.kill('SIGTERM');
    throw e;
  }
}
