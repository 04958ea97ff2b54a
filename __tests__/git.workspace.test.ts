import fs from 'node:fs';
import path from 'node:path';
import { prepareWorkspace, pruneWorktrees } from '../lib/workspace.js';
import { createTicket, getMergeRecord, moveTicket, recordMerge, requireTicket } from '../lib/tickets.js';
import { updateProject, type Project } from '../lib/projects.js';
import { detectMainBranch, isRepo, hasCommits, isClean, currentBranch, repoState, withRepoLock } from '../lib/git.js';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { branches, commitFile, head, initRepo, sh, worktreePaths } from './helpers/git.js';

let h: TestHome;
beforeEach(() => {
  h = makeTestHome();
});
afterEach(() => h.cleanup());

function gitProject(name = 'app', abbr = 'ap', opts: { branch?: string; empty?: boolean } = {}): Project {
  const p = h.addProject(name, 'software-dev', abbr);
  initRepo(p.path, opts);
  return p;
}

function ticket(p: Project, title = 'do it') {
  return createTicket(h.store, { project: p.id, title, column: 'coding-agent', createdBy: 'human' });
}

const prepare = (p: Project, ticketId: number, parallelCoding = true) =>
  prepareWorkspace({ store: h.store, paths: h.paths, projectId: p.id, ticketId, parallelCoding });

describe('repository inspection', () => {
  test('isRepo, hasCommits, isClean, currentBranch on real repositories', async () => {
    const plain = path.join(h.root, 'plain');
    fs.mkdirSync(plain);
    expect(await isRepo(plain)).toBe(false);
    expect(await isRepo(path.join(h.root, 'missing'))).toBe(false);

    const empty = path.join(h.root, 'empty');
    initRepo(empty, { empty: true });
    expect(await isRepo(empty)).toBe(true);
    expect(await hasCommits(empty)).toBe(false);
    expect(await currentBranch(empty)).toBe('main');

    const repo = path.join(h.root, 'repo');
    initRepo(repo);
    expect(await hasCommits(repo)).toBe(true);
    expect(await isClean(repo)).toBe(true);
    fs.writeFileSync(path.join(repo, 'new.txt'), 'x');
    expect(await isClean(repo)).toBe(false);
    expect(await isClean(repo, { untracked: false })).toBe(true);
    fs.writeFileSync(path.join(repo, 'README.md'), 'changed');
    expect(await isClean(repo, { untracked: false })).toBe(false);

    // a folder inside another repository is not a repository of its own
    const nested = path.join(repo, 'sub');
    fs.mkdirSync(nested);
    expect(await isRepo(nested)).toBe(false);
  });

  test('main branch: the configured one, else main, else master, else the HEAD branch; a configured branch that is missing is an error', async () => {
    const repo = path.join(h.root, 'r');
    initRepo(repo, { branch: 'trunk' });
    expect(await detectMainBranch(repo)).toBe('trunk');
    sh(repo, ['branch', 'master']);
    expect(await detectMainBranch(repo)).toBe('master');
    sh(repo, ['branch', 'main']);
    expect(await detectMainBranch(repo)).toBe('main');
    expect(await detectMainBranch(repo, 'trunk')).toBe('trunk');
    await expect(detectMainBranch(repo, 'develop')).rejects.toThrow(/main branch "develop" does not exist/);
  });

  test("repoState: a repository with a commit, HEAD's branch and exactly the asked-for branches, in one answer", async () => {
    const plain = path.join(h.root, 'plain');
    fs.mkdirSync(plain);
    expect(await repoState(plain, ['main'])).toBeNull();
    const empty = path.join(h.root, 'empty');
    initRepo(empty, { empty: true });
    expect(await repoState(empty, ['main'])).toEqual({ commits: false, headBranch: null, tips: new Map() });

    const repo = path.join(h.root, 'repo');
    initRepo(repo);
    const tip = head(repo);
    // names that are prefixes of each other, or a folder of branches, are told apart
    for (const b of ['ticket/ap-10', 'ticket/ap-1/x', 'main-old', 'mai']) sh(repo, ['branch', b]);
    const other = commitFile(repo, 'b.txt', 'b\n', 'on main');
    sh(repo, ['branch', 'ticket/ap-2', tip]);
    const state = await repoState(repo, ['ticket/ap-1', 'ticket/ap-2', 'main', 'master', 'ticket/ap-1', '']);
    expect(state).toEqual({
      commits: true,
      headBranch: 'main',
      tips: new Map([
        ['ticket/ap-2', tip],
        ['main', other],
      ]),
    });
    sh(repo, ['checkout', '-q', '--detach']);
    expect(await repoState(repo)).toEqual({ commits: true, headBranch: null, tips: new Map() });

    // a folder inside a repository is not one of its own
    const nested = path.join(repo, 'sub');
    fs.mkdirSync(nested);
    expect(await repoState(nested, ['main'])).toBeNull();
  });

  test('the repository lock runs holders one after another, even when one fails', async () => {
    const repo = path.join(h.root, 'r');
    initRepo(repo);
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = withRepoLock(repo, async () => {
      order.push('first start');
      await gate;
      order.push('first end');
      throw new Error('boom');
    });
    const second = withRepoLock(repo, async () => {
      order.push('second');
      return 2;
    });
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['first start']);
    release();
    await expect(first).rejects.toThrow('boom');
    expect(await second).toBe(2);
    expect(order).toEqual(['first start', 'first end', 'second']);
  });
});

