// sdk/runtime: the app-facing API, run as it runs on a device: bundled, lowered to ES5, in a
// fresh JS context whose only link to the outside is the boot stage's __signet_host.
import { runInNewContext } from 'node:vm';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleService } from '../sdk/build/bundle';

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'signet-runtime-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

async function bundle(main: string): Promise<string> {
  const dir = join(scratch, 'p' + Math.random().toString(16).slice(2));
  mkdirSync(dirname(join(dir, 'src/main.ts')), { recursive: true });
  writeFileSync(join(dir, 'src/main.ts'), main);
  return (await bundleService({ projectDir: dir, entry: 'src/main.ts', engine: 'duktape-es5' })).code;
}

/** A host as the boot stage installs it, recording what the app did. */
function host(extra: Record<string, unknown> = {}) {
  const calls: string[] = [];
  return {
    calls,
    host: {
      board: 'qemu-virt-arm64',
      version: '1.4.2',
      log: (line: string) => calls.push('log:' + line),
      confirm: () => calls.push('confirm'),
      ...extra,
    },
  };
}

const app = `import { board, confirm, exit, log, version } from 'signet/runtime';
log('hello from signet on ' + board + ' v' + version);
log(42 as unknown as string);
confirm();
exit(3);
`;

describe('signet/runtime with a host', () => {
  it('sends log lines and confirm to the host, and reads board and version from it', async () => {
    const code = await bundle(app);
    const h = host({ exit: (c: number) => h.calls.push('exit:' + c) });
    runInNewContext(code, { __signet_host: h.host });
    expect(h.calls).toEqual(['log:hello from signet on qemu-virt-arm64 v1.4.2', 'log:42', 'confirm', 'exit:3']);
  });

  it('does not need console when a host is present (Duktape has none), and exit is optional', async () => {
    const code = await bundle(app);
    const h = host();
    runInNewContext(code, { __signet_host: h.host }); // no console in this context
    expect(h.calls).toEqual(['log:hello from signet on qemu-virt-arm64 v1.4.2', 'log:42', 'confirm']);
  });
});

describe('signet/runtime without a host (plain Node)', () => {
  it('falls back to console.log, saying that confirm and exit had no host', async () => {
    const code = await bundle(app);
    const lines: string[] = [];
    runInNewContext(code, { console: { log: (s: string) => lines.push(s) } });
    expect(lines).toEqual(['hello from signet on none v0.0.0', '42', 'app[CONFIRM] (no host)', 'app[EXIT] 3 (no host)']);
  });

  it('runs silently rather than failing when there is neither host nor console', async () => {
    const code = await bundle(app);
    expect(() => runInNewContext(code, {})).not.toThrow();
  });
});
