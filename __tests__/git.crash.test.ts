// A real merge interrupted by a real SIGKILL: a child process runs mergeTicket from the build, the
// user's pre-commit hook holds it mid-commit, and the test kills it there. The next mergeTicket
// (the restarted daemon's merge job) must finish the job, never leave a half-merged tree.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { mergeTicket } from '../lib/merge.js';
import { prepareWorkspace } from '../lib/workspace.js';
import { createTicket, getMergeRecord, getThread, moveTicket, requireTicket } from '../lib/tickets.js';
import type { Project } from '../lib/projects.js';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { repoRoot } from './helpers/daemon.js';
import { branches, commitFile, head, initRepo, mergeHeadExists, porcelain, sh } from './helpers/git.js';

let h: TestHome;
let p: Project;
let marker: string;
let go: string;
beforeEach(() => {
  h = makeTestHome();
  p = h.addProject('app', 'software-dev', 'ap');
  initRepo(p.path);
  marker = path.join(h.root, 'hook-entered');
  go = path.join(h.root, 'hook-go');
});

/** The user's pre-commit hook, installed once the agent's commits are made: it waits (at most 60 s) until the test lets it go. */
function installSlowHook(): void {
  const hook = path.join(p.path, '.git', 'hooks', 'pre-commit');
  fs.mkdirSync(path.dirname(hook), { recursive: true });
  fs.writeFileSync(hook, `#!/bin/sh\ntouch '${marker}'\ni=0\nwhile [ ! -f '${go}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n`, {
    mode: 0o755,
  });
}
afterEach(() => {
  fs.writeFileSync(go, '');
  h.cleanup();
});

async function finishedTicket(): Promise<number> {
  const t = createTicket(h.store, { project: p.id, title: 'Feature', column: 'coding-agent', createdBy: 'human' });
  const ws = await prepareWorkspace({ store: h.store, paths: h.paths, projectId: p.id, ticketId: t.id, parallelCoding: true });
  commitFile(ws.cwd, 'feature.txt', 'work\n', 'agent work');
  moveTicket(h.store, t.id, 'done', { actor: 'code-reviewer:r1' });
  installSlowHook();
  return t.id;
}

function startMergeProcess(ticketId: number, detached: boolean): ChildProcess {
  const dist = path.join(repoRoot, 'dist', 'lib');
  const script = `
    import { openDb } from '${dist}/db/connection.js';
    import { createStore } from '${dist}/store.js';
    import { pathsFor } from '${dist}/paths.js';
    import { mergeTicket } from '${dist}/merge.js';
    const paths = pathsFor(process.argv[1]);
    const result = await mergeTicket({ store: createStore(openDb(paths.db)), paths, ticketId: Number(process.argv[2]) });
    console.log(JSON.stringify(result));`;
  return spawn(process.execPath, ['--input-type=module', '-e', script, h.paths.home, String(ticketId)], {
    detached,
    stdio: 'ignore',
    env: process.env,
  });
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

test('the daemon and its git killed with SIGKILL mid-merge: the next run aborts the dead merge and merges cleanly', async () => {
  const id = await finishedTicket();
  const before = head(p.path);
  const child = startMergeProcess(id, true);
  await until('the merge to reach the commit hook', () => fs.existsSync(marker));
  expect(mergeHeadExists(p.path)).toBe(true);
  process.kill(-child.pid!, 'SIGKILL');
  await exited(child);
  // the crash left the repository mid-merge: the ticket's file staged, MERGE_HEAD present
  expect(mergeHeadExists(p.path)).toBe(true);
  expect(porcelain(p.path)).toContain('feature.txt');
  expect(head(p.path)).toBe(before);

  fs.writeFileSync(go, '');
  const r = await mergeTicket({ store: h.store, paths: h.paths, ticketId: id });
  expect(r).toMatchObject({ status: 'merged', files: ['feature.txt'] });
  expect(sh(p.path, ['rev-parse', `${r.commit}^1`]).trim()).toBe(before);
  expect(mergeHeadExists(p.path)).toBe(false);
  expect(porcelain(p.path)).toBe('');
  expect(branches(p.path)).toEqual(['main']);
  expect(getThread(h.db, id).filter((c) => c.type === 'merge')).toHaveLength(1);
});

/** A finished ticket whose merging process was killed with SIGKILL inside the commit hook, its `git commit` left running. */
async function killedInCommitHook(): Promise<{ id: number; before: string }> {
  const id = await finishedTicket();
  const before = head(p.path);
  const child = startMergeProcess(id, false);
  await until('the merge to reach the commit hook', () => fs.existsSync(marker));
  child.kill('SIGKILL');
  await exited(child);
  return { id, before };
}

test('the daemon killed with SIGKILL while git finishes the merge on its own: the next run records it and cleans up, without merging twice', async () => {
  const { id, before } = await killedInCommitHook();
  fs.writeFileSync(go, '');
  await until('the orphaned git to commit the merge', () => !mergeHeadExists(p.path) && head(p.path) !== before);
  await until('git to release index.lock', () => !fs.existsSync(path.join(p.path, '.git', 'index.lock')));
  const mergeCommit = head(p.path);
  expect(getMergeRecord(h.db, id).merged_at).toBeNull();

  const r = await mergeTicket({ store: h.store, paths: h.paths, ticketId: id });
  expect(r).toMatchObject({ status: 'already-merged', commit: mergeCommit, files: ['feature.txt'] });
  expect(head(p.path)).toBe(mergeCommit);
  expect(getMergeRecord(h.db, id).merge_commit).toBe(mergeCommit);
  expect(requireTicket(h.db, id)).toMatchObject({ column_id: 'done', worktree_path: null });
  expect(branches(p.path)).toEqual(['main']);
  expect(porcelain(p.path)).toBe('');
});

const raceTitle =
  'the daemon killed with SIGKILL mid-hook and its merge re-run while the orphaned git still commits: the merge is recorded, never sent to human';
test(raceTitle, async () => {
  const { id, before } = await killedInCommitHook();
  // the orphaned `git commit` still sits in the hook, holding index.lock, when the restarted daemon merges again
  fs.rmSync(marker);
  expect(mergeHeadExists(p.path)).toBe(true);
  const rerun = mergeTicket({ store: h.store, paths: h.paths, ticketId: id });
  // give a re-run that does not wait for the orphan the time to reach the hook itself (then both commits race)
  await until(
    'the re-run to reach the hook, or 3 s',
    (() => {
      const deadline = Date.now() + 3000;
      return () => fs.existsSync(marker) || Date.now() > deadline;
    })(),
  );
  fs.writeFileSync(go, '');
  const r = await rerun;
  const mergeCommit = head(p.path);
  expect(r).toMatchObject({ status: 'already-merged', commit: mergeCommit, files: ['feature.txt'] });
  expect(
    sh(p.path, ['rev-list', '--merges', `${before}..main`])
      .trim()
      .split('\n'),
  ).toEqual([mergeCommit]);
  expect(getMergeRecord(h.db, id).merge_commit).toBe(mergeCommit);
  expect(requireTicket(h.db, id)).toMatchObject({ column_id: 'done', worktree_path: null });
  const mergeComments = getThread(h.db, id)
    .filter((c) => c.type === 'merge')
    .map((c) => c.body);
  expect(mergeComments).toEqual([expect.stringMatching(new RegExp(`^Merged ticket/ap-1 into main as ${mergeCommit}`))]);
  expect(mergeHeadExists(p.path)).toBe(false);
  expect(porcelain(p.path)).toBe('');
  expect(branches(p.path)).toEqual(['main']);
});
