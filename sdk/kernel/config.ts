/**
 * Kernel configuration text: a board's fragment (boards/<id>/kernel.config), the merge over
 * tinyconfig's fragments, and the check that every option the fragment sets kept its value once
 * Kconfig resolved dependencies. A hardening option that Kconfig silently drops is a security
 * bug, so a lost value fails the build (E_KERNEL_CONFIG) before anything is compiled.
 *
 * Lines are Kconfig's own .config syntax: `CONFIG_X=y|m|<number>|"<string>"`,
 * `# CONFIG_X is not set` (the value n), other `#` comments and blank lines.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { KernelError } from './errors';

export interface FragmentOption {
  /** CONFIG_ name, e.g. CONFIG_VIRTIO_BLK. */
  name: string;
  /** y, m, n (from `# ... is not set`), a number, or a quoted string as written. */
  value: string;
  line: number;
}

const SET = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;
const VALUE = /^(y|m|n|-?[0-9]+|0x[0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$/;

/** The options a fragment sets, in order. Malformed lines and contradicting repeats are errors. */
export function parseFragment(text: string, file: string): FragmentOption[] {
  const out: FragmentOption[] = [];
  const seen = new Map<string, FragmentOption>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    const n = i + 1;
    let opt: FragmentOption | undefined;
    const set = SET.exec(line);
    const unset = UNSET.exec(line);
    if (set) {
      if (!VALUE.test(set[2]!)) {
        throw new KernelError('E_KERNEL_CONFIG', `${file}:${n}: ${set[1]} has the value ${JSON.stringify(set[2])}, which is not y, m, n, a number or a "quoted string"`, 'fix the line');
      }
      opt = { name: set[1]!, value: set[2]!, line: n };
    } else if (unset) {
      opt = { name: unset[1]!, value: 'n', line: n };
    } else if (line === '' || line.startsWith('#')) {
      return;
    } else {
      throw new KernelError('E_KERNEL_CONFIG', `${file}:${n}: "${line.slice(0, 60)}" is not a kernel config line`, 'write CONFIG_NAME=value or "# CONFIG_NAME is not set"');
    }
    const before = seen.get(opt.name);
    if (before && before.value !== opt.value) {
      throw new KernelError('E_KERNEL_CONFIG', `${file}:${n}: ${opt.name} is set to ${opt.value} here and to ${before.value} on line ${before.line}`, 'keep one of them');
    }
    if (!before) {
      seen.set(opt.name, opt);
      out.push(opt);
    }
  });
  return out;
}

/** A .config as name → value (n for `# ... is not set`). */
export function parseDotConfig(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const set = SET.exec(line);
    if (set) m.set(set[1]!, set[2]!);
    else {
      const unset = UNSET.exec(line);
      if (unset) m.set(unset[1]!, 'n');
    }
  }
  return m;
}

/**
 * Fragments merged as Kconfig's KCONFIG_ALLCONFIG input: a later fragment's value for an option
 * replaces an earlier one's (as scripts/kconfig/merge_config.sh does), one line per option.
 */
export function mergeFragments(texts: string[]): string {
  const merged = new Map<string, string>();
  for (const t of texts) for (const [k, v] of parseDotConfig(t)) {
    merged.delete(k); // keep the order of the last assignment
    merged.set(k, v);
  }
  return [...merged].map(([k, v]) => (v === 'n' ? `# ${k} is not set` : `${k}=${v}`)).join('\n') + '\n';
}

/** Options a .config sets to something other than n: `CONFIG_X=...` lines. */
export function countOptionsSet(config: string): number {
  return [...parseDotConfig(config).values()].filter((v) => v !== 'n').length;
}

export function configSha256(config: string): string {
  return createHash('sha256').update(config).digest('hex');
}

/** Where each Kconfig symbol of a source tree is defined (path relative to the tree). */
export type KconfigSymbols = Map<string, string[]>;

const symbolCache = new Map<string, KconfigSymbols>();

/** Every `config`/`menuconfig` symbol in a kernel source tree's Kconfig files, with its files. */
export function kconfigSymbols(srcTree: string): KconfigSymbols {
  const hit = symbolCache.get(srcTree);
  if (hit) return hit;
  const syms: KconfigSymbols = new Map();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (e.name !== 'Documentation' && !e.name.startsWith('.')) walk(join(dir, e.name));
      } else if (e.isFile() && e.name.startsWith('Kconfig')) {
        const file = join(dir, e.name);
        for (const m of readFileSync(file, 'utf8').matchAll(/^[ \t]*(?:menu)?config[ \t]+([A-Za-z0-9_]+)[ \t]*$/gm)) {
          const name = 'CONFIG_' + m[1]!;
          const rel = relative(srcTree, file);
          const where = syms.get(name);
          if (!where) syms.set(name, [rel]);
          else if (!where.includes(rel)) where.push(rel);
        }
      }
    }
  };
  walk(srcTree);
  symbolCache.set(srcTree, syms);
  return syms;
}

const show = (v: string | undefined) => (v === undefined || v === 'n' ? 'not set' : v);

/**
 * Every option the fragment sets must have that value in the final .config. The first problem
 * is thrown as E_KERNEL_CONFIG naming the option and its line; the count of the others follows.
 */
export function checkFinalConfig(o: {
  fragment: FragmentOption[];
  final: string;
  symbols: KconfigSymbols;
  file: string;
  /** e.g. "Linux 6.1.192 (linux-source-6.1 6.1.192-3)" */
  source: string;
  /** The kernel's name for the arch (arm64, arm): a symbol defined only for others is named so. */
  srcArch: string;
}): void {
  const final = parseDotConfig(o.final);
  const problems: { message: string; hint: string }[] = [];
  for (const opt of o.fragment) {
    const where = o.symbols.get(opt.name);
    const at = `${o.file}:${opt.line}: ${opt.name}`;
    if (!where) {
      problems.push({ message: `${at} is not an option ${o.source} knows`, hint: 'fix its name or remove the line' });
      continue;
    }
    const got = final.get(opt.name);
    const want = opt.value;
    if ((want === 'n' && show(got) === 'not set') || got === want) continue;
    const own = where.filter((f) => !f.startsWith('arch/') || f.startsWith(`arch/${o.srcArch}/`));
    const defined = own.length ? own[0]! : `${where[0]} (another architecture's, not ${o.srcArch}'s)`;
    const [why, hint] =
      want === 'm'
        ? ['modules are off', 'build it in (=y)']
        : want === 'n'
          ? [`another option selects it (see ${defined})`, 'turn off what selects it, or remove the line']
          : [`a dependency is not met (see its "depends on" in ${defined})`, 'enable what it depends on in the fragment, or remove the line'];
    const verb = want === 'n' ? 'was overridden by Kconfig' : 'was dropped by Kconfig';
    problems.push({ message: `${at}=${want} ${verb} (final value: ${show(got)}): ${why}`, hint });
  }
  if (problems.length) {
    const first = problems[0]!;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more option${problems.length > 2 ? 's' : ''})` : '';
    throw new KernelError('E_KERNEL_CONFIG', first.message + more, first.hint);
  }
}
