// Merging a finished ticket's branch into the project's main branch, and the branch diff.
// Invariants: the user's working tree is touched only when it is clean and on the main branch;
// the merge is a plain `git merge --no-ff` (never rebase, force, reset or stash); a failed merge
// is aborted and the repository checked to be exactly as before; every step checks git's state
// before acting, so a re-run after a crash at any point either does nothing or finishes the job.
// One merge at a time per repository (the repository lock in lib/git.ts).
import { HUMAN, DONE } from './columns.js';
import fs from 'node:fs';
import {
  abortStaleMerge,
  branchTip,
  conflictedFiles,
  currentBranch,
  detectMainBranch,
  git,
  gitCapped,
  GitError,
  headCommit,
  isAncestor,
  isRepo,
  listWorktrees,
  mergeInProgress,
  splitZ,
  statusLines,
  withRepoLock,
} from './git.js';
import { ConflictError } from './errors.js';
import { getProject } from './projects.js';
import { addSystemComment, getMergeRecord, moveTicket, recordMerge, requireTicket, toView, type Ticket } from './tickets.js';
import { removeTicketWorktree } from './workspace.js';
import type { Logger } from './logger.js';
import type { Paths } from './paths.js';
import type { Store } from './store.js';

export type MergeOutcome = {
  status: 'merged' | 'already-merged' | 'no-branch' | 'conflict' | 'refused' | 'not-done';
  detail: string;
  commit?: string;
  files?: string[];
};

/** The author of merge comments and of the move to `human`. */
export const MERGE_AUTHOR = 'merge';

/** Merges run the user's git hooks; a hung hook must not hold the repository forever. */
const MERGE_TIMEOUT_MS = 10 * 60_000;

/** How many file names a comment lists before summarising the rest. */
const LISTED_FILES = 50;

function fileList(files: string[]): string {
  const shown = files.slice(0, LISTED_FILES).map((f) => `- ${f.trim()}`);
  if (files.length > LISTED_FILES) shown.push(`- … and ${files.length - LISTED_FILES} more`);
  return shown.join('\n');
}

/**
 * Puts the ticket in front of the user: moves it from `done` to `human` (unless someone already
 * moved it elsewhere) and writes the `merge` comment last, so the inbox shows it as the reason.
 */
function sendToHuman(store: Store, ticketId: number, body: string): void {
  store.db
    .transaction(() => {
      const ticket = requireTicket(store.db, ticketId);
      if (ticket.column_id === DONE) moveTicket(store, ticketId, HUMAN, { actor: MERGE_AUTHOR, expectFrom: DONE });
      addSystemComment(store.db, ticketId, 'merge', body, MERGE_AUTHOR);
    })
    .immediate();
}

function refuse(store: Store, ticketId: number, detail: string): MergeOutcome {
  sendToHuman(store, ticketId, detail);
  return { status: 'refused', detail };
}

/** The whole merge of a ticket that reached `done`; safe to run again at any time. */
export async function mergeTicket(args: { store: Store; paths: Paths; ticketId: number; logger?: Logger }): Promise<MergeOutcome> {
  const { store, ticketId } = args;
  const ticket = requireTicket(store.db, ticketId);
  const key = toView(ticket).key;
  if (ticket.column_id !== DONE) return { status: 'not-done', detail: `${key} is in "${ticket.column_id}", not in done` };
  if (!ticket.branch) return { status: 'no-branch', detail: `${key} has no branch: its agents worked in the project folder` };
  const project = getProject(store.db, ticket.project_id);
  if (!(await isRepo(project.path))) {
    return refuse(store, ticketId, `Cannot merge ${ticket.branch}: ${project.path} is no longer a git repository. Restore the repository, then move ${key} back to done.`);
  }
  return withRepoLock(project.path, () => mergeLocked({ ...args, repo: project.path, mainBranch: project.main_branch, key }));
}

