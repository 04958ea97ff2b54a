import fs from 'node:fs';
import path from 'node:path';
import { DIFF_PATCH_LIMIT_BYTES, mergeTicket, ticketDiff } from '../lib/merge.js';
import { prepareWorkspace } from '../lib/workspace.js';
import { createTicket, moveTicket } from '../lib/tickets.js';
import { openDb } from '../lib/db/connection.js';
import { migrate, migrations, schemaVersion } from '../lib/db/migrations.js';
import { pathsFor } from '../lib/paths.js';
import { createStore } from '../lib/store.js';
import { makeTestHome, tempDir, type TestHome } from './helpers/home.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { commitFile, head, initRepo, sh } from './helpers/git.js';

describe('ticketDiff', () => {
  let h: TestHome;
  beforeEach(() => {
    h = makeTestHome();
  });
  afterEach(() => h.cleanup());

  test('files, stat and patch of the branch against its merge-base with main; the same after the branch is merged and deleted', async () => {
    const p = h.addProject('app', 'software-dev', 'ap');
    initRepo(p.path);
    commitFile(p.path, 'old-name.txt', 'keep me\n', 'a file to rename');
    commitFile(p.path, 'gone.txt', 'bye\n', 'a file to delete');
    const t = createTicket(h.store, { project: p.id, title: 'change things', column: 'coding-agent', createdBy: 'human' });
    const ws = await prepareWorkspace({ store: h.store, paths: h.paths, projectId: p.id, ticketId: t.id, parallelCoding: true });
    const base = head(p.path);
    commitFile(ws.cwd, 'README.md', '# project\nmore\n', 'edit readme');
    commitFile(ws.cwd, 'src/new file ü.ts', 'export const x = 1;\n', 'add a file');
    sh(ws.cwd, ['mv', 'old-name.txt', 'new-name.txt']);
    sh(ws.cwd, ['rm', '-q', 'gone.txt']);
    sh(ws.cwd, ['commit', '-q', '-m', 'rename and delete']);
    // main moves on meanwhile: not part of the ticket's diff
    commitFile(p.path, 'main-only.txt', 'main\n', 'work on main');

    const diff = (await ticketDiff({ store: h.store, ticketId: t.id }))!;
    expect(diff).toMatchObject({ branch: 'ticket/ap-1', base, main: 'main', truncated: false });
    expect(diff.files).toEqual([
      { path: 'README.md', status: 'M' },
      { path: 'gone.txt', status: 'D' },
      { path: 'new-name.txt', status: 'R' },
      { path: 'src/new file ü.ts', status: 'A' },
    ]);
    expect(diff.stat).toMatch(/4 files changed/);
    expect(diff.patch).toContain('+more');
    expect(diff.patch).toContain('+export const x = 1;');
    expect(diff.patch).not.toContain('main-only');

    moveTicket(h.store, t.id, 'done', { actor: 'human' });
    expect((await mergeTicket({ store: h.store, paths: h.paths, ticketId: t.id })).status).toBe('merged');
    const after = (await ticketDiff({ store: h.store, ticketId: t.id }))!;
    expect(after.files).toEqual(diff.files);
    expect(after.patch).toBe(diff.patch);
  });

  test(`a patch over ${DIFF_PATCH_LIMIT_BYTES} bytes is cut at a line boundary and marked truncated`, async () => {
    const p = h.addProject('app', 'software-dev', 'ap');
    initRepo(p.path);
    const t = createTicket(h.store, { project: p.id, title: 'big', column: 'coding-agent', createdBy: 'human' });
    const ws = await prepareWorkspace({ store: h.store, paths: h.paths, projectId: p.id, ticketId: t.id, parallelCoding: true });
    const line = `${'x'.repeat(99)}\n`;
    commitFile(ws.cwd, 'big.txt', line.repeat(Math.ceil((DIFF_PATCH_LIMIT_BYTES * 2) / line.length)), 'big file');
    const diff = (await ticketDiff({ store: h.store, ticketId: t.id }))!;
    expect(diff.truncated).toBe(true);
    expect(Buffer.byteLength(diff.patch)).toBeLessThanOrEqual(DIFF_PATCH_LIMIT_BYTES);
    expect(Buffer.byteLength(diff.patch)).toBeGreaterThan(DIFF_PATCH_LIMIT_BYTES - 200);
    expect(diff.patch.endsWith('\n')).toBe(true);
    expect(diff.files).toEqual([{ path: 'big.txt', status: 'A' }]);
  });

  test('no branch, or not a repository: null', async () => {
    const p = h.addProject('plain', 'software-dev', 'pl');
    const t = createTicket(h.store, { project: p.id, title: 'x', createdBy: 'human' });
    expect(await ticketDiff({ store: h.store, ticketId: t.id })).toBeNull();
    // a branch recorded while the folder was a repository, which it no longer is
    h.db.prepare(`UPDATE tickets SET branch = 'ticket/pl-1' WHERE id = ?`).run(t.id);
    expect(await ticketDiff({ store: h.store, ticketId: t.id })).toBeNull();
  });
});

