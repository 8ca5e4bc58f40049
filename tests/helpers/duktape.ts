/** A minimal Duktape 2.7 host (Debian's libduktape, as the boot stage embeds it) for running bundles in tests. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Whether the host can be built here: duktape-dev's header and a C compiler. */
export function hasDuktape(): boolean {
  return existsSync('/usr/include/duktape.h') && spawnSync('cc', ['--version']).status === 0;
}

const RUNNER_C = `
#include <stdio.h>
#include <stdlib.h>
#include "duktape.h"
static duk_ret_t print(duk_context *ctx) { printf("%s\\n", duk_safe_to_string(ctx, 0)); return 0; }
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb"); long n; char *b;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END); n = ftell(f); fseek(f, 0, SEEK_SET);
  b = malloc(n + 1); if (fread(b, 1, n, f) != (size_t) n) { fclose(f); return NULL; }
  b[n] = 0; fclose(f); return b;
}
int main(int argc, char **argv) {
  duk_context *ctx = duk_create_heap_default(); int i;
  duk_push_c_function(ctx, print, 1); duk_put_global_string(ctx, "print");
  for (i = 1; i < argc; i++) {
    char *src = slurp(argv[i]);
    if (!src) { fprintf(stderr, "cannot read %s\\n", argv[i]); return 2; }
    duk_push_string(ctx, argv[i]);
    if (duk_pcompile_string_filename(ctx, 0, src) != 0 || duk_pcall(ctx, 0) != 0) {
      fprintf(stderr, "%s\\n", duk_safe_to_stacktrace(ctx, -1)); return 1;
    }
    duk_pop(ctx); free(src);
  }
  duk_destroy_heap(ctx); return 0;
}
`;

/**
 * Compiles the host into `dir` (as `run.c` and `run`) and returns the executable's path. It
 * evaluates each file given, in order, in one Duktape heap; `print` writes a line to stdout,
 * and an error goes to stderr with exit status 1.
 */
export function buildDuktapeRunner(dir: string): string {
  const runner = join(dir, 'run');
  writeFileSync(join(dir, 'run.c'), RUNNER_C);
  execFileSync('cc', ['-O1', '-o', runner, join(dir, 'run.c'), '-lduktape', '-lm']);
  return runner;
}
