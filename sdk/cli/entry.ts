import { main } from './main';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`error[E_INTERNAL]: ${String(e?.message ?? e)}\n`);
    process.exitCode = 70;
  },
);
