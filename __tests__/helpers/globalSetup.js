// Jest global setup: refuses to run against a stale build. Tests that start the daemon or the
// dispatch CLI run dist/, so a source newer than its compiled file would test old code. Every .ts
// source that tsc compiles (see tsconfig.json "include") must have its dist/ file, at least as new.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The folders tsc compiles, read from tsconfig.json's include globs (`lib/**\/*.ts` → lib). */
function sourceDirs() {
  const tsconfig = JSON.parse(fs.readFileSync(path.join(root, 'tsconfig.json'), 'utf8'));
  return tsconfig.include.map((glob) => glob.split('/')[0]);
}

function* tsFiles(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(full);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield full;
  }
}

export default function globalSetup() {
  const stale = [];
  for (const dir of sourceDirs()) {
    if (!fs.existsSync(path.join(root, dir))) continue;
    for (const src of tsFiles(path.join(root, dir))) {
      const rel = path.relative(root, src);
      const built = path.join(root, 'dist', rel.replace(/\.ts$/, '.js'));
      if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(src).mtimeMs) stale.push(rel);
    }
  }
  if (stale.length) {
    const list = stale.slice(0, 5).join(', ') + (stale.length > 5 ? ` and ${stale.length - 5} more` : '');
    throw new Error(`dist/ is older than its sources (${list}): run npm run build first (npm test builds by itself)`);
  }
}
