// Where an agent works on a ticket. With parallel coding on (the default; a project may turn it off
// for itself), each ticket of a git project gets branch `ticket/<key>` forked from the main branch, checked out in its own worktree under
// `<home>/worktrees/<abbr>/<key>`; every agent of the ticket (reviewers too) works there.
// Anything else (parallel coding off, a folder that is not a repository, a repository without a
// commit) works in the project folder itself; a ticket that already has its branch
// keeps working there even if parallel coding is turned off. Worktree changes run under the
// repository's lock, so two agents of one ticket starting at once share one worktree.
import { DONE } from './columns.js';
import fs from 'node:fs';
import path from 'node:path';
import {
  branchExists,
  detectMainBranch,
  git,
  GitError,
  hasCommits,
  isRepo,
  listWorktrees,
  pruneStaleWorktrees,
  statusLines,
  withRepoLock,
} from './git.js';
import { effectiveParallelCoding, getProject, IN_PLACE_MEANING, listProjects, NOT_A_REPO_MEANING, type Project } from './projects.js';
import { clearWorktree, findTicket, getMergeRecord, recordWorkspace, requireTicket, ticketsWithWorktrees, toView, type Ticket } from './tickets.js';
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

function samePath(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  return real(a) === real(b);
}

/** A repository with at least one commit: only there can a ticket get its own branch and worktree. */
export async function canBranch(dir: string): Promise<boolean> {
  return (await isRepo(dir)) && (await hasCommits(dir));
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
export async function prepareWorkspace(args: { store: Store; paths: Paths; projectId: number; ticketId: number; parallelCoding: boolean }): Promise<Workspace> {
  const { db } = args.store;
  const project = getProject(db, args.projectId);
  const inPlace: Workspace = { cwd: project.path, branch: null, worktree: null };
  // a ticket already on its own branch keeps it when parallel coding is turned off midway: its
  // work lives on that branch, and the merge worker brings it to main when the ticket is done
  const recorded = requireTicket(db, args.ticketId).branch;
  if (!args.parallelCoding && !recorded) return inPlace;
  if (!(await canBranch(project.path))) return inPlace;
  if (!args.parallelCoding && !(await branchExists(project.path, recorded!))) return inPlace;
  return withRepoLock(project.path, async () => {
    // re-read under the lock: a racing call may have just created the worktree
    const ticket = requireTicket(db, args.ticketId);
    const { key } = toView(ticket);
    const branch = ticket.branch ?? ticketBranch(key);
    const wanted = ticket.worktree_path ?? path.join(args.paths.worktrees, ticket.abbreviation, key);
    const repo = project.path;

    const checkedOut = (await listWorktrees(repo)).find((w) => w.branch === `refs/heads/${branch}` && fs.existsSync(w.path));
    if (checkedOut && samePath(checkedOut.path, repo)) {
      // agents never work in the user's own checkout, and git allows a branch in one place only
      throw new GitError(['worktree', 'add', wanted, branch], null, `branch ${branch} is checked out in the project folder ${repo}; switch that folder to another branch so ${key}'s agents can work in their own worktree`, '');
    }
    if (checkedOut) {
      if (checkedOut.path !== ticket.worktree_path || ticket.branch !== branch) {
        recordWorkspace(db, ticket.id, { branch, worktreePath: checkedOut.path, freshBranch: false });
      }
      return { cwd: checkedOut.path, branch, worktree: checkedOut.path };
    }

    // the recorded folder vanished (or never existed): forget stale entries, then (re)create
    await pruneStaleWorktrees(repo);
    fs.mkdirSync(path.dirname(wanted), { recursive: true });
    const existing = await branchExists(repo, branch);
    if (existing) {
      await git(repo, ['worktree', 'add', wanted, branch]);
    } else {
      const main = await detectMainBranch(repo, project.main_branch);
      await git(repo, ['worktree', 'add', '-b', branch, wanted, main]);
    }
    recordWorkspace(db, ticket.id, { branch, worktreePath: wanted, freshBranch: !existing });
    return { cwd: wanted, branch, worktree: wanted };
  });
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
 * On daemon start: `git worktree prune` in every registered git project, then removes the
 * worktrees of tickets that are done and merged, archived, or gone from the database. A worktree
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
  for (const wt of await listWorktrees(repo)) {
    if (!samePath(path.dirname(wt.path), ours) || [...candidates.keys()].some((p) => samePath(p, wt.path))) continue;
    const found = findTicket(store.db, path.basename(wt.path));
    const ticket = found && found.project_id === project.id ? found : undefined;
    candidates.set(wt.path, ticket ? { ...ticket, worktree_path: wt.path } : null);
  }
  for (const [folder, ticket] of candidates) {
    if (ticket && !finished(store, ticket)) continue;
    const result = ticket
      ? await removeTicketWorktree(store, repo, ticket)
      : await removeOrphanWorktree(repo, folder);
    if (!result.removed) logger?.warn('kept a finished ticket\'s worktree', { project: project.abbreviation, folder, reason: result.reason });
  }
}

function finished(store: Store, ticket: Ticket): boolean {
  if (ticket.archived_at !== null) return true;
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
