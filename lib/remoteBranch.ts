// A ticket's branch travelling through a project's remote when its agents run on runners
// (docs/RUNNERS.md): before a run is offered the daemon pushes its local `ticket/<key>` (so the
// runner starts from what the merge queue or a resolver left there); at the run's end it fetches
// the branch back, fast-forward only, into the worktree that has it checked out or else the bare
// branch ref, and records it on the ticket as a local run's workspace does, so the merge worker
// finds and merges it exactly as for a local run. Both run under the repository's lock.
import fs from 'node:fs';
import { branchTip, git, isAncestor, listWorktrees, withRepoLock } from './git.js';
import { recordBranch } from './tickets.js';
import type { Db } from './db/connection.js';

const REMOTE_TIMEOUT_MS = 120_000;

/** Pushes the local branch to the remote when it exists here; false when there is none to push. */
export async function pushTicketBranch(repo: string, remote: string, branch: string): Promise<boolean> {
  return withRepoLock(repo, async () => {
    if ((await branchTip(repo, branch)) === null) return false;
    await git(repo, ['push', '--quiet', '--', remote, `refs/heads/${branch}:refs/heads/${branch}`], { timeoutMs: REMOTE_TIMEOUT_MS });
    return true;
  });
}

export interface Fetched {
  /** the commit the branch is at now */
  tip: string;
  /** where it moved: a worktree's checkout, the bare ref, or nowhere (already there) */
  into: 'worktree' | 'branch' | 'unchanged';
}

/**
 * Fetches the remote's branch and fast-forwards the local one to it (throws a GitError when the
 * remote lacks it, or an Error when the local branch has commits the remote's lacks), then records
 * the branch on the ticket; a branch new here starts unmerged.
 */
export async function fetchTicketBranch(
  db: Db,
  args: { repo: string; remote: string; branch: string; ticketId: number },
): Promise<Fetched> {
  const { repo, remote, branch } = args;
  return withRepoLock(repo, async () => {
    await git(repo, ['fetch', '--quiet', '--no-tags', '--', remote, `refs/heads/${branch}`], { timeoutMs: REMOTE_TIMEOUT_MS });
    const tip = (await git(repo, ['rev-parse', '--verify', 'FETCH_HEAD^{commit}'])).trim();
    const local = await branchTip(repo, branch);
    let into: Fetched['into'] = 'unchanged';
    if (local !== tip) {
      if (local !== null && !(await isAncestor(repo, local, tip))) {
        throw new Error(
          `the local ${branch} has commits the remote's ${branch} lacks, so it was not fast-forwarded to ${tip.slice(0, 12)}`,
        );
      }
      const checkout = (await listWorktrees(repo)).find((w) => w.branch === `refs/heads/${branch}` && fs.existsSync(w.path));
      if (checkout) {
        await git(checkout.path, ['merge', '--ff-only', '--quiet', tip]);
        into = 'worktree';
      } else {
        await git(repo, ['update-ref', `refs/heads/${branch}`, tip, local ?? '']);
        into = 'branch';
      }
    }
    recordBranch(db, args.ticketId, branch, local === null);
    return { tip, into };
  });
}
