/**
 * The CLI's shape: a command is a name, a usage text, an option table and a run function
 * that calls one library function and formats its result. No crypto or format code here.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SignetError } from '../util/errors';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { description: string; valueName?: string };

export interface Command {
  /** Words after `signet`, e.g. ['keys', 'init']. */
  path: string[];
  summary: string;
  /** Positional arguments, e.g. '<image.simg>'. */
  args?: string;
  options: Record<string, OptionSpec>;
  /** Lines shown after the options in --help. */
  details?: string[];
  run(ctx: RunContext): Promise<number | void>;
}

export interface RunContext {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  json: boolean;
  out: (line: string) => void;
  err: (line: string) => void;
}

export class UsageError extends SignetError {
  constructor(message: string, hint = 'run with --help for usage') {
    super('E_USAGE', message, hint);
    Object.setPrototypeOf(this, UsageError.prototype);
    this.name = 'UsageError';
  }
}

export const JSON_OPTION: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'print machine-readable JSON' },
};

export function helpText(cmd: Command): string {
  const lines = [`signet ${cmd.path.join(' ')}${cmd.args ? ' ' + cmd.args : ''} [options]`, '', cmd.summary, '', 'Options:'];
  const opts = { ...cmd.options, help: { type: 'boolean', description: 'show this help' } as OptionSpec };
  const rows = Object.entries(opts).map(([name, o]) => [
    `  --${name}${o.type === 'string' ? ' <' + (o.valueName ?? 'value') + '>' : ''}`,
    o.description,
  ]);
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  for (const [a, b] of rows) lines.push(a.padEnd(w) + b);
  if (cmd.details?.length) lines.push('', ...cmd.details);
  return lines.join('\n');
}

export function parseCommandArgs(cmd: Command, argv: string[]): { values: RunContext['values']; positionals: string[] } {
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean' } };
  for (const [k, o] of Object.entries(cmd.options)) {
    const { description: _d, valueName: _v, ...rest } = o;
    options[k] = rest;
  }
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: r.values as RunContext['values'], positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0].replace(/\. To specify a positional.*$/, ''));
  }
}

/** A required string option, with a usage error naming it when missing. */
export function need(ctx: RunContext, name: string): string {
  const v = ctx.values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function intOption(ctx: RunContext, name: string, min: number, max: number): number | undefined {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${String(v)}"`);
  }
  return Number(v);
}

export function onePositional(ctx: RunContext, what: string): string {
  if (ctx.positionals.length !== 1) {
    throw new UsageError(ctx.positionals.length === 0 ? `missing ${what}` : `expected one ${what}, got ${ctx.positionals.length} arguments`);
  }
  return ctx.positionals[0];
}
