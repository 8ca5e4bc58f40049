/** `signet`: dispatch to a command, print one line per error, exit non-zero on failure. */
import { COMMANDS } from './commands';
import { helpText, parseCommandArgs, UsageError, type Command } from './command';
import { isSignetError } from '../util/errors';
import { sdkVersion } from '../util/paths';

function topHelp(): string {
  const rows = COMMANDS.map((c) => [`  ${c.path.join(' ')}`, c.summary]);
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  return [
    'signet — signed minimal images for hypervisor guests',
    '',
    'Usage: signet <command> [options]      (signet <command> --help for details)',
    '',
    'Commands:',
    ...rows.map(([a, b]) => a.padEnd(w) + b),
  ].join('\n');
}

function findCommand(argv: string[]): { cmd: Command; rest: string[] } | undefined {
  let best: { cmd: Command; rest: string[] } | undefined;
  for (const cmd of COMMANDS) {
    if (cmd.path.every((w, i) => argv[i] === w) && (!best || cmd.path.length > best.cmd.path.length)) {
      best = { cmd, rest: argv.slice(cmd.path.length) };
    }
  }
  return best;
}

export async function main(argv: string[]): Promise<number> {
  const out = (l: string) => process.stdout.write(l + '\n');
  const err = (l: string) => process.stderr.write(l + '\n');
  try {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      out(topHelp());
      return argv.length === 0 ? 2 : 0;
    }
    if (argv[0] === '--version') {
      out(sdkVersion());
      return 0;
    }
    const found = findCommand(argv);
    if (!found) {
      const group = COMMANDS.filter((c) => c.path[0] === argv[0]);
      if (group.length) throw new UsageError(`unknown subcommand "${argv.slice(0, 2).join(' ')}"`, `try: ${group.map((c) => 'signet ' + c.path.join(' ')).join(', ')}`);
      throw new UsageError(`unknown command "${argv[0]}"`, 'run `signet --help` for the list');
    }
    const { cmd, rest } = found;
    if (rest.includes('--help') || rest.includes('-h')) {
      out(helpText(cmd));
      return 0;
    }
    const { values, positionals } = parseCommandArgs(cmd, rest);
    const code = await cmd.run({ values, positionals, json: values.json === true, out, err });
    return code ?? 0;
  } catch (e) {
    if (isSignetError(e)) {
      err(e.line());
      return e.code === 'E_USAGE' ? 2 : e.code.endsWith('_INTERRUPTED') ? 130 : 1;
    }
    if (process.env.SIGNET_DEBUG) err(String((e as Error)?.stack ?? e));
    const msg = (e as Error)?.message ?? String(e);
    const errno = e as NodeJS.ErrnoException;
    if (typeof errno?.code === 'string' && /^E[A-Z0-9]+$/.test(errno.code) && typeof errno.syscall === 'string') {
      // A file system error no layer turned into its own code: the machine's, not Signet's.
      err(`error[E_IO]: ${msg.split('\n')[0]} — check the path, its permissions and free space`);
      return 1;
    }
    err(`error[E_INTERNAL]: ${msg.split('\n')[0]} — this is a bug in Signet; rerun with SIGNET_DEBUG=1 and report it`);
    return 70;
  }
}
