// A thin async wrapper around the git CLI: execFile (no shell), always `-C <dir>`, no prompts, no
// pager, a bounded timeout, and errors that carry git's own stderr. Repository inspection and the
// clean-up of state a crash can leave behind (a stale MERGE_HEAD, locked or vanished worktrees)
// live here too. Every operation that changes a repository runs under `withRepoLock`, so the
// daemon never runs two of its own git writes on one repository at once.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Variables that would point git at another repository than the `-C` folder. */
const REDIRECTING_ENV = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
  'GIT_PREFIX',
];

function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    GIT_EDITOR: 'true',
    GIT_MERGE_AUTOEDIT: 'no',
    LC_ALL: 'C',
  };
  for (const key of REDIRECTING_ENV) delete env[key];
  return env;
}

/** A git command that failed: the command line, its exit code and git's stderr. */
export class GitError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly code: number | string | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`git ${args.join(' ')} failed${code === null ? '' : ` (exit ${code})`}: ${stderr.trim() || stdout.trim() || 'no output'}`);
    this.name = 'GitError';
  }
}

export interface GitOptions {
  /**
   * Kills git after this long; merges run the user's hooks, so they get longer.
   * @defaultValue 120000
   */
  timeoutMs?: number;
}

const MAX_OUTPUT = 64 * 1024 * 1024;

/** Runs `git -C dir ...args` and resolves with stdout; rejects with a GitError on a non-zero exit. */
export function git(dir: string, args: string[], opts: GitOptions = {}): Promise<string> {
  const full = ['-C', dir, ...args];
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      full,
      { env: gitEnv(), timeout: opts.timeoutMs ?? 120_000, maxBuffer: MAX_OUTPUT, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
        const killed = (err as { killed?: boolean }).killed ? `killed after ${opts.timeoutMs ?? 120_000} ms. ` : '';
        reject(new GitError(args, code, killed + (stderr || err.message), stdout));
      },
    );
  });
}

/** Like `git`, but resolves false instead of throwing when git exits non-zero (a yes/no question). */
export async function gitOk(dir: string, args: string[]): Promise<boolean> {
  try {
    await git(dir, args);
    return true;
  } catch (err) {
    if (err instanceof GitError && typeof err.code === 'number') return false;
    throw err;
  }
}

/**
 * Runs git and keeps at most `maxBytes` of stdout, stopping git once the cap is reached, so a huge
 * diff never lands in memory. The kept text ends at a line boundary.
 */
export function gitCapped(
  dir: string,
  args: string[],
  maxBytes: number,
  opts: GitOptions = {},
): Promise<{ text: string; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-C', dir, ...args], { env: gitEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.stdout.on('data', (chunk: Buffer) => {
      if (truncated) return;
      chunks.push(chunk);
      size += chunk.length;
      if (size > maxBytes) {
        truncated = true;
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 16_384) stderr += d.toString('utf8');
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (!truncated && code !== 0) return reject(new GitError(args, code, stderr, ''));
      let buf = Buffer.concat(chunks);
      if (truncated) {
        buf = buf.subarray(0, maxBytes);
        const lastNewline = buf.lastIndexOf(0x0a);
        if (lastNewline >= 0) buf = buf.subarray(0, lastNewline + 1);
      }
      resolve({ text: buf.toString('utf8'), truncated });
    });
  });
}

const locks = new Map<string, Promise<unknown>>();

function lockKey(repo: string): string {
  try {
    return fs.realpathSync(repo);
  } catch {
    return path.resolve(repo);
  }
}

/**
 * Runs `fn` after every earlier holder of the same repository's lock has finished. One in-process
 * lock per repository: worktree creation, merges and pruning of one repository never interleave.
 */
export function withRepoLock<T>(repo: string, fn: () => Promise<T>): Promise<T> {
  const key = lockKey(repo);
  const previous = locks.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => undefined);
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return run;
}

/**
 * True when `dir` is the top level of a git working tree. A folder nested inside some other
 * repository (say, a projects root that is itself under git) is not a repository of its own.
 */
