/**
 * Where passphrases come from: the SIGNET_PASSPHRASE environment variable, or a prompt on the
 * controlling terminal (echo off). Never a command-line argument (it would show in `ps`).
 */
import { KeyError } from './errors';

export const PASSPHRASE_ENV = 'SIGNET_PASSPHRASE';

export interface PassphraseSource {
  get(purpose: string, confirm: boolean): Promise<string>;
}

export const envOrPromptPassphrase: PassphraseSource = {
  async get(purpose: string, confirm: boolean): Promise<string> {
    const env = process.env[PASSPHRASE_ENV];
    if (env !== undefined && env !== '') return env;
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      throw new KeyError('E_PASSPHRASE', 'a passphrase is needed for ' + purpose + ' and there is no terminal to ask on');
    }
    const first = await promptHidden('Passphrase for ' + purpose + ': ');
    if (confirm) {
      const again = await promptHidden('Repeat passphrase: ');
      if (again !== first) throw new KeyError('E_PASSPHRASE', 'the two passphrases differ');
    }
    if (first === '') throw new KeyError('E_PASSPHRASE', 'empty passphrase');
    return first;
  },
};

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let answer = '';
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          cleanup();
          process.stderr.write('\n');
          resolve(answer);
          return;
        }
        if (ch === '\u0003') {
          cleanup();
          reject(new KeyError('E_PASSPHRASE', 'passphrase entry interrupted'));
          return;
        }
        if (ch === '\u007f') answer = answer.slice(0, -1);
        else answer += ch;
      }
    };
    const cleanup = () => {
      stdin.removeListener('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
    };
    stdin.on('data', onData);
  });
}
