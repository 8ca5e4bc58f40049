/**
 * The update server's modules import each other without a circle (types live in their own
 * file, factories apart from what they build): every `import` and `export … from` between
 * update-server/*.ts files, type-only ones included, forms a graph with no cycle.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli';

const DIR = join(ROOT, 'update-server');

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of readdirSync(DIR).filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts'))) {
    const src = readFileSync(join(DIR, f), 'utf8');
    const deps = [...src.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'\.\/([\w.-]+)'/gms)].map((m) => m[1] + '.ts');
    g.set(f, [...new Set(deps)]);
  }
  return g;
}

/** Every cycle's files, in order (empty when there is none). */
function cycles(g: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...g.keys()].sort()) if (!state.has(n)) visit(n);
  return found;
}

describe('update-server imports', () => {
  it('the graph is read (sanity: fleet imports storage and types)', () => {
    expect(graph().get('fleet.ts')).toEqual(expect.arrayContaining(['storage.ts', 'errors.ts']));
  });

  it('has no import circle, type-only imports included', () => {
    expect(cycles(graph()).map((c) => c.join(' → '))).toEqual([]);
  });
});