export async function isRepo(dir: string): Promise<boolean> {
  // the top level of a working tree always has a .git entry (a folder, or a file in a linked
  // worktree or submodule): without one, no git process is needed to say no (a fork of the daemon
  // costs milliseconds of CPU, BENCHMARKS.md)
  if (!fs.existsSync(path.join(dir, '.git'))) return false;
  let top: string;
  try {
    top = (await git(dir, ['rev-parse', '--show-toplevel'])).trim();
  } catch (err) {
    if (err instanceof GitError) return false;
    throw err;
  }
  return Boolean(top) && lockKey(top) === lockKey(dir);
}

/** True when the repository has at least one commit (HEAD resolves). */
export function hasCommits(repo: string): Promise<boolean> {
  return gitOk(repo, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']);
}

/** The commit a local branch points at, or null when there is no such branch. */
export async function branchTip(repo: string, branch: string): Promise<string | null> {
  try {
    return (await git(repo, ['rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`])).trim() || null;
  } catch (err) {
    if (err instanceof GitError && typeof err.code === 'number') return null;
    throw err;
  }
}

/** What one `git rev-parse` tells of a repository (repoState). */
export interface RepoState {
  /** HEAD resolves to a commit: the repository has at least one */
  commits: boolean;
  /** the branch HEAD is on; null when HEAD is detached or has no commit yet (then currentBranch knows) */
  headBranch: string | null;
  /** the commit of each asked-for local branch that exists */
  tips: Map<string, string>;
}

/** Separates the answers of repoState's one rev-parse: a flag that prints "true" or "false", never a commit or a ref. */
const ANSWER_END = '--is-inside-work-tree';

/**
 * What the path from a wake to an agent's start asks of a repository, in one git process (each one
 * costs that path milliseconds, tens of them on a busy machine): is `dir` the top level of a
 * repository (null when not, as isRepo), has it a commit, which branch HEAD is on, and where the
 * given local branches point. Each branch is asked for as `--branches=<glob>` with its last
 * character in brackets, a glob that matches that name only (branch names cannot hold glob
 * characters): a flag, so a missing branch prints nothing and rev-parse goes on, where a missing
 * revision would end its answers.
 */
export async function repoState(dir: string, branches: readonly string[] = []): Promise<RepoState | null> {
  if (!fs.existsSync(path.join(dir, '.git'))) return null; // as isRepo: no git process to say no
  const asked = [...new Set(branches)].filter((b) => b && !/[*?[\\]/.test(b));
  const args = ['rev-parse', '--revs-only', '--show-toplevel'];
  for (const b of asked) args.push(ANSWER_END, `--branches=${b.slice(0, -1)}[${b.slice(-1)}]`);
  args.push(ANSWER_END, '--symbolic-full-name', 'HEAD');
  let out: string;
  try {
    out = await git(dir, args);
  } catch (err) {
    if (err instanceof GitError) return null;
    throw err;
  }
  // the top level, then per branch a separator and its commit (or nothing), then a separator and HEAD's ref
  const lines = out.split('\n');
  if (lines[0] === undefined || !lines[0] || lockKey(lines[0]) !== lockKey(dir)) return null;
  const tips = new Map<string, string>();
  let at = 1;
  for (const b of asked) {
    at += 1; // the separator
    if (lines[at] && /^[0-9a-f]{40,64}$/.test(lines[at]!)) tips.set(b, lines[at++]!);
  }
  const head = lines[at + 1] ?? '';
  return { commits: head !== '', headBranch: head.startsWith('refs/heads/') ? head.slice('refs/heads/'.length) : null, tips };
}

/** The branches detectMainBranch looks for: a RepoState that asked for these can decide it without another git process. */
export function mainCandidates(configured?: string | null): string[] {
  return configured ? [configured] : ['main', 'master'];
}

/** The branch HEAD is on, or null when HEAD is detached. Works in a repository with no commits. */
export async function currentBranch(repo: string): Promise<string | null> {
  try {
    return (await git(repo, ['symbolic-ref', '--quiet', '--short', 'HEAD'])).trim() || null;
  } catch (err) {
    if (err instanceof GitError && err.code === 1) return null;
    throw err;
  }
}

/** The commit HEAD points at. */
export async function headCommit(repo: string): Promise<string> {
  return (await git(repo, ['rev-parse', '--verify', 'HEAD^{commit}'])).trim();
}

/**
 * The branch tickets fork from and merge into: the project's configured `main_branch` when set
 * (an error when that branch does not exist, rather than silently merging elsewhere), else `main`,
 * else `master`, else the branch HEAD is on. `known`: a repoState of `repo` that asked for
 * mainCandidates(configured), which spares a git process.
 */
export async function detectMainBranch(repo: string, configured?: string | null, known?: RepoState): Promise<string> {
  const state = known ?? (await repoState(repo, mainCandidates(configured)));
  if (!state) throw new GitError(['rev-parse', '--show-toplevel'], null, `${repo} is not a git repository`, '');
  if (configured) {
    if (state.tips.has(configured)) return configured;
    throw new GitError(
      ['show-ref', `refs/heads/${configured}`],
      null,
      `the project's main branch "${configured}" does not exist in ${repo}`,
      '',
    );
  }
  for (const candidate of ['main', 'master']) if (state.tips.has(candidate)) return candidate;
  const head = state.commits ? state.headBranch : await currentBranch(repo);
  if (head) return head;
  throw new GitError(
    ['symbolic-ref', 'HEAD'],
    null,
    `no main branch found in ${repo}: no "main" or "master" branch and HEAD is detached`,
    '',
  );
}

/** `git status --porcelain` lines (untracked files included unless told otherwise). */
export async function statusLines(repo: string, opts: { untracked?: boolean } = {}): Promise<string[]> {
  const out = await git(repo, ['status', '--porcelain', `--untracked-files=${opts.untracked === false ? 'no' : 'all'}`]);
  return out.split('\n').filter(Boolean);
}

/**
 * True when the working tree has no changes. With `untracked: false`, untracked files do not
 * count: git itself refuses a merge that would overwrite one.
 * @defaultValue untracked true
 */
export async function isClean(repo: string, opts: { untracked?: boolean } = {}): Promise<boolean> {
  return (await statusLines(repo, opts)).length === 0;
}

/** Absolute path of a file inside this working tree's git dir (MERGE_HEAD, MERGE_MSG, ...). */
export async function gitPath(repo: string, name: string): Promise<string> {
  const p = (await git(repo, ['rev-parse', '--git-path', name])).trim();
  return path.resolve(repo, p);
}

export async function mergeInProgress(repo: string): Promise<boolean> {
  return fs.existsSync(await gitPath(repo, 'MERGE_HEAD'));
}

/** Paths with unresolved conflicts in the working tree. */
export async function conflictedFiles(repo: string): Promise<string[]> {
  return splitZ(await git(repo, ['diff', '--name-only', '-z', '--diff-filter=U']));
}

export function splitZ(out: string): string[] {
  return out.split('\0').filter(Boolean);
}

export interface StaleMergeResult {
  /** a merge the daemon started (its message or head names a `ticket/` branch) was aborted */
  aborted: boolean;
  /** a merge is in progress that the daemon did not start: the user's, left alone */
  foreign: boolean;
}

/**
 * Pids of live git processes working in `repo` (git moves to the top of the working tree, so their
 * working directory is the repository's folder), read from /proc; null where there is no /proc
 * to read (macOS), so the caller cannot tell.
 */
export function gitProcessesIn(repo: string): number[] | null {
  if (!fs.existsSync('/proc/self/cwd')) return null;
  const target = lockKey(repo);
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== 'git') continue;
      if (fs.readlinkSync(`/proc/${name}/cwd`) === target) pids.push(Number(name));
    } catch {
      // the process ended meanwhile, or belongs to someone we may not inspect
    }
  }
  return pids;
}

/** Waits until no git process works in `repo` (see gitProcessesIn); a GitError when one still does after `waitMs`. */
async function waitForGitToExit(repo: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pids = gitProcessesIn(repo);
    if (!pids || pids.length === 0) return;
    if (Date.now() >= deadline) {
      const why = `git is still running in ${repo} (pid ${pids.join(', ')}) after ${Math.round(waitMs / 1000)} s; a commit hook may be stuck`;
      throw new GitError(['merge', '--abort'], null, why, '');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function mergeOwner(repo: string): Promise<'none' | 'ours' | 'foreign'> {
  const mergeHeadFile = await gitPath(repo, 'MERGE_HEAD');
  let mergeHeads: string[];
  try {
    mergeHeads = fs
      .readFileSync(mergeHeadFile, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return 'none';
  }
  let message = '';
  try {
    message = fs.readFileSync(await gitPath(repo, 'MERGE_MSG'), 'utf8');
  } catch {
    // a crash can leave MERGE_HEAD without MERGE_MSG
  }
  const ticketTips = new Set(
    splitZ(await git(repo, ['for-each-ref', '--format=%(objectname)%00', 'refs/heads/ticket/'])).map((s) => s.trim()),
  );
  return message.startsWith('Merge ticket/') || (mergeHeads.length > 0 && mergeHeads.every((h) => ticketTips.has(h))) ? 'ours' : 'foreign';
}

/**
 * Aborts a merge the daemon left behind when it was killed mid-merge. A merge is ours when
 * MERGE_MSG says "Merge ticket/..." or MERGE_HEAD is the tip of a `ticket/` branch; any other
 * merge in progress is the user's own, possibly with hand-resolved conflicts, and is never
 * aborted. A killed daemon's git can outlive it (a `git commit` still in the user's commit hook)
 * and may yet finish the merge: while such a git holds the repository (our merge pending, or
 * index.lock present), this waits up to `waitMs` for it, and never pulls its lock from under it.
 * Callers MUST hold the repository lock (`withRepoLock`).
 */
export async function abortStaleMerge(repo: string, opts: { waitMs?: number } = {}): Promise<StaleMergeResult> {
  const indexLock = `${await gitPath(repo, 'index')}.lock`;
  let owner = await mergeOwner(repo);
  if (owner === 'foreign' || (owner === 'none' && !fs.existsSync(indexLock))) return { aborted: false, foreign: owner === 'foreign' };
  await waitForGitToExit(repo, opts.waitMs ?? 120_000);
  owner = await mergeOwner(repo);
  if (owner !== 'ours') return { aborted: false, foreign: owner === 'foreign' };
  // no git runs here any more (callers hold the repository lock, so none of ours starts either):
  // an index.lock left now is the dead merge's, and would make the abort fail
  if (fs.existsSync(indexLock)) fs.rmSync(indexLock, { force: true });
  await git(repo, ['merge', '--abort']);
  return { aborted: true, foreign: false };
}

export interface WorktreeEntry {
  path: string;
  head: string | null;
  /** full ref, e.g. `refs/heads/ticket/pd-4`; null when detached or bare */
  branch: string | null;
  locked: boolean;
  prunable: boolean;
  bare: boolean;
}

export async function listWorktrees(repo: string): Promise<WorktreeEntry[]> {
  // line-based rather than -z, which needs git 2.36 (Ubuntu 22.04 ships 2.34)
  const out = await git(repo, ['worktree', 'list', '--porcelain']);
  const entries: WorktreeEntry[] = [];
  let current: WorktreeEntry | null = null;
  for (const field of out.split('\n')) {
    if (field === '') {
      if (current) entries.push(current);
      current = null;
      continue;
    }
    const space = field.indexOf(' ');
    const key = space < 0 ? field : field.slice(0, space);
    const value = space < 0 ? '' : field.slice(space + 1);
    if (key === 'worktree') current = { path: value, head: null, branch: null, locked: false, prunable: false, bare: false };
    else if (!current) continue;
    else if (key === 'HEAD') current.head = value;
    else if (key === 'branch') current.branch = value;
    else if (key === 'locked') current.locked = true;
    else if (key === 'prunable') current.prunable = true;
    else if (key === 'bare') current.bare = true;
  }
  if (current) entries.push(current);
  return entries;
}

/**
 * Forgets worktrees whose folders are gone, including ones left locked by a crash (a lock on a
 * folder that no longer exists protects nothing). Worktrees whose folders exist are never touched.
 */
export async function pruneStaleWorktrees(repo: string): Promise<void> {
  for (const wt of await listWorktrees(repo)) {
    if (wt.locked && !fs.existsSync(wt.path)) await git(repo, ['worktree', 'unlock', wt.path]);
  }
  await git(repo, ['worktree', 'prune']);
}

/** True when two paths name the same folder (symbolic links resolved; a missing path compared as given). */
export function samePath(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  return real(a) === real(b);
}

/** True when `ancestor` is reachable from `descendant` (`git merge-base --is-ancestor`). */
export function isAncestor(repo: string, ancestor: string, descendant: string): Promise<boolean> {
  return gitOk(repo, ['merge-base', '--is-ancestor', ancestor, descendant]);
}
