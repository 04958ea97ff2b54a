// Where an agent works on a ticket. With parallel coding on (the default; a project may turn it off
// for itself), each ticket of a git project gets branch `ticket/<key>` forked from the main branch, checked out in its own worktree under
// `<home>/worktrees/<abbr>/<key>`; every agent of the ticket (reviewers too) works there.
// Anything else (parallel coding off, a folder that is not a repository, a repository without a
// commit) works in the project folder itself; a ticket that already has its branch
// keeps working there even if parallel coding is turned off. Worktree changes run under the
// repository's lock, so two agents of one ticket starting at once share one worktree.
import { DONE } from './columns.js';
// A new worktree is set up once, outside the lock: the project's copy_files are copied in from
// the project folder, then its setup command runs there (lib/checks.ts setUpFolder); a failure is
// written on the ticket and the agent starts anyway (it may be able to fix or work around it).
// In a big repository a new ticket takes a ready spare worktree instead (lib/spares.ts): set up
// already, it becomes the ticket's by a rename and a branch switch.
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import path from 'node:path';
import {
  detectMainBranch,
  git,
  GitError,
  isRepo,
  listWorktrees,
  mainCandidates,
  pruneStaleWorktrees,
  repoState,
  samePath,
  statusLines,
  withRepoLock,
} from './git.js';
import { effectiveParallelCoding, getProject, IN_PLACE_MEANING, listProjects, NOT_A_REPO_MEANING, type Project } from './projects.js';
import { commandEnv, setUpFolder } from './checks.js';
import { isSpareName, pruneProjectSpares, type SparePool } from './spares.js';
import {
  addSystemComment,
  clearWorktree,
  findTicket,
  getMergeRecord,
  recordWorkspace,
  requireTicket,
  ticketsWithWorktrees,
  toView,
  type Ticket,
} from './tickets.js';
import type { Logger } from './logger.js';
import type { Paths } from './paths.js';
import type { Store } from './store.js';

export interface Workspace {
  cwd: string;
  branch: string | null;
  worktree: string | null;
}

export function ticketBranch(key: string): string {
  return `ticket/${key}`;
}

/** A repository with at least one commit: only there can a ticket get its own branch and worktree. */
export async function canBranch(dir: string): Promise<boolean> {
  return (await repoState(dir))?.commits === true;
}

/** Where a project's agents work, as the project page, the API and the CLI say it. */
export interface WorkspaceMode {
  /** the project's effective setting */
  parallel_coding: boolean;
  /** whether that is the project's own setting or the global agents.parallel_coding */
  from: 'project' | 'default';
  /** a repository with a commit: only then can tickets get branches */
  git: boolean;
  /** agents work in the project folder itself */
  in_folder: boolean;
  summary: string;
}

export async function workspaceMode(project: Pick<Project, 'path' | 'parallel_coding'>, globalDefault: boolean): Promise<WorkspaceMode> {
  const parallel = effectiveParallelCoding(project, globalDefault);
  const from = project.parallel_coding === null ? 'default' : 'project';
  const git = await canBranch(project.path);
  const summary = !git
    ? NOT_A_REPO_MEANING
    : parallel
      ? 'each ticket works on its own branch ticket/<key> in its own worktree, merged into the main branch when done; ' +
        'your checkout is left alone'
      : `parallel coding off: ${IN_PLACE_MEANING}, in the project folder itself, one agent that edits files at a time`;
  return { parallel_coding: parallel, from, git, in_folder: !git || !parallel, summary };
}

/**
 * Called before every spawn of an agent for the ticket; idempotent. `parallelCoding` is the
 * project's effective setting (lib/projects.ts effectiveParallelCoding).
 */