async function mergeLocked(args: { store: Store; ticketId: number; logger?: Logger; repo: string; mainBranch: string | null; key: string }): Promise<MergeOutcome> {
  const { store, ticketId, logger, repo, key } = args;
  // re-read under the lock: the ticket may have moved while an earlier merge held it
  const ticket = requireTicket(store.db, ticketId);
  if (ticket.column_id !== DONE) return { status: 'not-done', detail: `${key} is in "${ticket.column_id}", not in done` };
  const branch = ticket.branch!;

  // a merge the daemon left half-done MUST be aborted before anything else, once any git it left
  // running has ended (that git may still land the merge, which the ancestry check below records)
  const stale = await abortStaleMerge(repo, { waitMs: MERGE_TIMEOUT_MS });
  if (stale.aborted) logger?.warn('aborted a stale merge left by an earlier crash', { repo, ticket: key });
  if (stale.foreign) {
    return refuse(
      store,
      ticketId,
      `Did not merge ${branch}: a merge that Dispatcher did not start is in progress in ${repo}. Finish it ("git commit") or abandon it ("git merge --abort") there, then move ${key} back to done.`,
    );
  }

  let main: string;
  try {
    main = await detectMainBranch(repo, args.mainBranch);
  } catch (err) {
    if (!(err instanceof GitError)) throw err;
    return refuse(store, ticketId, `Did not merge ${branch}: ${err.stderr}. Fix the project's main branch setting (or create the branch), then move ${key} back to done.`);
  }

  const tip = await branchTip(repo, branch);
  if (!tip) {
    if (getMergeRecord(store.db, ticketId).merged_at !== null) return { status: 'already-merged', detail: `${branch} was merged and deleted earlier` };
    return { status: 'no-branch', detail: `branch ${branch} of ${key} does not exist in ${repo}` };
  }

  const worktree = (await listWorktrees(repo)).find((w) => w.branch === `refs/heads/${branch}` && fs.existsSync(w.path));
  if (worktree) {
    const pending = await statusLines(worktree.path);
    if (pending.length > 0) {
      return refuse(
        store,
        ticketId,
        `Did not merge ${branch}: its worktree ${worktree.path} has uncommitted changes, which a merge of the branch would leave behind:\n${fileList(pending)}\n\n` +
          `Commit them on ${branch} (or discard them) in ${worktree.path}, then move ${key} back to done.`,
      );
    }
  }

  const mainTip = (await branchTip(repo, main))!;
  if (await isAncestor(repo, tip, mainTip)) return finishMerged({ ...args, ticket, branch, main, tip, mainTip });

  const head = await currentBranch(repo);
  if (head !== main) {
    return refuse(
      store,
      ticketId,
      `Did not merge ${branch}: the project folder ${repo} is on ${head ? `branch "${head}"` : 'a detached HEAD'}, not on "${main}". ` +
        `Dispatcher merges only into a checked-out ${main} and never switches branches for you. Switch ${repo} to ${main} ("git switch ${main}"), then move ${key} back to done.`,
    );
  }
  const dirty = await statusLines(repo, { untracked: false });
  if (dirty.length > 0) {
    return refuse(
      store,
      ticketId,
      `Did not merge ${branch}: the project folder ${repo} has uncommitted changes, and Dispatcher never merges over your work:\n${fileList(dirty)}\n\n` +
        `Commit or stash them, then move ${key} back to done.`,
    );
  }

  const before = { head: await headCommit(repo), status: await statusLines(repo) };
  const message = `Merge ${branch}: ${ticket.title}`;
  try {
    // two steps, so that while the merge commit is being made (the user's commit hooks run then)
    // MERGE_HEAD marks the merge as ours and a crash leaves a merge the next run recognises and
    // aborts. A one-step merge runs its pre-merge-commit hook on an updated tree with no MERGE_HEAD.
    await git(repo, ['merge', '--no-ff', '--no-commit', '-m', message, branch], { timeoutMs: MERGE_TIMEOUT_MS });
    await git(repo, ['commit', '--quiet', '-m', message], { timeoutMs: MERGE_TIMEOUT_MS });
  } catch (err) {
    return recoverFailedMerge({ ...args, ticket, branch, main, tip, before, worktreePath: worktree?.path ?? null, error: err });
  }
  const commit = await headCommit(repo);
  const files = splitZ(await git(repo, ['diff', '--name-only', '-z', `${commit}^1`, commit]));
  recordMerge(store.db, ticketId, commit, `Merged ${branch} into ${main} as ${commit}.\n\nFiles changed (${files.length}):\n${fileList(files)}`, MERGE_AUTHOR);
  logger?.info('merged ticket', { ticket: key, branch, commit });
  const cleanup = await cleanUp(store, repo, ticketId, branch, main);
  return { status: 'merged', detail: `merged ${branch} into ${main} as ${commit}${cleanup}`, commit, files };
}

/**
 * Every commit of the branch is already on main: a re-run after a crash that struck after `git
 * merge` (record the merge if it is not yet recorded), or a branch with no commits of its own.
 */
