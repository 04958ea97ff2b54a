import fs from 'node:fs';
import path from 'node:path';
import { mergeTicket, type MergeOutcome } from '../lib/merge.js';
import { prepareWorkspace } from '../lib/workspace.js';
import { createTicket, getMergeRecord, getThread, inbox, moveTicket, requireTicket, type TicketView } from '../lib/tickets.js';
import type { Project } from '../lib/projects.js';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { branches, commitFile, head, initRepo, mergeHeadExists, porcelain, sh, worktreePaths } from './helpers/git.js';

let h: TestHome;
let p: Project;
beforeEach(() => {
  h = makeTestHome();
  p = h.addProject('app', 'software-dev', 'ap');
  initRepo(p.path);
  commitFile(p.path, 'shared.txt', 'line 1\nline 2\nline 3\n', 'shared file');
});
afterEach(() => h.cleanup());

/** A ticket whose agent worked in its worktree: `edits` are committed there, then it reaches done. */
async function finishedTicket(title: string, edits: Record<string, string>): Promise<TicketView & { worktree: string }> {
  const t = createTicket(h.store, { project: p.id, title, column: 'coding-agent', createdBy: 'human' });
  const ws = await prepareWorkspace({ store: h.store, paths: h.paths, projectId: p.id, ticketId: t.id, parallelCoding: true });
  for (const [file, content] of Object.entries(edits)) commitFile(ws.cwd, file, content, `${t.key}: edit ${file}`);
  moveTicket(h.store, t.id, 'done', { actor: 'code-reviewer:r1' });
  return { ...t, worktree: ws.cwd };
}

const merge = (ticketId: number): Promise<MergeOutcome> => mergeTicket({ store: h.store, paths: h.paths, ticketId });
const mergeComments = (ticketId: number) => getThread(h.db, ticketId).filter((c) => c.type === 'merge');
const firstParentSubjects = () => sh(p.path, ['log', '--first-parent', '--format=%s', 'main']).trim().split('\n');

/** Everything a user could observe about the repository and the ticket. */
function endState(ticketId: number) {
  const t = requireTicket(h.db, ticketId);
  return {
    head: head(p.path),
    status: porcelain(p.path),
    branches: branches(p.path),
    worktrees: worktreePaths(p.path).length,
    column: t.column_id,
    worktree_path: t.worktree_path,
    merge: getMergeRecord(h.db, ticketId),
    thread: getThread(h.db, ticketId).map((c) => [c.type, c.body]),
  };
}