export async function prepareWorkspace(args: {
  store: Store;
  paths: Paths;
  projectId: number;
  ticketId: number;
  parallelCoding: boolean;
  /** the setup command's environment (lib/checks.ts commandEnv) */
  env?: NodeJS.ProcessEnv;
  /** ready worktrees a new ticket takes instead of a checkout (lib/spares.ts) */
  spares?: SparePool;
}): Promise<Workspace> {
  const { db } = args.store;
  const project = getProject(db, args.projectId);
  const inPlace: Workspace = { cwd: project.path, branch: null, worktree: null };
  // a ticket already on its own branch keeps it when parallel coding is turned off midway: its
  // work lives on that branch, and the merge worker brings it to main when the ticket is done
  const recorded = requireTicket(db, args.ticketId).branch;
  if (!args.parallelCoding && !recorded) return inPlace;
  if (!args.parallelCoding && !(await repoState(project.path, [recorded!]))?.tips.has(recorded!)) return inPlace;
  const made = await withRepoLock(project.path, async (): Promise<Workspace & { created: boolean; spareProblems?: string[] }> => {
    // re-read under the lock: a racing call may have just created the worktree
    const ticket = requireTicket(db, args.ticketId);
    const { key } = toView(ticket);
    const branch = ticket.branch ?? ticketBranch(key);
    const wanted = ticket.worktree_path ?? path.join(args.paths.worktrees, ticket.abbreviation, key);
    const repo = project.path;
    // one git process: a repository with a commit?, the ticket branch, main (each process costs the wake path milliseconds)
    const state = await repoState(repo, [branch, ...mainCandidates(project.main_branch)]);
    if (!state?.commits) return { ...inPlace, created: false };
    const existing = state.tips.has(branch);

    // a branch that does not exist is checked out nowhere: a new ticket needs no `git worktree list`
    const checkedOut = existing
      ? (await listWorktrees(repo)).find((w) => w.branch === `refs/heads/${branch}` && fs.existsSync(w.path))
      : undefined;
    if (checkedOut && samePath(checkedOut.path, repo)) {
      // agents never work in the user's own checkout, and git allows a branch in one place only
      throw new GitError(
        ['worktree', 'add', wanted, branch],
        null,
        `branch ${branch} is checked out in the project folder ${repo}; switch that folder to another branch so ${key}'s agents can work in their own worktree`,
        '',
      );
    }
    if (checkedOut) {
      if (checkedOut.path !== ticket.worktree_path || ticket.branch !== branch) {
        recordWorkspace(db, ticket.id, { branch, worktreePath: checkedOut.path, freshBranch: false });
      }
      return { cwd: checkedOut.path, branch, worktree: checkedOut.path, created: false };
    }

    const main = existing ? null : await detectMainBranch(repo, project.main_branch, state);
    // a new branch in a big repository: a ready spare becomes the worktree (a move and a branch switch)
    if (main && args.spares && !fs.existsSync(wanted)) {
      const spare = await args.spares.take(project, { main, tip: state.tips.get(main) ?? null, branch, wanted });
      if (spare) {
        recordWorkspace(db, ticket.id, { branch, worktreePath: wanted, freshBranch: true });
        return { cwd: wanted, branch, worktree: wanted, created: false, spareProblems: spare.problems };
      }
    }
    // the recorded folder vanished (or never existed): forget stale entries, then (re)create
    await pruneStaleWorktrees(repo);
    fs.mkdirSync(path.dirname(wanted), { recursive: true });
    if (main) await git(repo, ['worktree', 'add', '-b', branch, wanted, main]);
    else await git(repo, ['worktree', 'add', wanted, branch]);
    recordWorkspace(db, ticket.id, { branch, worktreePath: wanted, freshBranch: !existing });
    return { cwd: wanted, branch, worktree: wanted, created: true };
  });
  if (made.spareProblems) noteSetupProblems(args.store, args.ticketId, made.worktree!, made.spareProblems);
  if (made.created) {
    const env = args.env ?? commandEnv(null);
    await setUpWorktree(args.store, args.paths, getProject(db, args.projectId), args.ticketId, made.worktree!, env);
  }
  return { cwd: made.cwd, branch: made.branch, worktree: made.worktree };
}

