// Test homes: every test gets its own DISPATCH_HOME and projects root in a temp folder, so
// nothing ever touches the real ~/Development.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareHome } from '../../lib/home.js';
import { pathsFor, type Paths } from '../../lib/paths.js';
import { createStore, type Store } from '../../lib/store.js';
import { registerProject, type Project } from '../../lib/projects.js';
import type { Db } from '../../lib/db/connection.js';

export interface TestHome {
  root: string;
  paths: Paths;
  projectsRoot: string;
  db: Db;
  store: Store;
  woken: number[];
  addProject(name: string, type?: string, abbreviation?: string): Project;
  cleanup(): void;
}

export function tempDir(prefix = 'pd-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function makeTestHome(): TestHome {
  const root = tempDir();
  const paths = pathsFor(path.join(root, 'home'));
  const projectsRoot = path.join(root, 'dev');
  fs.mkdirSync(projectsRoot, { recursive: true });
  const { db } = prepareHome(paths);
  const woken: number[] = [];
  const store = createStore(db, (id) => woken.push(id));
  return {
    root,
    paths,
    projectsRoot,
    db,
    store,
    woken,
    addProject(name, type = 'software-dev', abbreviation) {
      const dir = path.join(projectsRoot, name);
      fs.mkdirSync(dir, { recursive: true });
      return registerProject(store, { path: dir, type, abbreviation }, 300, paths.home);
    },
    cleanup() {
      db.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
