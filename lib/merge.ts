// Merging a finished ticket's branch into the project's main branch, and the branch diff.
// Invariants: the user's working tree is touched only when it is clean and on the main branch;
// the merge is a plain `git merge --no-ff` (never rebase, force, reset or stash); a failed merge
// is aborted and the repository checked to be exactly as before; every step checks git's state
// before acting, so a re-run after a crash at any point either does nothing or finishes the job.
// One merge at a time per repository (the repository lock in lib/git.ts).
import { HUMAN, DONE } from './columns.js';
// With a project check set, a ticket goes through the merge queue first (mergeChecked): main is
// merged into its branch in its own worktree, the check runs there, and only the tested commit
// lands on main, which then merges trivially. The project folder is never touched while it runs.
// A project with a merge-resolver column takes the same way (without a check), so that a conflict
// is left in the ticket's worktree for the resolver rather than in the project folder.
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
import { getAgentType } from './agentTypes.js';
import {
  CHECK_TAIL_LINES,
  commandEnv,
  COMMAND_NOT_FOUND,
  endCheckRun,
  recordCheckLanded,
  runShell,
  setCheckPid,
  startCheckRun,
  tailOfFile,
  type CheckRun,
  type CheckStatus,
} from './checks.js';
import { getColumns, getProject, type Project } from './projects.js';
import {
  addFinding,
  addSystemComment,
  getMergeRecord,
  LIMITS,
  moveTicket,
  recordMerge,
  requireTicket,
  toView,
  type Ticket,
} from './tickets.js';
import { prepareWorkspace, removeTicketWorktree } from './workspace.js';
import type { Logger } from './logger.js';
import type { Paths } from './paths.js';
import type { Store } from './store.js';