/** Copies the project's copy_files into a new worktree and runs its setup command there; problems go on the ticket. */
async function setUpWorktree(
  store: Store,
  paths: Paths,
  project: Project,
  ticketId: number,
  worktree: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const { key } = toView(requireTicket(store.db, ticketId));
  noteSetupProblems(
    store,
    ticketId,
    worktree,
    await setUpFolder({ project, folder: worktree, env, logPath: path.join(paths.checks, `${key}-setup.log`) }),
  );
}

function noteSetupProblems(store: Store, ticketId: number, worktree: string, problems: string[]): void {
  if (problems.length === 0) return;
  addSystemComment(
    store.db,
    ticketId,
    'system',
    `Setting up the new worktree ${worktree} went wrong:\n${problems.map((p) => `- ${p}`).join('\n')}`,
  );
}

export type RemoveWorktreeResult = { removed: true } | { removed: false; reason: string; files?: string[] };

/**
 * Removes the ticket's worktree folder, never discarding work: a worktree with uncommitted or
 * untracked files is left in place and the caller reports it. Callers hold the repository lock.
 */
export async function removeTicketWorktree(store: Store, repo: string, ticket: Ticket): Promise<RemoveWorktreeResult> {
  const branchRef = ticket.branch ? `refs/heads/${ticket.branch}` : null;
  const entry = (await listWorktrees(repo)).find(
    (w) => (ticket.worktree_path !== null && samePath(w.path, ticket.worktree_path)) || (branchRef !== null && w.branch === branchRef),
  );
  if (!entry || !fs.existsSync(entry.path)) {
    await pruneStaleWorktrees(repo);
    if (ticket.worktree_path !== null) clearWorktree(store.db, ticket.id);
    return { removed: true };
  }
  if (samePath(entry.path, repo)) return { removed: false, reason: `${entry.path} is the project folder itself, not a ticket worktree` };
  const dirty = await statusLines(entry.path);
  if (dirty.length > 0) return { removed: false, reason: `the worktree ${entry.path} has uncommitted changes`, files: dirty };
  if (entry.locked) await git(repo, ['worktree', 'unlock', entry.path]);
  await git(repo, ['worktree', 'remove', entry.path]);
  clearWorktree(store.db, ticket.id);
  return { removed: true };
}

/**
 * On daemon start and on `dispatch worktrees prune`: `git worktree prune` in every registered git
 * project, then removes the worktrees of tickets that are done and merged, archived (or in an
 * archived project), or gone from the database. A worktree
 * with uncommitted files is kept and logged, never discarded.
 */
export async function pruneWorktrees(args: { store: Store; paths: Paths; logger?: Logger }): Promise<void> {
  const { store, paths, logger } = args;
  for (const project of listProjects(store.db).filter((p) => p.status !== 'unregistered' && p.abbreviation)) {
    try {
      if (!(await isRepo(project.path))) continue;
      await withRepoLock(project.path, () => pruneProject(store, paths, project, logger));
    } catch (err) {
      logger?.warn('worktree cleanup failed', { project: project.abbreviation, error: err instanceof Error ? err.message : String(err) });
    }
  }
}

