/** A `signet server --json` child process: wait for the first line it prints (its URL). */
import type { ChildProcess } from 'node:child_process';

export function serverListening(child: ChildProcess): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, url: JSON.parse(out.slice(0, nl)).url });
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code, sig) => reject(new Error(`signet server exited (${code ?? sig}) before listening: ${err}`)));
  });
}
