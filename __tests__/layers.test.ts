// The layers' allowed imports (docs/ARCHITECTURE.md): lib/ is the bottom layer and imports nothing
// from the layers above it; workers/ and web/ build on lib/ only, never on the composition root
// (daemon/) or the CLI (bin/). Read from the sources' import statements, static and dynamic.
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './helpers/daemon.js';

const RULES: Record<string, string[]> = {
  lib: ['web', 'workers', 'bin', 'daemon'],
  workers: ['web', 'bin', 'daemon'],
  web: ['workers', 'bin', 'daemon'],
};

function* sources(dir: string): Generator<string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(full);
    else if (/\.(ts|js|cjs|mjs)$/.test(entry.name)) yield full;
  }
}

/** The relative module names a source imports: static, type-only, side-effect and dynamic imports, and require. */
function specifiers(text: string): string[] {
  return [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)].map((m) => m[1]!);
}

/** The modules a file imports, as repository paths. */
function importsOf(file: string): string[] {
  return specifiers(fs.readFileSync(file, 'utf8')).map((s) => path.relative(repoRoot, path.resolve(path.dirname(file), s)));
}

test.each(Object.entries(RULES))('%s/ imports nothing from the layers it may not use', (layer, forbidden) => {
  const offending: string[] = [];
  for (const file of sources(path.join(repoRoot, layer))) {
    for (const target of importsOf(file)) {
      if (forbidden.includes(target.split(path.sep)[0]!)) offending.push(`${path.relative(repoRoot, file)} → ${target}`);
    }
  }
  expect(offending).toEqual([]);
});

test('the import reader sees every form of import the sources use', () => {
  const text = [
    "import a from '../web/app.js';",
    'import type { B } from "../workers/index.js";',
    "const c = await import('../daemon/engine.js');",
    "const d = require('../bin/ticket.cjs');",
    "import './side.js';",
    "import {\n  x,\n} from '../web/http.js';",
    "import fs from 'node:fs';",
  ].join('\n');
  expect(specifiers(text)).toEqual([
    '../web/app.js',
    '../workers/index.js',
    '../daemon/engine.js',
    '../bin/ticket.cjs',
    './side.js',
    '../web/http.js',
  ]);
});
