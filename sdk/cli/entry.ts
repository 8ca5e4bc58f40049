import { main } from './main';

// `signet inspect app.simg | head -1`: the reader has all it wants once it closes the pipe.
// Stop there, quietly and with the status so far, as a program killed by SIGPIPE would (Node
// ignores SIGPIPE, so a write to the closed pipe comes back as an EPIPE 'error' event, and
// without a listener that is an uncaught exception with a stack trace). Exit handlers still
// run: unfinished temp output is removed.
const CLOSED = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (!CLOSED.has(e.code ?? '')) throw e;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`error[E_INTERNAL]: ${String(e?.message ?? e)}\n`);
    process.exitCode = 70;
  },
);
