// Test homes: every test gets its own DISPATCH_HOME and projects root in a temp folder, so
// nothing ever touches the real ~/Development.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { prepareHome } from '../../lib/home.js';
import { pathsFor, type Paths } from '../../lib/paths.js';
import { createStore, type Store } from '../../lib/store.js';
import { getColumns, registerProject, type Project } from '../../lib/projects.js';
import { issueRunSecret, reserveRun, type Run } from '../../lib/runs.js';
import { requireTicket } from '../../lib/tickets.js';
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

/**
 * Starts an agent run on a ticket without a process: reserved the way a scan reserves it (claim,
 * claim comment) and given its secret the way the runtime does before a spawn. The test then acts
 * as the agent, calling ticket.cjs with DISPATCH_RUN_SECRET.
 */
export function startRun(h: TestHome, ref: string): { run: Run; secret: string; author: string } {
  const t = requireTicket(h.db, ref);
  const column = getColumns(h.db, t.project_id).find((c) => c.column_id === t.column_id);
  if (!column?.agent_type_id) throw new Error(`${ref} is not in an agent column`);
  const caps = { global: 100, perProject: 100, parallelCoding: true, perTicket: 100 };
  const r = reserveRun(h.store, { ticketId: t.id, columnId: t.column_id, agentTypeId: column.agent_type_id, model: 'opus', caps });
  if (r.kind !== 'reserved') throw new Error(`could not reserve a run on ${ref}: ${r.kind}`);
  const secret = issueRunSecret(h.db, r.run.id);
  if (!secret) throw new Error(`run ${r.run.id} is not queued`);
  return { run: r.run, secret, author: `${r.run.agent_type_id}:${r.run.id}` };
}

/** A free port on 127.0.0.1 (for a server that must come back on the same address). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
