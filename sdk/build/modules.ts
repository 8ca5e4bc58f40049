/**
 * Stable names for the files that end up in a bundle. The names go into the image manifest
 * (`dependencies`) and the TCB report, so they must not depend on where the project or the SDK
 * happens to be checked out: app files are relative to the project (`src/main.ts`), SDK files
 * are `signet/<path under sdk/>`, third-party files are `<package>/<path>`.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ModuleKind = 'app' | 'sdk' | 'third-party';

export interface ModuleName {
  name: string;
  kind: ModuleKind;
}

let cachedSdkDir: string | undefined;

/**
 * The `sdk/` folder of this Signet checkout. Found by walking up from this file (or from the
 * bundled CLI) to the folder holding `runtime/index.ts`, so it works from source and bundled.
 */
export function sdkDir(): string {
  if (cachedSdkDir) return cachedSdkDir;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'runtime', 'index.ts'))) return (cachedSdkDir = dir);
    if (existsSync(join(dir, 'sdk', 'runtime', 'index.ts'))) return (cachedSdkDir = join(dir, 'sdk'));
    dir = dirname(dir);
  }
  throw new Error('cannot locate the Signet sdk/ folder from ' + fileURLToPath(import.meta.url));
}

function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

function inside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/**
 * Manifest dependency names are printable ASCII; percent-encode anything else so an odd file
 * name cannot make the manifest invalid.
 */
function asciiName(name: string): string {
  if (/^[\x21-\x7e][\x20-\x7e]*$/.test(name)) return name;
  let out = '';
  const bytes = Buffer.from(name, 'utf8');
  for (const b of bytes) out += b >= 0x21 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + b.toString(16).padStart(2, '0');
  return out;
}

/**
 * Name and classify one absolute file path. The SDK wins over node_modules (Signet itself may be
 * installed as a package); a third-party name is the path after the first node_modules segment
 * as seen from the project, so a nested copy (`a/node_modules/b/x.js`) keeps a distinct name.
 */
export function nameModule(absPath: string, projectDir: string, sdk: string = sdkDir()): ModuleName {
  const file = resolve(absPath);
  if (inside(sdk, file)) return { name: asciiName('signet/' + toPosix(relative(sdk, file))), kind: 'sdk' };
  const rel = toPosix(relative(projectDir, file));
  const segments = rel.split('/');
  const nm = segments.indexOf('node_modules');
  if (nm >= 0 && nm < segments.length - 1) return { name: asciiName(segments.slice(nm + 1).join('/')), kind: 'third-party' };
  // Files outside the project (a shared folder next to it) keep their relative path: still stable.
  return { name: asciiName(rel), kind: 'app' };
}