async function finishMerged(args: {
  store: Store;
  ticketId: number;
  repo: string;
  key: string;
  ticket: Ticket;
  branch: string;
  main: string;
  tip: string;
  mainTip: string;
}): Promise<MergeOutcome> {
  const { store, ticketId, repo, branch, main, tip, mainTip } = args;
  const record = getMergeRecord(store.db, ticketId);
  const recorded = record.merged_at !== null && (record.merge_commit === null ? record.merged_at >= args.ticket.column_entered_at : await isAncestor(repo, tip, record.merge_commit));
  let commit = record.merge_commit ?? undefined;
  let files: string[] | undefined;
  if (!recorded) {
    commit = await findMergeCommit(repo, mainTip, tip);
    if (commit) {
      files = splitZ(await git(repo, ['diff', '--name-only', '-z', `${commit}^1`, commit]));
      recordMerge(store.db, ticketId, commit, `Merged ${branch} into ${main} as ${commit}.\n\nFiles changed (${files.length}):\n${fileList(files)}`, MERGE_AUTHOR);
    } else {
      recordMerge(store.db, ticketId, null, `Nothing to merge: every commit of ${branch} is already on ${main}.`, MERGE_AUTHOR);
    }
  }
  const cleanup = await cleanUp(store, repo, ticketId, branch, main);
  return { status: 'already-merged', detail: `${branch} is already merged into ${main}${cleanup}`, ...(commit ? { commit } : {}), ...(files ? { files } : {}) };
}

/** The merge commit on main's first-parent line that brought `tip` in, if there is one. */
async function findMergeCommit(repo: string, mainTip: string, tip: string): Promise<string | undefined> {
  const out = await git(repo, ['rev-list', '--first-parent', '--merges', '--parents', `${tip}..${mainTip}`]);
  for (const line of out.split('\n').filter(Boolean)) {
    const [commit, , ...merged] = line.split(' ');
    if (merged.includes(tip)) return commit;
  }
  return undefined;
}

/**
 * After a merge is recorded: removes the worktree (kept when it holds uncommitted files), then
 * deletes the branch only when it is merged. `update-ref -d <ref> <old>` deletes only if the
 * branch still points at the commit just checked, so a commit landing in between is never lost.
 */
async function cleanUp(store: Store, repo: string, ticketId: number, branch: string, main: string): Promise<string> {
  const removal = await removeTicketWorktree(store, repo, requireTicket(store.db, ticketId));
  if (!removal.removed) {
    const why = `${removal.reason}${removal.files ? `:\n${fileList(removal.files)}` : ''}`;
    addSystemComment(store.db, ticketId, 'system', `Merged, but kept the worktree and branch ${branch}: ${why}\n\nDelete them yourself once you no longer need those files.`, MERGE_AUTHOR);
    return `; kept the worktree and branch: ${removal.reason}`;
  }
  const tip = await branchTip(repo, branch);
  if (!tip) return '';
  const mainTip = await branchTip(repo, main);
  if (!mainTip || !(await isAncestor(repo, tip, mainTip))) return `; kept ${branch}: it has commits that are not on ${main}`;
  await git(repo, ['update-ref', '-d', `refs/heads/${branch}`, tip]);
  return `; removed the worktree and deleted ${branch}`;
}

/**
 * `git merge` failed. Whatever happened, a merge left in progress MUST be aborted, and the
 * repository checked against its state before the merge; then the user is told why and what next.
 * One failure is no failure at all: another git finished this very merge meanwhile (a killed
 * daemon's `git commit` that outlived it, where no /proc shows it), so ours found its MERGE_HEAD
 * gone. The branch is then on main, and the merge is recorded like any other.
 */