describe('mergeTicket', () => {
  test('two tickets that edit different files both merge with --no-ff; history intact; worktrees and branches removed', async () => {
    const a = await finishedTicket('Add feature A', { 'a.txt': 'A\n' });
    const b = await finishedTicket('Add feature B', { 'b.txt': 'B1\n', 'docs/b.md': 'B2\n' });
    const agentCommitA = head(a.worktree);
    const agentCommitB = head(b.worktree);
    const before = head(p.path);

    const ra = await merge(a.id);
    const rb = await merge(b.id);
    expect(ra).toMatchObject({ status: 'merged', files: ['a.txt'] });
    expect(rb).toMatchObject({ status: 'merged', files: ['b.txt', 'docs/b.md'] });

    // both merge commits on main's first-parent line, each bringing in the agent's own commit
    expect(firstParentSubjects().slice(0, 3)).toEqual([
      'Merge ticket/ap-2: Add feature B',
      'Merge ticket/ap-1: Add feature A',
      'shared file',
    ]);
    expect(sh(p.path, ['rev-parse', `${rb.commit}^1`]).trim()).toBe(ra.commit);
    expect(sh(p.path, ['rev-parse', `${ra.commit}^1`]).trim()).toBe(before);
    expect(sh(p.path, ['rev-parse', `${ra.commit}^2`]).trim()).toBe(agentCommitA);
    expect(sh(p.path, ['rev-parse', `${rb.commit}^2`]).trim()).toBe(agentCommitB);
    expect(sh(p.path, ['log', '--format=%s', 'main']).split('\n')).toEqual(
      expect.arrayContaining(['ap-1: edit a.txt', 'ap-2: edit b.txt', 'ap-2: edit docs/b.md']),
    );
    expect(head(p.path)).toBe(rb.commit);
    expect(fs.readFileSync(path.join(p.path, 'docs/b.md'), 'utf8')).toBe('B2\n');
    expect(porcelain(p.path)).toBe('');

    expect(branches(p.path)).toEqual(['main']);
    expect(worktreePaths(p.path)).toEqual([p.path]);
    expect(fs.existsSync(a.worktree)).toBe(false);
    for (const [t, r] of [
      [a, ra],
      [b, rb],
    ] as const) {
      const row = requireTicket(h.db, t.id);
      expect(row).toMatchObject({ column_id: 'done', worktree_path: null, branch: `ticket/${t.key}` });
      expect(getMergeRecord(h.db, t.id)).toEqual({ merged_at: expect.any(Number), merge_commit: r.commit });
      const [comment, ...more] = mergeComments(t.id);
      expect(more).toEqual([]);
      expect(comment!.body).toContain(r.commit!);
      for (const f of r.files!) expect(comment!.body).toContain(`- ${f}`);
    }
  });

  test('two tickets that edit the same lines: the second conflicts, is aborted cleanly and goes to human with the file named', async () => {
    const a = await finishedTicket('Rewrite line 2', { 'shared.txt': 'line 1\nline 2 by A\nline 3\n' });
    const b = await finishedTicket('Also rewrite line 2', { 'shared.txt': 'line 1\nline 2 by B\nline 3\n', 'other.txt': 'fine\n' });
    expect((await merge(a.id)).status).toBe('merged');
    const before = { head: head(p.path), status: porcelain(p.path) };
    const branchTipB = head(p.path, 'ticket/ap-2');

    const rb = await merge(b.id);
    expect(rb).toMatchObject({ status: 'conflict', files: ['shared.txt'] });
    expect(head(p.path)).toBe(before.head);
    expect(porcelain(p.path)).toBe('');
    expect(mergeHeadExists(p.path)).toBe(false);
    expect(fs.readFileSync(path.join(p.path, 'shared.txt'), 'utf8')).toBe('line 1\nline 2 by A\nline 3\n');
    expect(fs.existsSync(path.join(p.path, 'other.txt'))).toBe(false);

    // the branch and worktree stay for the fix
    expect(head(p.path, 'ticket/ap-2')).toBe(branchTipB);
    expect(fs.existsSync(b.worktree)).toBe(true);
    expect(requireTicket(h.db, b.id).column_id).toBe('human');
    expect(getMergeRecord(h.db, b.id).merged_at).toBeNull();
    const [comment] = mergeComments(b.id);
    expect(comment!.body).toContain('- shared.txt');
    expect(comment!.body).toContain('exactly as it was before');
    expect(comment!.body).toContain(`git merge main`);
    expect(comment!.body).toContain(b.worktree);
    expect(comment!.body).toContain('move ap-2 back to done');
    const item = inbox(h.db).find((i) => i.id === b.id)!;
    expect(item.reason_type).toBe('merge');
    expect(item.reason).toContain('shared.txt');

    // following the instructions: resolve on the branch, back to done, and it merges
    expect(() => sh(b.worktree, ['merge', '-q', 'main'])).toThrow();
    expect(porcelain(b.worktree)).toContain('UU shared.txt');
    fs.writeFileSync(path.join(b.worktree, 'shared.txt'), 'line 1\nline 2 by A and B\nline 3\n');
    sh(b.worktree, ['commit', '-q', '-am', 'resolve']);
    moveTicket(h.store, b.id, 'done', { actor: 'human' });
    expect(await merge(b.id)).toMatchObject({ status: 'merged' });
    expect(fs.readFileSync(path.join(p.path, 'shared.txt'), 'utf8')).toBe('line 1\nline 2 by A and B\nline 3\n');
  });

  test('a dirty main working tree is refused and left untouched', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    fs.writeFileSync(path.join(p.path, 'README.md'), 'my unsaved edit\n');
    fs.writeFileSync(path.join(p.path, 'scratch.txt'), 'untracked\n');
    const before = { head: head(p.path), status: porcelain(p.path) };

    const r = await merge(a.id);
    expect(r.status).toBe('refused');
    expect(r.detail).toContain('README.md');
    expect({ head: head(p.path), status: porcelain(p.path) }).toEqual(before);
    expect(fs.readFileSync(path.join(p.path, 'README.md'), 'utf8')).toBe('my unsaved edit\n');
    expect(sh(p.path, ['stash', 'list'])).toBe('');
    expect(branches(p.path)).toEqual(['main', 'ticket/ap-1']);
    expect(requireTicket(h.db, a.id).column_id).toBe('human');
    expect(mergeComments(a.id)[0]!.body).toMatch(
      /uncommitted changes[\s\S]*README\.md[\s\S]*Commit or stash them, then move ap-1 back to done/,
    );
  });

  test('untracked files alone do not block a merge, and are kept', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    fs.writeFileSync(path.join(p.path, 'scratch.txt'), 'untracked\n');
    expect((await merge(a.id)).status).toBe('merged');
    expect(fs.readFileSync(path.join(p.path, 'scratch.txt'), 'utf8')).toBe('untracked\n');
  });

  test('HEAD on another branch is refused and the checkout is left where it is', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    sh(p.path, ['switch', '-q', '-c', 'experiment']);
    const mainBefore = head(p.path, 'main');
    const r = await merge(a.id);
    expect(r.status).toBe('refused');
    expect(r.detail).toContain('on branch "experiment", not on "main"');
    expect(sh(p.path, ['symbolic-ref', '--short', 'HEAD']).trim()).toBe('experiment');
    expect(head(p.path, 'main')).toBe(mainBefore);
    expect(requireTicket(h.db, a.id).column_id).toBe('human');
    expect(mergeComments(a.id)[0]!.body).toContain('git switch main');
  });

  test('a stale MERGE_HEAD from a crashed merge is cleaned before merging', async () => {
    const a = await finishedTicket('Rewrite line 2', { 'shared.txt': 'line 1\nline 2 by A\nline 3\n' });
    const b = await finishedTicket('Feature B', { 'b.txt': 'B\n' });
    // a crash during an earlier conflicting merge of ap-1 left the repository mid-merge
    const mainTip = commitFile(p.path, 'shared.txt', 'line 1\nline 2 on main\nline 3\n', 'main edits line 2');
    expect(() => sh(p.path, ['merge', '--no-ff', '-m', 'Merge ticket/ap-1: Rewrite line 2', 'ticket/ap-1'])).toThrow();
    expect(mergeHeadExists(p.path)).toBe(true);

    const rb = await merge(b.id);
    expect(rb.status).toBe('merged');
    expect(mergeHeadExists(p.path)).toBe(false);
    expect(porcelain(p.path)).toBe('');
    expect(fs.readFileSync(path.join(p.path, 'shared.txt'), 'utf8')).toBe('line 1\nline 2 on main\nline 3\n');
    expect(sh(p.path, ['rev-parse', `${rb.commit}^1`]).trim()).toBe(mainTip);
    expect(requireTicket(h.db, a.id).column_id).toBe('done');
  });

  test('a merge the user started by hand is never aborted', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    sh(p.path, ['switch', '-q', '-c', 'mine']);
    commitFile(p.path, 'shared.txt', 'line 1\nmine\nline 3\n', 'my change');
    sh(p.path, ['switch', '-q', 'main']);
    commitFile(p.path, 'shared.txt', 'line 1\nmain\nline 3\n', 'main change');
    expect(() => sh(p.path, ['merge', 'mine'])).toThrow();
    fs.writeFileSync(path.join(p.path, 'shared.txt'), 'line 1\nhalf resolved by hand\nline 3\n');
    const before = porcelain(p.path);

    const r = await merge(a.id);
    expect(r.status).toBe('refused');
    expect(r.detail).toContain('a merge that Dispatcher did not start is in progress');
    expect(mergeHeadExists(p.path)).toBe(true);
    expect(porcelain(p.path)).toBe(before);
    expect(fs.readFileSync(path.join(p.path, 'shared.txt'), 'utf8')).toBe('line 1\nhalf resolved by hand\nline 3\n');
  });

  test('run twice, same end state', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    const first = await merge(a.id);
    expect(first.status).toBe('merged');
    const once = endState(a.id);
    const second = await merge(a.id);
    expect(second.status).toBe('already-merged');
    expect(endState(a.id)).toEqual(once);
  });

  test('run twice after a conflict, same end state (the second run sees the ticket is no longer in done)', async () => {
    const a = await finishedTicket('A', { 'shared.txt': 'x\n' });
    const b = await finishedTicket('B', { 'shared.txt': 'y\n' });
    expect((await merge(a.id)).status).toBe('merged');
    expect((await merge(b.id)).status).toBe('conflict');
    const once = endState(b.id);
    expect((await merge(b.id)).status).toBe('not-done');
    expect(endState(b.id)).toEqual(once);
  });

  test('a crash mid-merge (merge started, not committed) is recovered: the stale merge is aborted and the ticket merged', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    const before = head(p.path);
    sh(p.path, ['merge', '--no-ff', '--no-commit', 'ticket/ap-1']);
    expect(mergeHeadExists(p.path)).toBe(true);
    expect(porcelain(p.path)).not.toBe('');

    const r = await merge(a.id);
    expect(r).toMatchObject({ status: 'merged', files: ['a.txt'] });
    expect(sh(p.path, ['rev-parse', `${r.commit}^1`]).trim()).toBe(before);
    expect(mergeHeadExists(p.path)).toBe(false);
    expect(porcelain(p.path)).toBe('');
    expect(branches(p.path)).toEqual(['main']);
    expect(mergeComments(a.id)).toHaveLength(1);
  });

  test('a crash that left only a MERGE_HEAD file is recovered', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    fs.writeFileSync(path.join(p.path, '.git', 'MERGE_HEAD'), `${head(p.path, 'ticket/ap-1')}\n`);
    const r = await merge(a.id);
    expect(r.status).toBe('merged');
    expect(mergeHeadExists(p.path)).toBe(false);
    expect(porcelain(p.path)).toBe('');
  });

  test("a crash that left MERGE_HEAD and git's index.lock is recovered", async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    sh(p.path, ['merge', '--no-ff', '--no-commit', '-m', 'Merge ticket/ap-1: Feature', 'ticket/ap-1']);
    fs.writeFileSync(path.join(p.path, '.git', 'index.lock'), '');
    const r = await merge(a.id);
    expect(r.status).toBe('merged');
    expect(fs.existsSync(path.join(p.path, '.git', 'index.lock'))).toBe(false);
    expect(mergeHeadExists(p.path)).toBe(false);
    expect(porcelain(p.path)).toBe('');
  });

  test('a crash after the merge commit, before it was recorded, finishes the job without merging twice', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    sh(p.path, ['merge', '-q', '--no-ff', '-m', 'Merge ticket/ap-1: Feature', 'ticket/ap-1']);
    const mergeCommit = head(p.path);

    const r = await merge(a.id);
    expect(r).toMatchObject({ status: 'already-merged', commit: mergeCommit, files: ['a.txt'] });
    expect(head(p.path)).toBe(mergeCommit);
    expect(getMergeRecord(h.db, a.id).merge_commit).toBe(mergeCommit);
    expect(mergeComments(a.id)).toHaveLength(1);
    expect(mergeComments(a.id)[0]!.body).toContain(mergeCommit);
    expect(branches(p.path)).toEqual(['main']);
    expect(fs.existsSync(a.worktree)).toBe(false);
  });

  test('a crash after recording, before cleanup, only cleans up', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    await merge(a.id);
    // as if the worktree and branch had not been removed yet
    const tip = sh(p.path, ['rev-parse', `${getMergeRecord(h.db, a.id).merge_commit}^2`]).trim();
    sh(p.path, ['branch', 'ticket/ap-1', tip]);
    sh(p.path, ['worktree', 'add', '-q', a.worktree, 'ticket/ap-1']);
    const mainBefore = head(p.path);
    const r = await merge(a.id);
    expect(r.status).toBe('already-merged');
    expect(head(p.path)).toBe(mainBefore);
    expect(branches(p.path)).toEqual(['main']);
    expect(fs.existsSync(a.worktree)).toBe(false);
    expect(mergeComments(a.id)).toHaveLength(1);
  });

  test('a branch with no commits of its own: nothing to merge, recorded once, cleaned up', async () => {
    const a = await finishedTicket('No-op', {});
    const before = head(p.path);
    const r = await merge(a.id);
    expect(r.status).toBe('already-merged');
    expect(head(p.path)).toBe(before);
    expect(branches(p.path)).toEqual(['main']);
    expect(mergeComments(a.id).map((c) => c.body)).toEqual(['Nothing to merge: every commit of ticket/ap-1 is already on main.']);
    expect(getMergeRecord(h.db, a.id)).toEqual({ merged_at: expect.any(Number), merge_commit: null });
    expect((await merge(a.id)).status).toBe('already-merged');
    expect(mergeComments(a.id)).toHaveLength(1);
  });

  test('uncommitted work left in the ticket worktree is refused, not lost', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    fs.writeFileSync(path.join(a.worktree, 'forgotten.txt'), 'agent forgot to commit\n');
    const before = head(p.path);
    const r = await merge(a.id);
    expect(r.status).toBe('refused');
    expect(r.detail).toContain('forgotten.txt');
    expect(head(p.path)).toBe(before);
    expect(fs.readFileSync(path.join(a.worktree, 'forgotten.txt'), 'utf8')).toBe('agent forgot to commit\n');
    expect(requireTicket(h.db, a.id).column_id).toBe('human');
  });

  test('a merge git refuses for another reason (an untracked file in the way) leaves the repository as it was', async () => {
    const a = await finishedTicket('Feature', { 'a.txt': 'from the ticket\n' });
    fs.writeFileSync(path.join(p.path, 'a.txt'), 'my own untracked a.txt\n');
    const before = { head: head(p.path), status: porcelain(p.path) };
    const r = await merge(a.id);
    expect(r.status).toBe('refused');
    expect(r.detail).toContain('a.txt');
    expect(r.detail).toContain('exactly as it was before');
    expect({ head: head(p.path), status: porcelain(p.path) }).toEqual(before);
    expect(fs.readFileSync(path.join(p.path, 'a.txt'), 'utf8')).toBe('my own untracked a.txt\n');
  });

  test('not in done, no branch, and merges of one repository never overlap', async () => {
    const t = createTicket(h.store, { project: p.id, title: 'x', column: 'coding-agent', createdBy: 'human' });
    expect((await merge(t.id)).status).toBe('not-done');
    moveTicket(h.store, t.id, 'done', { actor: 'human' });
    expect((await merge(t.id)).status).toBe('no-branch');
    expect(getThread(h.db, t.id).filter((c) => c.type === 'merge')).toEqual([]);

    const tickets = await Promise.all(['a', 'b', 'c', 'd'].map((n) => finishedTicket(n, { [`${n}.txt`]: `${n}\n` })));
    const results = await Promise.all(tickets.map((x) => merge(x.id)));
    expect(results.map((r) => r.status)).toEqual(['merged', 'merged', 'merged', 'merged']);
    expect(
      firstParentSubjects()
        .filter((s) => s.startsWith('Merge '))
        .sort(),
    ).toEqual(['Merge ticket/ap-2: a', 'Merge ticket/ap-3: b', 'Merge ticket/ap-4: c', 'Merge ticket/ap-5: d']);
    expect(porcelain(p.path)).toBe('');
  });

  test('the configured main branch is the merge target', async () => {
    sh(p.path, ['switch', '-q', '-c', 'develop']);
    h.db.prepare(`UPDATE projects SET main_branch = 'develop' WHERE id = ?`).run(p.id);
    const a = await finishedTicket('Feature', { 'a.txt': 'A\n' });
    const mainBefore = head(p.path, 'main');
    const r = await merge(a.id);
    expect(r.status).toBe('merged');
    expect(head(p.path, 'develop')).toBe(r.commit);
    expect(head(p.path, 'main')).toBe(mainBefore);
  });
});
