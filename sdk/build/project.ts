/**
 * `signet.json`, the project file: exactly `name`, `board`, `entry` and `assets`. Reading fails
 * closed: an unknown field is an error (a typo such as `"entrypoint"` must not be ignored).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BOARD_ID, SERVICE_NAME } from '../image/manifest';
import { BuildError } from './errors';

export const PROJECT_FILE = 'signet.json';

export interface ProjectConfig {
  /** Service name, `[a-z0-9][a-z0-9._-]*`: goes into the manifest. */
  name: string;
  /** Board id (`boards/<id>/board.json`). */
  board: string;
  /** Entry module, relative to the project folder. */
  entry: string;
  /** Extra payload files, relative to the project folder. */
  assets: string[];
}

export interface Project extends ProjectConfig {
  dir: string;
  /** Absolute paths of the entry and assets. */
  entryPath: string;
  assetPaths: string[];
}

interface Field {
  name: keyof ProjectConfig;
  required: boolean;
  check: (v: unknown) => string | null; // null = fine, else what is wrong
}

/** A project-relative path: forward slashes, no `..`, not absolute, no empty segments. */
function relativePath(what: string): (v: unknown) => string | null {
  return (v) => {
    if (typeof v !== 'string' || v.length === 0 || v.length > 256) return 'must be a relative path (' + what + ')';
    if (v.startsWith('/') || /^[A-Za-z]:/.test(v) || v.includes('\\')) return 'must be a relative path with forward slashes, not "' + v + '"';
    const segs = v.split('/');
    if (segs.some((s) => s === '' || s === '.' || s === '..')) return 'must stay inside the project (no "..", "." or empty segments): "' + v + '"';
    return null;
  };
}

const FIELDS: Field[] = [
  {
    name: 'name', required: true,
    check: (v) => (typeof v === 'string' && SERVICE_NAME.test(v) ? null : 'must be a service name: [a-z0-9][a-z0-9._-], up to 64 characters'),
  },
  {
    name: 'board', required: true,
    check: (v) => (typeof v === 'string' && BOARD_ID.test(v) ? null : 'must be a board id: [a-z0-9][a-z0-9-], up to 64 characters'),
  },
  {
    name: 'entry', required: true,
    check: (v) => relativePath('e.g. src/main.ts')(v) ?? (/\.(ts|mts|js|mjs)$/.test(v as string) ? null : 'must be a .ts or .js file'),
  },
  {
    name: 'assets', required: false,
    check: (v) => {
      if (!Array.isArray(v)) return 'must be a list of relative paths';
      const seen = new Set<string>();
      for (let i = 0; i < v.length; i++) {
        const err = relativePath('e.g. assets/index.html')(v[i]);
        if (err) return 'entry ' + i + ' ' + err;
        if (seen.has(v[i] as string)) return 'lists "' + v[i] + '" twice';
        seen.add(v[i] as string);
      }
      return null;
    },
  },
];

/** Check a parsed signet.json; returns it with defaults filled in. Throws E_PROJECT_FIELD. */
export function validateProjectConfig(value: unknown): ProjectConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BuildError('E_PROJECT_FIELD', PROJECT_FILE + ' must hold a JSON object');
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!FIELDS.some((f) => f.name === key)) throw new BuildError('E_PROJECT_FIELD', PROJECT_FILE + ': unknown field "' + key + '"');
  }
  for (const f of FIELDS) {
    if (!(f.name in o)) {
      if (f.required) throw new BuildError('E_PROJECT_FIELD', PROJECT_FILE + ': missing field "' + f.name + '"');
      continue;
    }
    const err = f.check(o[f.name]);
    if (err) throw new BuildError('E_PROJECT_FIELD', PROJECT_FILE + ': "' + f.name + '" ' + err);
  }
  return {
    name: o.name as string,
    board: o.board as string,
    entry: o.entry as string,
    assets: o.assets === undefined ? [] : (o.assets as string[]).slice(),
  };
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Read and check `<dir>/signet.json`, and that the entry and assets exist. */
export function readProject(dir: string): Project {
  const root = resolve(dir);
  const file = join(root, PROJECT_FILE);
  if (!existsSync(file)) throw new BuildError('E_PROJECT_MISSING', 'no ' + PROJECT_FILE + ' in ' + root);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BuildError('E_PROJECT_JSON', PROJECT_FILE + ' is not valid JSON: ' + (e as Error).message, { file: PROJECT_FILE }, e);
  }
  const config = validateProjectConfig(parsed);
  const entryPath = join(root, config.entry);
  if (!isFile(entryPath)) throw new BuildError('E_PROJECT_ENTRY', 'entry ' + config.entry + ' named in ' + PROJECT_FILE + ' does not exist', { file: config.entry });
  const assetPaths = config.assets.map((a) => {
    const p = join(root, a);
    if (!isFile(p)) throw new BuildError('E_PROJECT_ENTRY', 'asset ' + a + ' named in ' + PROJECT_FILE + ' does not exist', { file: a });
    return p;
  });
  return { ...config, dir: root, entryPath, assetPaths };
}