export type MergeOutcome = {
  status: 'merged' | 'already-merged' | 'no-branch' | 'conflict' | 'refused' | 'not-done' | 'check-failed';
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

/** The agent type that resolves a conflict between main and a ticket's branch, when the workflow has its column. */
export const RESOLVER_AGENT = 'merge-resolver';

/**
 * The whole merge of a ticket that reached `done`; safe to run again at any time. `checkEnv`: the
 * environment of the project's check and setup commands (lib/checks.ts commandEnv).
 */
export async function mergeTicket(args: {
  store: Store;
  paths: Paths;
  ticketId: number;
  logger?: Logger;
  checkEnv?: NodeJS.ProcessEnv;
}): Promise<MergeOutcome> {
  const { store, ticketId } = args;
  const ticket = requireTicket(store.db, ticketId);
  const key = toView(ticket).key;
  if (ticket.column_id !== DONE) return { status: 'not-done', detail: `${key} is in "${ticket.column_id}", not in done` };
  if (!ticket.branch) return { status: 'no-branch', detail: `${key} has no branch: its agents worked in the project folder` };
  const project = getProject(store.db, ticket.project_id);
  if (!(await isRepo(project.path))) {
    return refuse(
      store,
      ticketId,
      `Cannot merge ${ticket.branch}: ${project.path} is no longer a git repository. Restore the repository, then move ${key} back to done.`,
    );
  }
  // with a check, or a merge-resolver column to send conflicts to, main is first merged into the
  // branch in its worktree (where a resolver can work on a conflict), then the branch lands
  const resolver = getColumns(store.db, project.id).some((c) => c.agent_type_id === RESOLVER_AGENT);
  if (project.check_command || resolver) return mergeChecked({ ...args, project, command: project.check_command, key });
  return withRepoLock(project.path, () => mergeLocked({ ...args, repo: project.path, mainBranch: project.main_branch, key }));
}

/** Records the merge, and on the check run that tested it the commit that landed, in one transaction. */
function recordLanded(
  store: Store,
  ticketId: number,
  checkRunId: number | undefined,
  commit: string | null,
  comment: string,
  author: string,
): void {
  store.db
    .transaction(() => {
      recordMerge(store.db, ticketId, commit, comment, author);
      if (checkRunId !== undefined) recordCheckLanded(store.db, checkRunId, commit);
    })
    .immediate();
}

/**
 * Under the repository lock, before either way of merging: the ticket is still in done, no merge is
 * half-done in the repository (one the daemon left is aborted, a person's is refused), main exists,
 * and the branch has a tip (or was merged and deleted already). Returns what to merge, or the outcome.
 */
async function readyToMerge(args: {
  store: Store;
  ticketId: number;
  logger?: Logger;
  repo: string;
  key: string;
  mainBranch: string | null;
}): Promise<{ ticket: Ticket; branch: string; main: string; tip: string } | MergeOutcome> {
  const { store, ticketId, logger, repo, key } = args;
  // re-read under the lock: the ticket may have moved while an earlier merge held it
  const ticket = requireTicket(store.db, ticketId);
  if (ticket.column_id !== DONE) return { status: 'not-done', detail: `${key} is in "${ticket.column_id}", not in done` };
  const branch = ticket.branch!;

  // a merge the daemon left half-done MUST be aborted before anything else, once any git it left
  // running has ended (that git may still land the merge, which the ancestry check records)
  const stale = await abortStaleMerge(repo, { waitMs: MERGE_TIMEOUT_MS });
  if (stale.aborted) logger?.warn('aborted a stale merge left by an earlier crash', { repo, ticket: key });
  if (stale.foreign) {
    return refuse(
      store,
      ticketId,
      `Did not merge ${branch}: a merge that Dispatcher did not start is in progress in ${repo}. ` +
        `Finish it ("git commit") or abandon it ("git merge --abort") there, then move ${key} back to done.`,
    );
  }

  let main: string;
  try {
    main = await detectMainBranch(repo, args.mainBranch);
  } catch (err) {
    if (!(err instanceof GitError)) throw err;
    const fix = `Fix the project's main branch setting (or create the branch), then move ${key} back to done.`;
    return refuse(store, ticketId, `Did not merge ${branch}: ${err.stderr}. ${fix}`);
  }

  const tip = await branchTip(repo, branch);
  if (!tip) {
    if (getMergeRecord(store.db, ticketId).merged_at !== null)
      return { status: 'already-merged', detail: `${branch} was merged and deleted earlier` };
    return { status: 'no-branch', detail: `branch ${branch} of ${key} does not exist in ${repo}` };
  }
  return { ticket, branch, main, tip };
}

type LockedArgs = {
  store: Store;
  ticketId: number;
  logger?: Logger;
  repo: string;
  mainBranch: string | null;
  key: string;
  checkRunId?: number;
};

async function mergeLocked(args: LockedArgs): Promise<MergeOutcome> {
  const { store, ticketId, logger, repo, key } = args;
  const ready = await readyToMerge({ store, ticketId, logger, repo, key, mainBranch: args.mainBranch });
  if ('status' in ready) return ready;
  const { ticket, branch, main, tip } = ready;

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

  const folderProblem = await mainFolderProblem(repo, main, branch, key);
  if (folderProblem) return refuse(store, ticketId, folderProblem);

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
  recordLanded(
    store,
    ticketId,
    args.checkRunId,
    commit,
    `Merged ${branch} into ${main} as ${commit}.\n\nFiles changed (${files.length}):\n${fileList(files)}`,
    MERGE_AUTHOR,
  );
  logger?.info('merged ticket', { ticket: key, branch, commit });
  const cleanup = await cleanUp(store, repo, ticketId, branch, main);
  return { status: 'merged', detail: `merged ${branch} into ${main} as ${commit}${cleanup}`, commit, files };
}

/** Why the project folder cannot take a merge into main now (not on main, or changes of the user's), or null. */
async function mainFolderProblem(repo: string, main: string, branch: string, key: string): Promise<string | null> {
  const head = await currentBranch(repo);
  if (head !== main) {
    return (
      `Did not merge ${branch}: the project folder ${repo} is on ${head ? `branch "${head}"` : 'a detached HEAD'}, not on "${main}". ` +
      `Dispatcher merges only into a checked-out ${main} and never switches branches for you. Switch ${repo} to ${main} ("git switch ${main}"), then move ${key} back to done.`
    );
  }
  const dirty = await statusLines(repo, { untracked: false });
  if (dirty.length > 0) {
    return (
      `Did not merge ${branch}: the project folder ${repo} has uncommitted changes, and Dispatcher never merges over your work:\n${fileList(dirty)}\n\n` +
      `Commit or stash them, then move ${key} back to done.`
    );
  }
  return null;
}

/**
 * Every commit of the branch is already on main: a re-run after a crash that struck after `git
 * merge` (record the merge if it is not yet recorded), or a branch with no commits of its own.
 */
async function finishMerged(args: {
  store: Store;
  ticketId: number;
  checkRunId?: number;
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
  const recorded =
    record.merged_at !== null &&
    (record.merge_commit === null ? record.merged_at >= args.ticket.column_entered_at : await isAncestor(repo, tip, record.merge_commit));
  let commit = record.merge_commit ?? undefined;
  let files: string[] | undefined;
  if (!recorded) {
    commit = await findMergeCommit(repo, mainTip, tip);
    if (commit) {
      files = splitZ(await git(repo, ['diff', '--name-only', '-z', `${commit}^1`, commit]));
      recordLanded(
        store,
        ticketId,
        args.checkRunId,
        commit,
        `Merged ${branch} into ${main} as ${commit}.\n\nFiles changed (${files.length}):\n${fileList(files)}`,
        MERGE_AUTHOR,
      );
    } else {
      recordLanded(
        store,
        ticketId,
        args.checkRunId,
        null,
        `Nothing to merge: every commit of ${branch} is already on ${main}.`,
        MERGE_AUTHOR,
      );
    }
  }
  const cleanup = await cleanUp(store, repo, ticketId, branch, main);
  return {
    status: 'already-merged',
    detail: `${branch} is already merged into ${main}${cleanup}`,
    ...(commit ? { commit } : {}),
    ...(files ? { files } : {}),
  };
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
    addSystemComment(
      store.db,
      ticketId,
      'system',
      `Merged, but kept the worktree and branch ${branch}: ${why}\n\nDelete them yourself once you no longer need those files.`,
      MERGE_AUTHOR,
    );
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
  checkRunId?: number;
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
  return refuse(
    store,
    ticketId,
    `Merge of ${branch} into ${main} failed: ${reason}\n\n${state}\n\nFix the cause, then move ${key} back to done.`,
  );
}

// ---- the merge queue: test the exact tree that will land ----

/** How often main may move under a passing check before the job gives up and is retried. */
const MAX_CHECK_ROUNDS = 5;

const queueLocks = new Map<string, Promise<unknown>>();

/** One ticket at a time per repository goes through merge-check-land, in the order the jobs come. */
function withQueueLock<T>(repo: string, fn: () => Promise<T>): Promise<T> {
  const previous = queueLocks.get(repo) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => undefined);
  queueLocks.set(repo, tail);
  void tail.then(() => {
    if (queueLocks.get(repo) === tail) queueLocks.delete(repo);
  });
  return run;
}

interface Candidate {
  worktree: string;
  branch: string;
  main: string;
  mainTip: string;
  /** the commit the check runs on: the branch with main merged in */
  tested: string;
}

type CheckedArgs = {
  store: Store;
  paths: Paths;
  ticketId: number;
  logger?: Logger;
  checkEnv?: NodeJS.ProcessEnv;
  project: Project;
  command: string | null;
  key: string;
};
type CheckArgs = CheckedArgs & { command: string };

async function mergeChecked(args: CheckedArgs): Promise<MergeOutcome> {
  const { store, ticketId, project, key } = args;
  const repo = project.path;
  return withQueueLock(repo, async () => {
    for (let round = 1; round <= MAX_CHECK_ROUNDS; round++) {
      // a worktree that vanished is made again from the branch (and set up) before anything else
      const ticket = requireTicket(store.db, ticketId);
      if (ticket.column_id !== 'done') return { status: 'not-done', detail: `${key} is in "${ticket.column_id}", not in done` };
      const checkedOut = (await listWorktrees(repo)).some((w) => w.branch === `refs/heads/${ticket.branch}` && fs.existsSync(w.path));
      if (!checkedOut && (await branchTip(repo, ticket.branch!))) {
        try {
          await prepareWorkspace({ store, paths: args.paths, projectId: project.id, ticketId, parallelCoding: true, env: args.checkEnv });
        } catch (err) {
          if (!(err instanceof GitError)) throw err;
          return refuse(
            store,
            ticketId,
            `Did not test ${ticket.branch}: ${err.stderr.trim() || err.message}. Fix it, then move ${key} back to done.`,
          );
        }
      }
      const prepared = await withRepoLock(repo, () => prepareCandidate(args));
      if ('status' in prepared) return prepared;
      const command = args.command;
      const check = command ? await runTicketCheck({ ...args, command }, prepared) : null;
      if (check && check.status !== 'pass') return checkFailed({ ...args, command: command! }, check.run, check.status);
      const landed = await withRepoLock(repo, async (): Promise<MergeOutcome | null> => {
        const now = requireTicket(store.db, ticketId);
        if (now.column_id !== 'done') return { status: 'not-done', detail: `${key} left done while its check ran` };
        // the tested commit must be exactly what lands: if the branch or main moved meanwhile, test again
        const moved =
          (await branchTip(repo, prepared.branch)) !== prepared.tested || (await branchTip(repo, prepared.main)) !== prepared.mainTip;
        if (moved) return null;
        const checkRunId = check ? { checkRunId: check.run.id } : {};
        return mergeLocked({ store, ticketId, logger: args.logger, repo, mainBranch: project.main_branch, key, ...checkRunId });
      });
      if (landed) return landed;
      args.logger?.info('main or the branch moved while the check ran; testing again', { ticket: key, round });
    }
    throw new Error(`main kept moving while ${key}'s check ran (${MAX_CHECK_ROUNDS} rounds); the merge job will try again`);
  });
}

/**
 * Under the repository lock: checks the ticket and both folders, then merges main into the branch
 * in the ticket's worktree (`git merge --no-ff`, never a rebase). Returns what to test, or the
 * outcome when there is nothing to test (already merged, refused, a conflict).
 */
async function prepareCandidate(args: CheckedArgs): Promise<Candidate | MergeOutcome> {
  const { store, ticketId, logger, project, key } = args;
  const repo = project.path;
  const ready = await readyToMerge({ store, ticketId, logger, repo, key, mainBranch: project.main_branch });
  if ('status' in ready) return ready;
  const { ticket, branch, main, tip } = ready;
  const mainTip = (await branchTip(repo, main))!;
  if (await isAncestor(repo, tip, mainTip)) return finishMerged({ store, ticketId, repo, key, ticket, branch, main, tip, mainTip });
  // a check is no use if its result could not land: the project folder must be able to take the merge
  const folderProblem = await mainFolderProblem(repo, main, branch, key);
  if (folderProblem) return refuse(store, ticketId, folderProblem);
  const worktree = (await listWorktrees(repo)).find((w) => w.branch === `refs/heads/${branch}` && fs.existsSync(w.path))?.path;
  if (!worktree)
    return refuse(
      store,
      ticketId,
      `Did not test ${branch}: it is not checked out in a worktree of ${repo}. Move ${key} back to done to try again.`,
    );

  if (await mergeInProgress(worktree)) {
    // main merged into the branch earlier and not committed: a resolver that resolved but did not
    // commit, or a daemon killed mid-merge. Resolved, it is committed; unresolved, it is a conflict
    const conflicts = await conflictedFiles(worktree);
    if (conflicts.length > 0) return branchConflict(args, { worktree, branch, main, conflicts, leftInProgress: true });
    await git(worktree, ['commit', '--quiet', '--no-edit'], { timeoutMs: MERGE_TIMEOUT_MS });
  }
  const pending = await statusLines(worktree);
  if (pending.length > 0) {
    return refuse(
      store,
      ticketId,
      `Did not test ${branch}: its worktree ${worktree} has uncommitted changes:\n${fileList(pending)}\n\nCommit them on ${branch} (or discard them) in ${worktree}, then move ${key} back to done.`,
    );
  }
  const head = await headCommit(worktree);
  if (!(await isAncestor(worktree, mainTip, head))) {
    try {
      await git(worktree, ['merge', '--no-ff', '--no-edit', '-m', `Merge ${main} into ${branch}`, mainTip], {
        timeoutMs: MERGE_TIMEOUT_MS,
      });
    } catch (err) {
      const conflicts = await conflictedFiles(worktree).catch(() => [] as string[]);
      if (conflicts.length > 0) return branchConflict(args, { worktree, branch, main, conflicts, leftInProgress: true });
      if (await mergeInProgress(worktree)) await git(worktree, ['merge', '--abort']);
      const reason = err instanceof GitError ? err.stderr.trim() || err.message : String(err);
      return refuse(
        store,
        ticketId,
        `Could not merge ${main} into ${branch} in ${worktree} to test it: ${reason}\n\nFix the cause, then move ${key} back to done.`,
      );
    }
  }
  return { worktree, branch, main, mainTip, tested: await headCommit(worktree) };
}

/**
 * Main does not merge cleanly into the branch. With a merge-resolver column in the workflow the
 * ticket goes there with the merge left in progress in its worktree, for the resolver to finish;
 * otherwise the merge is aborted (the worktree is as it was) and the ticket goes to human.
 */
async function branchConflict(
  args: CheckedArgs,
  c: { worktree: string; branch: string; main: string; conflicts: string[]; leftInProgress: boolean },
): Promise<MergeOutcome> {
  const { store, ticketId, project, key } = args;
  const files = `${c.conflicts.length} file${c.conflicts.length === 1 ? '' : 's'}`;
  const resolver = getColumns(store.db, project.id).find((col) => col.agent_type_id === RESOLVER_AGENT);
  if (resolver) {
    const detail =
      `Merging ${c.main} into ${c.branch} stopped: ${files} conflict with changes already on ${c.main}:\n${fileList(c.conflicts)}\n\n` +
      `The merge is in progress in ${c.worktree}. Resolve the conflicts, commit, and move ${key} back to done; its check then runs on the result.`;
    store.db
      .transaction(() => {
        addSystemComment(store.db, ticketId, 'merge', detail, MERGE_AUTHOR);
        moveTicket(store, ticketId, resolver.column_id, { actor: MERGE_AUTHOR, expectFrom: 'done' });
      })
      .immediate();
    return { status: 'conflict', detail, files: c.conflicts };
  }
  if (await mergeInProgress(c.worktree)) await git(c.worktree, ['merge', '--abort']);
  const detail =
    `Merging ${c.main} into ${c.branch} to test it stopped: ${files} conflict with changes already on ${c.main}:\n${fileList(c.conflicts)}\n\n` +
    `The merge was aborted; ${c.worktree} is as it was. Next steps: in ${c.worktree}, run "git merge ${c.main}", resolve the conflicts and commit ` +
    `(or send the ticket back to its coding agent with these notes), then move ${key} back to done. ` +
    `A "${RESOLVER_AGENT}" column in the project's workflow would have an agent do this.`;
  sendToHuman(store, ticketId, detail);
  return { status: 'conflict', detail, files: c.conflicts };
}

/** Runs the project's check in the ticket's worktree (no lock held: the project folder is not involved), recorded as a check run. */
async function runTicketCheck(args: CheckArgs, c: Candidate): Promise<{ run: CheckRun; status: Exclude<CheckStatus, 'running'> }> {
  const { store, ticketId, project, key, command, logger } = args;
  const run = startCheckRun(store.db, {
    ticketId,
    projectId: project.id,
    command,
    cwd: c.worktree,
    outputDir: args.paths.checks,
    key,
    testedCommit: c.tested,
    mainCommit: c.mainTip,
  });
  logger?.info('check started', { ticket: key, command, commit: c.tested, attempt: run.attempt });
  const timeoutMs = project.check_timeout_minutes * 60_000;
  const result = await runShell({
    command,
    cwd: c.worktree,
    env: args.checkEnv ?? commandEnv(null),
    timeoutMs,
    outputPath: run.output_path,
    onStart: (pid) => setCheckPid(store.db, run.id, pid),
  });
  let status: Exclude<CheckStatus, 'running'>;
  let note: string | null = null;
  if (result.spawnError) [status, note] = ['error', `the check could not start: ${result.spawnError}`];
  else if (result.timedOut)
    [status, note] = [
      'timeout',
      `the check did not finish within ${project.check_timeout_minutes} minute${project.check_timeout_minutes === 1 ? '' : 's'} and was killed`,
    ];
  else if (result.code === 0) status = 'pass';
  else if (result.code === COMMAND_NOT_FOUND)
    [status, note] = ['error', `the check could not start: sh exited ${COMMAND_NOT_FOUND} (command not found)`];
  else [status, note] = ['fail', result.code === null ? 'the check was killed by a signal' : `the check exited ${result.code}`];
  endCheckRun(store.db, run.id, { status, exitCode: result.code, note });
  logger?.info('check ended', { ticket: key, status, exitCode: result.code });
  // whatever the check left in the worktree (build output, reports) goes: the tree stays the tested
  // commit. It was clean before the check (prepareCandidate), so nothing else is lost; ignored
  // files (node_modules, caches) stay for the next run
  await withRepoLock(project.path, async () => {
    await git(c.worktree, ['reset', '--quiet', '--hard', 'HEAD']);
    await git(c.worktree, ['clean', '-fdq']);
  });
  return { run: { ...run, status, exit_code: result.code, note }, status };
}

/**
 * The check did not pass. A check that could not start goes to human with the reason; a failure
 * or a timeout sends the ticket back to its coding column with a high finding quoting the output.
 */
function checkFailed(args: CheckArgs, run: CheckRun, status: Exclude<CheckStatus, 'running' | 'pass'>): MergeOutcome {
  const { store, ticketId, project, key, command } = args;
  const tail = tailOfFile(run.output_path, CHECK_TAIL_LINES);
  if (status === 'error') {
    const detail =
      `Did not merge: ${run.note ?? 'the check could not start'}.\n\nCommand: ${command}\nOutput (${run.output_path}):\n${tail}\n\n` +
      `Fix the project's check (dispatch projects set ${project.abbreviation} --check "…") or install what it needs, then move ${key} back to done.`;
    sendToHuman(store, ticketId, detail);
    return { status: 'refused', detail };
  }
  const coding = codingColumn(store, project.id);
  const title = `Check failed: ${command}`.slice(0, LIMITS.title);
  const body =
    `${status === 'timeout' ? `Timed out: ${run.note}.` : `${run.note ?? 'The check failed'}.`} Last ${CHECK_TAIL_LINES} lines of its output ` +
    `(all of it in ${run.output_path}):\n\n\`\`\`\n${tail}\n\`\`\``;
  store.db
    .transaction(() => {
      addFinding(store, ticketId, 'high', title, body.slice(0, LIMITS.comment), MERGE_AUTHOR);
      moveTicket(store, ticketId, coding, {
        actor: MERGE_AUTHOR,
        expectFrom: 'done',
        comment: `The check did not pass on ${run.tested_commit.slice(0, 12)} (${key}'s branch with main merged in); not merged.`,
      });
    })
    .immediate();
  return { status: 'check-failed', detail: `${command}: ${status}; ${key} went back to ${coding}` };
}

/** Where a failed check sends a ticket: the workflow's first column whose agent edits files (not the resolver), else human. */
function codingColumn(store: Store, projectId: number): string {
  for (const c of getColumns(store.db, projectId)) {
    if (!c.agent_type_id || c.agent_type_id === RESOLVER_AGENT) continue;
    try {
      if (getAgentType(store.db, c.agent_type_id).edits_working_tree) return c.column_id;
    } catch {
      // an agent type that was deleted
    }
  }
  return 'human';
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
  for (let i = 0; i < nameStatus.length;) {
    const status = nameStatus[i]!.charAt(0);
    const twoPaths = status === 'R' || status === 'C';
    files.push({ path: nameStatus[twoPaths ? i + 2 : i + 1]!, status });
    i += twoPaths ? 3 : 2;
  }
  const stat = await git(repo, [...diff, '--stat', base, head]);
  const { text: patch, truncated } = await gitCapped(repo, [...diff, base, head], DIFF_PATCH_LIMIT_BYTES);
  return { branch: ticket.branch, base, main, files, stat, patch, truncated };
}
