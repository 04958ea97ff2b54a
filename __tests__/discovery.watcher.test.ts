// Project discovery while the daemon runs: folders that appear under the projects root become
// unregistered projects, vanished ones become missing (tickets kept), returning ones get their
// status back. The periodic re-scan covers what fs.watch cannot (a root created later).
import fs from 'node:fs';
import path from 'node:path';
import { watchProjects } from '../lib/discovery.js';
import { createLogger } from '../lib/logger.js';
import { listProjects } from '../lib/projects.js';
import { startTestDaemon } from './helpers/daemon.js';
import { makeTestHome } from './helpers/home.js';

const until = async <T>(probe: () => Promise<T> | T, ok: (v: T) => boolean, what: string): Promise<T> => {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last saw ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

test('through a running daemon: added, removed and returning folders', async () => {
  const d = await startTestDaemon();
  try {
    const statusOf = async (name: string) => {
      const { projects } = (await d.api('GET', '/api/projects')).body as { projects: { name: string; status: string }[] };
      return projects.find((p) => p.name === name)?.status ?? null;
    };
    const folder = path.join(d.projectsRoot, 'garden');
    fs.mkdirSync(folder);
    await until(
      () => statusOf('garden'),
      (s) => s === 'unregistered',
      'the new folder',
    );

    expect((await d.api('POST', '/api/projects', { path: folder, type: 'personal', abbreviation: 'gdn' })).status).toBe(201);
    expect((await d.api('POST', '/api/tickets', { project: 'gdn', title: 'plant tomatoes' })).status).toBe(201);

    fs.rmSync(folder, { recursive: true });
    await until(
      () => statusOf('garden'),
      (s) => s === 'missing',
      'the vanished folder',
    );
    const kept = await d.api('GET', '/api/tickets/gdn-1');
    expect(kept.status).toBe(200);
    expect(kept.body.ticket.title).toBe('plant tomatoes');

    fs.mkdirSync(folder);
    await until(
      () => statusOf('garden'),
      (s) => s === 'active',
      'the returning folder',
    );

    // an unregistered folder that vanishes and returns comes back unregistered
    fs.mkdirSync(path.join(d.projectsRoot, 'scratch'));
    await until(
      () => statusOf('scratch'),
      (s) => s === 'unregistered',
      'scratch',
    );
    fs.rmSync(path.join(d.projectsRoot, 'scratch'), { recursive: true });
    await until(
      () => statusOf('scratch'),
      (s) => s === 'missing',
      'scratch gone',
    );
    fs.mkdirSync(path.join(d.projectsRoot, 'scratch'));
    await until(
      () => statusOf('scratch'),
      (s) => s === 'unregistered',
      'scratch back',
    );
  } finally {
    expect(await d.stop()).toBe(0);
  }
});

test('a projects root that does not exist yet is picked up by the periodic re-scan, then watched', async () => {
  const h = makeTestHome();
  const root = path.join(h.root, 'later');
  const changes: string[][] = [];
  const watcher = watchProjects({
    db: h.db,
    root,
    excluded: [h.paths.home],
    logger: createLogger({ console: false }),
    rescanMs: 200,
    debounceMs: 50,
    onChange: (r) => changes.push(r.added),
  });
  try {
    expect(listProjects(h.db)).toEqual([]);
    fs.mkdirSync(path.join(root, 'one'), { recursive: true });
    await until(
      () => listProjects(h.db).map((p) => p.name),
      (names) => names.includes('one'),
      'the first folder',
    );
    fs.mkdirSync(path.join(root, 'two'));
    fs.mkdirSync(path.join(root, '.hidden'));
    await until(
      () =>
        listProjects(h.db)
          .map((p) => p.name)
          .sort(),
      (names) => names.join() === 'one,two',
      'the second folder',
    );
    expect(changes.flat()).toEqual([path.join(root, 'one'), path.join(root, 'two')]);
    // running it again changes nothing
    expect(watcher.scan()).toEqual({ added: [], missing: [], returned: [] });
  } finally {
    watcher.stop();
    h.cleanup();
  }
});
