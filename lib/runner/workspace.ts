// Where a runner's agent works: one clone per project under the runner's folder
// (`<dir>/repos/<abbr>`, from the project's remote_url) and one worktree per ticket
// (`<dir>/worktrees/<abbr>/<key>`) on branch `ticket/<key>`. The remote is the truth between runs
// (the daemon pushes the ticket branch before it offers a run, and another runner may have run
// the ticket last), so every run starts from the remote's branch, or new from the remote's main
// branch, whatever an earlier run left in this machine's worktree. Git calls go through lib/git.ts,
// one at a time per clone.
import fs from 'node:fs';
import path from 'node:path';
import { git, GitError, gitOk, pruneStaleWorktrees, withRepoLock } from '../git.js';

export interface RunnerWorkspace {
  /** the project's clone */
  repo: string;
  /** the ticket's worktree, where the agent runs */
  cwd: string;
  branch: string;
  /** where the branch started: the remote's ticket branch, or its main branch for a new one */
  from: string;
}

const SAFE_NAME = /^[a-z0-9][a-z0-9._-]*$/i;

/** A name that may be one path segment (the daemon's, but a runner checks what it is sent). */
function segment(name: string, what: string): string {
  if (!SAFE_NAME.test(name) || name.includes('..')) throw new Error(`the daemon sent an unusable ${what}: ${JSON.stringify(name)}`);
  return name;
}

/** The remote's main branch: the project's, else what the remote's HEAD names, else main or master. */
async function remoteMain(repo: string, configured: string | null): Promise<string> {
  const has = (b: string) => gitOk(repo, ['show-ref', '--verify', '--quiet', `refs/remotes/origin/${b}`]);
  if (configured) {
    if (await has(configured)) return configured;
    throw new GitError(['show-ref', configured], null, `the remote has no branch "${configured}" (the project's main branch)`, '');
  }
  try {
    const head = (await git(repo, ['symbolic-ref', '--quiet', '--short', 'refs/remotes/origin/HEAD'])).trim();
    if (head.startsWith('origin/') && (await has(head.slice('origin/'.length)))) return head.slice('origin/'.length);
  } catch {
    // no origin/HEAD recorded
  }
  for (const b of ['main', 'master']) if (await has(b)) return b;
  throw new GitError(['show-ref', 'main'], null, 'the remote has no main branch (no "main" or "master")', '');
}

/**
 * Clones or fetches the project, then checks out the ticket's branch in its worktree: from the
 * remote branch when it exists, else new from the remote's main branch. Idempotent.
 */
export async function prepareRunnerWorkspace(
  dir: string,
  project: { abbreviation: string; remote_url: string; main_branch: string | null },
  ticketKey: string,
  branch: string,
): Promise<RunnerWorkspace> {
  const abbr = segment(project.abbreviation, 'project key');
  const key = segment(ticketKey, 'ticket key');
  const repo = path.join(dir, 'repos', abbr);
  const cwd = path.join(dir, 'worktrees', abbr, key);
  fs.mkdirSync(dir, { recursive: true });
  if ((await gitOk(dir, ['check-ref-format', `refs/heads/${branch}`])) === false) throw new Error(`not a branch name: ${branch}`);
  return withRepoLock(repo, async () => {
    if (!fs.existsSync(path.join(repo, '.git'))) {
      fs.rmSync(repo, { recursive: true, force: true }); // a clone cut short
      fs.mkdirSync(path.dirname(repo), { recursive: true });
      await git(dir, ['clone', '--quiet', '--no-checkout', project.remote_url, repo], { timeoutMs: 30 * 60_000 });
    } else {
      await git(repo, ['remote', 'set-url', 'origin', project.remote_url]);
    }
    await git(repo, ['fetch', '--quiet', '--prune', 'origin'], { timeoutMs: 30 * 60_000 });
    const remoteBranch = `refs/remotes/origin/${branch}`;
    const from = (await gitOk(repo, ['show-ref', '--verify', '--quiet', remoteBranch]))
      ? `origin/${branch}`
      : `origin/${await remoteMain(repo, project.main_branch)}`;
    await pruneStaleWorktrees(repo);
    if (fs.existsSync(path.join(cwd, '.git'))) {
      // this machine ran the ticket before: start over from the remote, leaving nothing of that run behind
      await git(cwd, ['checkout', '--quiet', '--force', '-B', branch, from]);
      await git(cwd, ['clean', '-fdq']);
    } else {
      fs.rmSync(cwd, { recursive: true, force: true });
      fs.mkdirSync(path.dirname(cwd), { recursive: true });
      await git(repo, ['worktree', 'add', '--quiet', '--force', '-B', branch, cwd, from]);
    }
    // not tracking origin/<main>: a plain `git push` in the worktree must not go there
    await gitOk(cwd, ['branch', '--quiet', '--unset-upstream']);
    return { repo, cwd, branch, from };
  });
}

/** Pushes the ticket branch to the remote (never forced: a branch that moved there meanwhile is refused). */
export async function pushTicketBranch(ws: Pick<RunnerWorkspace, 'repo' | 'branch'>): Promise<{ ok: boolean; error?: string }> {
  try {
    await withRepoLock(ws.repo, () =>
      git(ws.repo, ['push', '--quiet', '--porcelain', 'origin', `refs/heads/${ws.branch}:refs/heads/${ws.branch}`], {
        timeoutMs: 30 * 60_000,
      }),
    );
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error).message.slice(0, 2000) };
  }
}
