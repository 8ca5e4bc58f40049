/**
 * `signet build`: bundle a service for its board, wrap it in an app image with a manifest, sign
 * it with one targets key and write it atomically. Everything that can fail (project, board,
 * key, passphrase, bundle) fails before the output file is touched.
 */
import { readFileSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { loadBoard } from '../board';
import { bundleService, type BundleModule } from '../build/bundle';
import { LINE_TABLE_PAYLOAD } from '../build/linetable';
import { readProject } from '../build/project';
import { loadSignerSpec } from '../keys/signer-spec';
import { utf8Encode } from '../util/bytes';
import { writeFileAtomic } from '../util/fs-atomic';
import { sdkVersion } from '../util/paths';
import { nodeCrypto } from './crypto-node';
import { addSignature, createUnsignedImage, type PayloadInput } from './create';
import type { Manifest } from './manifest';

export interface ReleaseOptions {
  projectDir: string;
  version: string;
  securityCounter: number;
  /** The signing key; default `<keysDir>/targets-1.key`. */
  keyPath?: string;
  keysDir?: string;
  out: string;
  expiresInDays?: number;
  typecheck?: boolean;
  /** Build time in unix seconds; default SOURCE_DATE_EPOCH or now (reproducible builds). */
  buildTime?: number;
}

export interface ReleaseResult {
  out: string;
  bytes: number;
  manifest: Manifest;
  modules: BundleModule[];
  keyid: string;
}

export function defaultBuildTime(): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  return env && /^\d+$/.test(env) ? Number(env) : Math.floor(Date.now() / 1000);
}

export async function buildRelease(o: ReleaseOptions): Promise<ReleaseResult> {
  const project = readProject(o.projectDir);
  const board = loadBoard(project.board);
  const signer = await loadSignerSpec(o.keyPath ?? join(o.keysDir ?? 'keys', 'targets-1.key'));
  const bundle = await bundleService({
    projectDir: project.dir,
    entry: project.entry,
    engine: board.engine,
    typecheck: o.typecheck ?? true,
  });
  const payloads: PayloadInput[] = [{ name: 'app.js', type: 'app', data: utf8Encode(bundle.code) }];
  // Lets the device report the service's own file and line for an error (docs/runtime.md).
  payloads.push({ name: LINE_TABLE_PAYLOAD, type: 'asset', data: utf8Encode(bundle.lineTable) });
  for (const p of project.assetPaths) {
    payloads.push({ name: relative(project.dir, p).split(/[\\/]/).join(posix.sep), type: 'asset', data: new Uint8Array(readFileSync(p)) });
  }
  const buildTime = o.buildTime ?? defaultBuildTime();
  const fields: Omit<Manifest, 'payloads'> = {
    name: project.name,
    board: board.id,
    version: o.version,
    securityCounter: o.securityCounter,
    buildTime,
    ...(o.expiresInDays ? { expires: buildTime + o.expiresInDays * 86400 } : {}),
    sdkVersion: sdkVersion(),
    engine: board.engine,
    dependencies: bundle.modules.map((m) => ({ name: m.name, kind: m.kind, bytes: m.bytes })),
  };
  const image = await addSignature(createUnsignedImage(fields, payloads, nodeCrypto), signer);
  writeFileAtomic(o.out, image);
  return { out: o.out, bytes: image.length, manifest: { ...fields, payloads: [] }, modules: bundle.modules, keyid: signer.keyid };
}