async function pruneProject(store: Store, paths: Paths, project: Project, logger?: Logger): Promise<void> {
  const repo = project.path;
  await pruneStaleWorktrees(repo);
  const ours = path.join(paths.worktrees, project.abbreviation!);
  const candidates = new Map<string, Ticket | null>();
  for (const t of ticketsWithWorktrees(store.db, project.id)) candidates.set(t.worktree_path!, t);
  // folders under our layout that no ticket records: a deleted ticket, or a crash before recording
  // spares: half-made ones (a crash while making them), and all of an archived project's
  await pruneProjectSpares(repo, ours, project.status === 'archived');
  for (const wt of await listWorktrees(repo)) {
    if (isSpareName(path.basename(wt.path))) continue;
    if (!samePath(path.dirname(wt.path), ours) || [...candidates.keys()].some((p) => samePath(p, wt.path))) continue;
    const found = findTicket(store.db, path.basename(wt.path));
    const ticket = found && found.project_id === project.id ? found : undefined;
    candidates.set(wt.path, ticket ? { ...ticket, worktree_path: wt.path } : null);
  }
  for (const [folder, ticket] of candidates) {
    if (ticket && !finished(store, project, ticket)) continue;
    const result = ticket ? await removeTicketWorktree(store, repo, ticket) : await removeOrphanWorktree(repo, folder);
    if (!result.removed)
      logger?.warn("kept a finished ticket's worktree", { project: project.abbreviation, folder, reason: result.reason });
  }
}

/** A ticket whose worktree has served: merged, archived, or in an archived project (read-only for good). */
function finished(store: Store, project: Project, ticket: Ticket): boolean {
  if (ticket.archived_at !== null || project.status === 'archived') return true;
  return ticket.column_id === DONE && getMergeRecord(store.db, ticket.id).merged_at !== null;
}

async function removeOrphanWorktree(repo: string, folder: string): Promise<RemoveWorktreeResult> {
  try {
    const dirty = await statusLines(folder);
    if (dirty.length > 0) return { removed: false, reason: `the worktree of a deleted ticket has uncommitted changes`, files: dirty };
    await git(repo, ['worktree', 'remove', folder]);
    return { removed: true };
  } catch (err) {
    if (err instanceof GitError) return { removed: false, reason: err.message };
    throw err;
  }
}

export interface WorktreeInfo {
  project: string;
  ticket: string | null;
  column: string | null;
  path: string;
  branch: string | null;
  /** a ready (or being made) spare of the pool (lib/spares.ts), not a ticket's */
  spare: boolean;
  /** disk use of the folder (du), null when it could not be measured */
  bytes: number | null;
}

/** Disk use of a folder in bytes, from `du -sk` (which counts hard-linked files once). */
export function diskUse(folder: string): Promise<number | null> {
  return new Promise((resolve) => {
    execFile('du', ['-sk', folder], { timeout: 120_000 }, (err, stdout) => {
      const kb = Number(String(stdout).split(/\s/)[0]);
      resolve(err || !Number.isFinite(kb) ? null : kb * 1024);
    });
  });
}

/** The worktrees the daemon made (under `<home>/worktrees/<abbr>/`: tickets' and spares), per registered git project, with their disk use. */
export async function listTicketWorktrees(store: Store, paths: Paths, projectId?: number): Promise<WorktreeInfo[]> {
  const found: WorktreeInfo[] = [];
  const wanted = (p: Project) => p.abbreviation && p.status !== 'unregistered' && (projectId === undefined || p.id === projectId);
  for (const project of listProjects(store.db).filter(wanted)) {
    if (!(await isRepo(project.path))) continue;
    const ours = path.join(paths.worktrees, project.abbreviation!);
    for (const wt of await listWorktrees(project.path)) {
      if (!samePath(path.dirname(wt.path), ours) || !fs.existsSync(wt.path)) continue;
      const spare = isSpareName(path.basename(wt.path));
      const ticket = spare ? undefined : findTicket(store.db, path.basename(wt.path));
      const mine = ticket && ticket.project_id === project.id ? ticket : null;
      found.push({
        project: project.abbreviation!,
        ticket: mine ? toView(mine).key : null,
        column: mine ? mine.column_id : null,
        path: wt.path,
        branch: wt.branch?.replace(/^refs\/heads\//, '') ?? null,
        spare,
        bytes: await diskUse(wt.path),
      });
    }
  }
  return found;
}

/** A disk size for people: KB, MB or GB. */
export function formatBytes(n: number | null): string {
  if (n === null) return '?';
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}