describe('migration 3', () => {
  test('a version-1 database with tickets gains merged_at and merge_commit, data kept', () => {
    const dir = tempDir();
    const db = openDb(path.join(dir, 'tasks.db'));
    db.exec(migrations[0]!.sql);
    db.pragma('user_version = 1');
    db.prepare(
      `INSERT INTO projects (name, path, abbreviation, project_type_id, status, created_at, updated_at) VALUES ('p', '/p', 'p', NULL, 'active', 0, 0)`,
    ).run();
    db.prepare(
      `INSERT INTO tickets (project_id, number, title, column_id, created_by, created_at, updated_at, column_entered_at, branch) VALUES (1, 1, 't', 'done', 'me', 0, 0, 0, 'ticket/p-1')`,
    ).run();
    expect(migrate(db)).toContain(3);
    expect(schemaVersion(db)).toBe(migrations.at(-1)!.version);
    expect(db.prepare(`SELECT title, branch, merged_at, merge_commit FROM tickets`).get()).toEqual({
      title: 't',
      branch: 'ticket/p-1',
      merged_at: null,
      merge_commit: null,
    });
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('GET /api/tickets/:ref/diff through the daemon', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startTestDaemon();
  });
  afterAll(async () => {
    expect(await d.stop()).toBe(0);
  });

  test('the branch diff as JSON; 404 with a JSON error for a ticket without a branch or an unknown ticket', async () => {
    const folder = path.join(d.projectsRoot, 'shop');
    initRepo(folder);
    const reg = await d.api('POST', '/api/projects', { path: folder, type: 'software-dev', abbreviation: 'sh' });
    expect(reg.status).toBe(201);
    // filed in human: no agent of the daemon's own works on it while this test plays the agent-run worker
    const withBranch = await d.api('POST', '/api/tickets', { project: 'sh', title: 'Add cart' });
    const without = await d.api('POST', '/api/tickets', { project: 'sh', title: 'Plain' });
    expect(withBranch.status).toBe(201);

    // the agent-run worker's part, done here against the daemon's own database and home
    const db = openDb(path.join(d.home, 'tasks.db'));
    try {
      const store = createStore(db);
      const ws = await prepareWorkspace({
        store,
        paths: pathsFor(d.home),
        projectId: reg.body.project.id,
        ticketId: withBranch.body.ticket.id,
        parallelCoding: true,
      });
      commitFile(ws.cwd, 'cart.ts', 'export const cart = [];\n', 'add cart');
    } finally {
      db.close();
    }

    const res = await d.api('GET', '/api/tickets/sh-1/diff');
    expect(res.status).toBe(200);
    expect(res.body.diff).toMatchObject({
      branch: 'ticket/sh-1',
      main: 'main',
      base: head(folder),
      truncated: false,
      files: [{ path: 'cart.ts', status: 'A' }],
    });
    expect(res.body.diff.stat).toContain('cart.ts');
    expect(res.body.diff.patch).toContain('+export const cart = [];');

    const none = await d.api('GET', `/api/tickets/${without.body.ticket.key}/diff`);
    expect(none).toEqual({ status: 404, body: { error: 'ticket sh-2 has no branch to diff' } });
    const unknown = await d.api('GET', '/api/tickets/sh-99/diff');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/not found/);
  });
});
