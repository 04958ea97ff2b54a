// The installed package's root (where `bin/`, `prompts/`, `views/` and `web/public/` ship), apart from
// lib/paths.ts so that lib/ticketRules.ts can find lib/shared/ticketRules.cjs without an import cycle.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const packageRoot: string = (() => {
  // this file is lib/packageRoot.ts in the sources and dist/lib/packageRoot.js once built
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = path.basename(path.dirname(here)) === 'dist' ? '../..' : '..';
  return path.resolve(here, up);
})();