describe('prepareWorkspace', () => {
  test('parallel coding off: the project folder, no branch, even in a git repository', async () => {
    const p = gitProject();
    const t = ticket(p);
    expect(await prepare(p, t.id, false)).toEqual({ cwd: p.path, branch: null, worktree: null });
    expect(branches(p.path)).toEqual(['main']);
    expect(requireTicket(h.db, t.id)).toMatchObject({ branch: null, worktree_path: null });
  });

  test('a ticket already on its branch keeps its worktree when parallel coding is turned off; others work in place', async () => {
    const p = gitProject();
    const started = ticket(p);
    const ws = await prepare(p, started.id, true);
    expect(await prepare(p, started.id, false)).toEqual(ws);
    const later = ticket(p);
    expect(await prepare(p, later.id, false)).toEqual({ cwd: p.path, branch: null, worktree: null });
    // a branch deleted by hand: back to the project folder, nothing recreated
    fs.rmSync(ws.cwd, { recursive: true, force: true });
    sh(p.path, ['worktree', 'prune']);
    sh(p.path, ['branch', '-D', 'ticket/ap-1']);
    expect(await prepare(p, started.id, false)).toEqual({ cwd: p.path, branch: null, worktree: null });
    expect(branches(p.path)).toEqual(['main']);
  });

  test('a folder that is not a repository, and a repository without a commit, fall back to the project folder without error', async () => {
    const plain = h.addProject('plain', 'software-dev', 'pl');
    const t1 = ticket(plain);
    expect(await prepare(plain, t1.id)).toEqual({ cwd: plain.path, branch: null, worktree: null });
    expect(fs.existsSync(path.join(plain.path, '.git'))).toBe(false);

    const fresh = gitProject('fresh', 'fr', { empty: true });
    const t2 = ticket(fresh);
    expect(await prepare(fresh, t2.id)).toEqual({ cwd: fresh.path, branch: null, worktree: null });
    expect(branches(fresh.path)).toEqual([]);
    expect(requireTicket(h.db, t2.id)).toMatchObject({ branch: null, worktree_path: null });
  });

  test('parallel coding on: branch ticket/<key> from main in its own worktree, recorded on the ticket; later calls reuse it', async () => {
    const p = gitProject();
    const t = ticket(p);
    const ws = await prepare(p, t.id);
    const expected = path.join(h.paths.worktrees, 'ap', 'ap-1');
    expect(ws).toEqual({ cwd: expected, branch: 'ticket/ap-1', worktree: expected });
    expect(branches(p.path)).toEqual(['main', 'ticket/ap-1']);
    expect(head(p.path, 'ticket/ap-1')).toBe(head(p.path, 'main'));
    expect(sh(expected, ['symbolic-ref', '--short', 'HEAD']).trim()).toBe('ticket/ap-1');
    expect(fs.readFileSync(path.join(expected, 'README.md'), 'utf8')).toBe('# project\n');
    expect(requireTicket(h.db, t.id)).toMatchObject({ branch: 'ticket/ap-1', worktree_path: expected });
    // the user's checkout is untouched
    expect(sh(p.path, ['symbolic-ref', '--short', 'HEAD']).trim()).toBe('main');

    // an agent commits; the next agent of the ticket (a reviewer) gets the same worktree with that work
    const work = commitFile(expected, 'feature.txt', 'work\n', 'agent work');
    expect(await prepare(p, t.id)).toEqual(ws);
    expect(head(expected)).toBe(work);
    expect(worktreePaths(p.path)).toHaveLength(2);
  });

  test('two calls racing for the same ticket make one branch and one worktree', async () => {
    const p = gitProject();
    const t = ticket(p);
    const [a, b, c] = await Promise.all([prepare(p, t.id), prepare(p, t.id), prepare(p, t.id)]);
    expect(a).toEqual(b);
    expect(b).toEqual(c);
    expect(branches(p.path)).toEqual(['main', 'ticket/ap-1']);
    expect(worktreePaths(p.path)).toHaveLength(2);
  });

  test('tickets of one repository prepared at once each get their own worktree', async () => {
    const p = gitProject();
    const ids = [ticket(p, 'a').id, ticket(p, 'b').id, ticket(p, 'c').id];
    const all = await Promise.all(ids.map((id) => prepare(p, id)));
    expect(all.map((w) => w.branch)).toEqual(['ticket/ap-1', 'ticket/ap-2', 'ticket/ap-3']);
    expect(new Set(all.map((w) => w.cwd)).size).toBe(3);
    expect(worktreePaths(p.path)).toHaveLength(4);
  });

  test('a vanished worktree folder is recreated from the existing branch, keeping its commits', async () => {
    const p = gitProject();
    const t = ticket(p);
    const ws = await prepare(p, t.id);
    const work = commitFile(ws.cwd, 'feature.txt', 'work\n', 'agent work');
    fs.rmSync(ws.cwd, { recursive: true, force: true });
    const again = await prepare(p, t.id);
    expect(again).toEqual(ws);
    expect(head(again.cwd)).toBe(work);
    expect(fs.readFileSync(path.join(again.cwd, 'feature.txt'), 'utf8')).toBe('work\n');
  });

  test('a vanished worktree that a crash left locked is unlocked, pruned and recreated', async () => {
    const p = gitProject();
    const t = ticket(p);
    const ws = await prepare(p, t.id);
    sh(p.path, ['worktree', 'lock', '--reason', 'crash', ws.cwd]);
    fs.rmSync(ws.cwd, { recursive: true, force: true });
    expect(await prepare(p, t.id)).toEqual(ws);
    expect(fs.existsSync(path.join(ws.cwd, 'README.md'))).toBe(true);
  });

  test("a ticket branch checked out in the project folder itself is refused with a clear error, never used as the agents' folder", async () => {
    const p = gitProject();
    const t = ticket(p);
    const ws = await prepare(p, t.id);
    fs.rmSync(ws.cwd, { recursive: true, force: true });
    sh(p.path, ['worktree', 'prune']);
    sh(p.path, ['switch', '-q', 'ticket/ap-1']);
    await expect(prepare(p, t.id)).rejects.toThrow(/branch ticket\/ap-1 is checked out in the project folder/);
  });

  test('the configured main branch is the fork point', async () => {
    const p = gitProject();
    sh(p.path, ['switch', '-q', '-c', 'develop']);
    const dev = commitFile(p.path, 'dev.txt', 'dev\n', 'dev work');
    sh(p.path, ['switch', '-q', 'main']);
    const configured = updateProject(h.db, p.id, { main_branch: 'develop' });
    const t = ticket(configured);
    const ws = await prepare(configured, t.id);
    expect(head(ws.cwd)).toBe(dev);
  });

  test('a ticket reopened after its branch was merged and deleted gets a fresh branch and is no longer marked merged', async () => {
    const p = gitProject();
    const t = ticket(p);
    const ws = await prepare(p, t.id);
    fs.rmSync(ws.cwd, { recursive: true, force: true });
    sh(p.path, ['worktree', 'prune']);
    sh(p.path, ['branch', '-D', 'ticket/ap-1']);
    recordMerge(h.db, t.id, head(p.path), 'merged', 'merge');
    expect(getMergeRecord(h.db, t.id).merged_at).not.toBeNull();
    const again = await prepare(p, t.id);
    expect(again.branch).toBe('ticket/ap-1');
    expect(getMergeRecord(h.db, t.id)).toEqual({ merged_at: null, merge_commit: null });
  });
});