async function recoverFailedMerge(args: {
  store: Store;
  ticketId: number;
  logger?: Logger;
  repo: string;
  key: string;
  ticket: Ticket;
  branch: string;
  main: string;
  tip: string;
  before: { head: string; status: string[] };
  worktreePath: string | null;
  error: unknown;
}): Promise<MergeOutcome> {
  const { store, ticketId, logger, repo, key, branch, main, before } = args;
  const conflicts = await conflictedFiles(repo).catch(() => [] as string[]);
  if (await mergeInProgress(repo)) await git(repo, ['merge', '--abort']);
  const mainTip = await branchTip(repo, main);
  if (conflicts.length === 0 && mainTip && mainTip !== before.head && (await isAncestor(repo, args.tip, mainTip))) {
    const error = String(args.error);
    logger?.warn('git reported the merge failed, but the branch is on main: another git finished it', { repo, ticket: key, error });
    return finishMerged({ ...args, mainTip });
  }
  const after = { head: await headCommit(repo), status: await statusLines(repo), merging: await mergeInProgress(repo) };
  const intact = after.head === before.head && !after.merging && after.status.join('\n') === before.status.join('\n');
  const state = intact
    ? `The merge was aborted; ${repo} is exactly as it was before (${main} at ${before.head.slice(0, 12)}, no changes left behind).`
    : `WARNING: after aborting, ${repo} is not as it was before the merge (HEAD ${after.head.slice(0, 12)}, was ${before.head.slice(0, 12)}; ` +
      `${after.merging ? 'a merge is still in progress; ' : ''}status:\n${fileList(after.status)}\n). Check it by hand before anything else.`;
  if (!intact) logger?.error('repository not restored after a failed merge', { repo, ticket: key, before, after });

  if (conflicts.length > 0) {
    const where = args.worktreePath ? `in its worktree ${args.worktreePath}` : `in a checkout of ${branch}`;
    const detail =
      `Merge of ${branch} into ${main} stopped: ${conflicts.length} file${conflicts.length === 1 ? '' : 's'} conflict with changes already on ${main}:\n${fileList(conflicts)}\n\n${state}\n\n` +
      `Next steps: on branch ${branch} ${where}, run "git merge ${main}", resolve the conflicts and commit (or send the ticket back to its coding agent with these notes). ` +
      `Then move ${key} back to done and Dispatcher will merge it again.`;
    sendToHuman(store, ticketId, detail);
    return { status: 'conflict', detail, files: conflicts };
  }
  const reason = args.error instanceof GitError ? args.error.stderr.trim() || args.error.message : String(args.error);
  return refuse(store, ticketId, `Merge of ${branch} into ${main} failed: ${reason}\n\n${state}\n\nFix the cause, then move ${key} back to done.`);
}

/** Patches larger than this are cut at a line boundary and marked `truncated`. */
export const DIFF_PATCH_LIMIT_BYTES = 1024 * 1024;

export interface TicketDiff {
  branch: string;
  /** the merge-base commit the branch is compared against */
  base: string;
  /** the main branch name */
  main: string;
  /** git's status letter per file: A added, M modified, D deleted, R renamed, C copied, T type changed */
  files: { path: string; status: string }[];
  stat: string;
  patch: string;
  truncated: boolean;
}

/**
 * The ticket's branch diff against the main branch (merge-base...branch). After the branch was
 * merged and deleted, the recorded merge commit gives the same diff. Null when there is none.
 */
export async function ticketDiff(args: { store: Store; ticketId: number }): Promise<TicketDiff | null> {
  const { db } = args.store;
  const ticket = requireTicket(db, args.ticketId);
  if (!ticket.branch) return null;
  const project = getProject(db, ticket.project_id);
  const repo = project.path;
  if (!(await isRepo(repo))) return null;
  let main: string;
  try {
    main = await detectMainBranch(repo, project.main_branch);
  } catch (err) {
    if (err instanceof GitError) throw new ConflictError(err.stderr);
    throw err;
  }
  let head = await branchTip(repo, ticket.branch);
  let base: string;
  try {
    if (head) {
      base = (await git(repo, ['merge-base', main, head])).trim();
    } else {
      const { merge_commit: merge } = getMergeRecord(db, ticket.id);
      if (!merge) return null;
      head = (await git(repo, ['rev-parse', '--verify', `${merge}^2`])).trim();
      base = (await git(repo, ['merge-base', `${merge}^1`, head])).trim();
    }
  } catch (err) {
    // unrelated histories, or a recorded merge commit that is gone
    if (err instanceof GitError) return null;
    throw err;
  }
  const diff = ['-c', 'core.quotePath=false', 'diff', '--no-color', '--no-ext-diff'];
  const nameStatus = splitZ(await git(repo, [...diff, '--name-status', '-z', base, head]));
  const files: { path: string; status: string }[] = [];
  for (let i = 0; i < nameStatus.length; ) {
    const status = nameStatus[i]!.charAt(0);
    const twoPaths = status === 'R' || status === 'C';
    files.push({ path: nameStatus[twoPaths ? i + 2 : i + 1]!, status });
    i += twoPaths ? 3 : 2;
  }
  const stat = await git(repo, [...diff, '--stat', base, head]);
  const { text: patch, truncated } = await gitCapped(repo, [...diff, base, head], DIFF_PATCH_LIMIT_BYTES);
  return { branch: ticket.branch, base, main, files, stat, patch, truncated };
}