describe('pruneWorktrees', () => {
  test('removes worktrees of merged, archived and deleted tickets, keeps active ones and ones with uncommitted files', async () => {
    const p = gitProject();
    const active = ticket(p, 'active');
    const merged = ticket(p, 'merged');
    const archived = ticket(p, 'archived');
    const dirty = ticket(p, 'dirty archived');
    const ws = Object.fromEntries(
      await Promise.all([active, merged, archived, dirty].map(async (t) => [t.key, await prepare(p, t.id)] as const)),
    );

    moveTicket(h.store, merged.id, 'done', { actor: 'human' });
    recordMerge(h.db, merged.id, head(p.path), 'merged', 'merge');
    h.db.prepare(`UPDATE tickets SET archived_at = ? WHERE id IN (?, ?)`).run(Date.now(), archived.id, dirty.id);
    fs.writeFileSync(path.join(ws[dirty.key]!.cwd, 'notes.txt'), 'unsaved');
    // a worktree under our layout whose ticket no longer exists
    const orphan = path.join(h.paths.worktrees, 'ap', 'ap-99');
    sh(p.path, ['worktree', 'add', '-q', '-b', 'ticket/ap-99', orphan, 'main']);
    // a worktree whose folder vanished
    const gone = ticket(p, 'gone');
    fs.rmSync((await prepare(p, gone.id)).cwd, { recursive: true, force: true });

    const warnings: string[] = [];
    const logger = { warn: (msg: string) => warnings.push(msg) } as never;
    await pruneWorktrees({ store: h.store, paths: h.paths, logger });

    const left = worktreePaths(p.path)
      .map((w) => fs.realpathSync(w))
      .sort();
    expect(left).toEqual([p.path, ws[active.key]!.cwd, ws[dirty.key]!.cwd].map((w) => fs.realpathSync(w)).sort());
    expect(fs.existsSync(ws[merged.key]!.cwd)).toBe(false);
    expect(fs.existsSync(ws[archived.key]!.cwd)).toBe(false);
    expect(fs.existsSync(orphan)).toBe(false);
    expect(fs.readFileSync(path.join(ws[dirty.key]!.cwd, 'notes.txt'), 'utf8')).toBe('unsaved');
    expect(warnings).toHaveLength(1);
    expect(requireTicket(h.db, merged.id).worktree_path).toBeNull();
    expect(requireTicket(h.db, archived.id).worktree_path).toBeNull();
    expect(requireTicket(h.db, active.id).worktree_path).toBe(ws[active.key]!.cwd);
    // branches are history: pruning removes folders, never commits
    expect(branches(p.path)).toEqual(['main', 'ticket/ap-1', 'ticket/ap-2', 'ticket/ap-3', 'ticket/ap-4', 'ticket/ap-5', 'ticket/ap-99']);

    // a second run changes nothing
    await pruneWorktrees({ store: h.store, paths: h.paths, logger });
    expect(
      worktreePaths(p.path)
        .map((w) => fs.realpathSync(w))
        .sort(),
    ).toEqual(left);
  });

  test('skips projects that are not repositories', async () => {
    h.addProject('plain', 'software-dev', 'pl');
    await expect(pruneWorktrees({ store: h.store, paths: h.paths })).resolves.toBeUndefined();
  });
});
