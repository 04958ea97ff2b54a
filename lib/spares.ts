// Spare worktrees: checking out a big repository takes seconds (a 20,000-file one about 4 s), which
// a new ticket's first run would wait for. So each git project whose main branch has at least
// SPARE_MIN_FILES files keeps `worktrees.spare` ready worktrees in `<home>/worktrees/<abbr>/.spare-<n>`,
// detached at main's head, with copy_files copied and the setup command run. A new ticket takes
// one with `git worktree move` to its own folder and makes branch `ticket/<key>` there at main's
// head, HEAD on it: a rename and a branch switch, no checkout. The pool is refilled in the background, never on the wake path:
// at start, after a spare is taken, and every SPARE_CHECK_MS, which also brings spares to main's new
// head (a checkout of the few changed files, then setup again) and removes the spares of projects
// that no longer want any (archived, parallel coding off, `worktrees.spare` lowered).
// A spare is ready only once its marker file `.spare-<n>.ready` (main's commit and the setup it got)
// is written, last; a spare folder without one that this process is not making is a leftover of a
// crash and is removed. Taking or refreshing a spare first deletes its marker, under the repository lock.
import fs from 'node:fs';
import path from 'node:path';
import {
  branchTip,
  detectMainBranch,
  git,
  listWorktrees,
  mainCandidates,
  pruneStaleWorktrees,
  repoState,
  samePath,
  withRepoLock,
} from './git.js';
import { commandEnv, setUpFolder } from './checks.js';
import { effectiveParallelCoding, getProject, listProjects, type Project } from './projects.js';
import type { ConfigStore } from './config.js';
import type { Logger } from './logger.js';
import type { Paths } from './paths.js';
import type { Store } from './store.js';

export const SPARE_PREFIX = '.spare-';
/**
 * Below this many files a checkout takes well under a second (about 0.2 ms a file here), so a
 * spare would buy little and cost disk and setup runs. Counted once per main commit with
 * `git ls-tree -r` (main's own tree, whatever the project folder has checked out).
 */
export const SPARE_MIN_FILES = 2000;
/** How often the pool looks at every project (main moved, a project archived, the setting changed). */
const SPARE_CHECK_MS = 15_000;
const READY = '.ready';
/** How long after a spare was taken the pool makes the next one. */
const REFILL_DELAY_MS = 2_000;

/** Spare folders this process is making or refreshing now: never cleaned up as leftovers. */
const making = new Set<string>();

/** A folder name in `<home>/worktrees/<abbr>/` that belongs to the pool, not to a ticket. */
export function isSpareName(name: string): boolean {
  return name.startsWith(SPARE_PREFIX);
}

interface ReadyMark {
  /** main's commit the spare is checked out at */
  head: string;
  /** the setup it got (setUpPrint) */
  setup: string;
  /** what went wrong setting it up, written on the ticket that takes it */
  problems: string[];
}

const setUpPrint = (p: Project): string => JSON.stringify([p.setup_command, p.copy_files]);
const markFile = (dir: string): string => dir + READY;

function readMark(dir: string): ReadyMark | null {
  try {
    return JSON.parse(fs.readFileSync(markFile(dir), 'utf8')) as ReadyMark;
  } catch {
    return null;
  }
}

function writeMark(dir: string, mark: ReadyMark): void {
  const tmp = `${markFile(dir)}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(mark));
  fs.renameSync(tmp, markFile(dir));
}

/** The spare folders of a project: registered with git, or only on disk (a crash before git knew them). */
async function spareFolders(repo: string, ours: string): Promise<string[]> {
  const found = new Set<string>();
  for (const wt of await listWorktrees(repo)) {
    if (isSpareName(path.basename(wt.path)) && samePath(path.dirname(wt.path), ours)) found.add(path.join(ours, path.basename(wt.path)));
  }
  let names: string[] = [];
  try {
    names = fs.readdirSync(ours);
  } catch {}
  for (const name of names) {
    if (isSpareName(name) && !name.endsWith(READY) && !name.endsWith(`${READY}.tmp`)) found.add(path.join(ours, name));
  }
  return [...found].sort();
}

/** A linked worktree's own git dir (where its HEAD is), from the `gitdir:` line of its `.git` file. */
function spareGitDir(dir: string): string {
  const line = /^gitdir: (.+)$/m.exec(fs.readFileSync(path.join(dir, '.git'), 'utf8'));
  if (!line) throw new Error(`${dir}/.git names no git dir`);
  return path.resolve(dir, line[1]!.trim());
}

/** Removes a spare whatever is in it (only the daemon writes there). Callers hold the repository lock. */
async function removeSpare(repo: string, dir: string): Promise<void> {
  fs.rmSync(markFile(dir), { force: true });
  try {
    // twice --force: also a worktree git left locked while it was being added when the daemon died
    await git(repo, ['worktree', 'remove', '--force', '--force', dir]);
  } catch {}
  fs.rmSync(dir, { recursive: true, force: true });
  await pruneStaleWorktrees(repo);
}

/**
 * Removes a project's half-made spares (no marker, not being made now), or all of them with `all`.
 * Callers hold the repository lock. Returns the spare folders left.
 */
export async function pruneProjectSpares(repo: string, ours: string, all: boolean): Promise<string[]> {
  const left: string[] = [];
  for (const dir of await spareFolders(repo, ours)) {
    if (making.has(dir) || (!all && readMark(dir))) left.push(dir);
    else await removeSpare(repo, dir);
  }
  let names: string[] = [];
  try {
    names = fs.readdirSync(ours);
  } catch {}
  // a marker whose folder is gone
  for (const name of names) {
    if (!isSpareName(name) || !name.endsWith(READY)) continue;
    const dir = path.join(ours, name.slice(0, -READY.length));
    if (all || !fs.existsSync(dir)) fs.rmSync(path.join(ours, name), { force: true });
  }
  return left;
}

/**
 * True when a project's pool is as wanted, read from its folder alone (no git process, no lock):
 * exactly `count` spares, each ready at `tip` with the project's setup, and nothing half-made. The
 * pool looks at every project every few seconds, and a wake must not wait behind that look.
 */
function settled(project: Project, ours: string, want: { count: number; tip: string }): boolean {
  let names: string[];
  try {
    names = fs.readdirSync(ours).filter((n) => isSpareName(n) && !n.endsWith(`${READY}.tmp`));
  } catch {
    return want.count === 0;
  }
  const folders = names.filter((n) => !n.endsWith(READY));
  if (folders.length !== want.count || names.length !== 2 * folders.length) return false;
  return folders.every((n) => {
    const dir = path.join(ours, n);
    const mark = readMark(dir);
    return !making.has(dir) && mark?.head === want.tip && mark.setup === setUpPrint(project);
  });
}

export interface SparePool {
  start(): void;
  stop(opts?: { waitMs?: number }): Promise<void>;
  /** Look at every project soon (in the background). */
  poke(): void;
  /**
   * Turns a ready spare at main's tip into `wanted` on a new `branch`. The caller holds the
   * repository lock and has checked that neither exists. Null when no spare was ready (or taking
   * it failed: then it is gone and the caller creates the worktree as usual).
   */
  take(
    project: Project,
    args: { main: string; tip: string | null; branch: string; wanted: string },
  ): Promise<{ problems: string[]; from: string } | null>;
}

export function createSparePool(deps: { store: Store; config: ConfigStore; paths: Paths; logger: Logger }): SparePool {
  const { store, paths, logger } = deps;
  /** file counts per `repo\0commit`: a tree walk once per main head */
  const fileCounts = new Map<string, number>();
  let timer: NodeJS.Timeout | null = null;
  let stopped = true;
  let running: Promise<void> | null = null;
  let again = false;

  async function fileCount(repo: string, commit: string): Promise<number> {
    const key = `${repo}\0${commit}`;
    let n = fileCounts.get(key);
    if (n === undefined) {
      const out = await git(repo, ['ls-tree', '-r', '-z', '--name-only', commit]);
      n = out.split('\0').length - 1;
      for (const k of fileCounts.keys()) if (k.startsWith(`${repo}\0`)) fileCounts.delete(k);
      fileCounts.set(key, n);
    }
    return n;
  }

  /** How many spares a project wants now, and main's tip (null: not a repository with commits). */
  async function wanted(project: Project): Promise<{ count: number; tip: string } | null> {
    // one git process for the repository, its commit and main's (a fallback main, HEAD's branch, needs a second)
    const state = await repoState(project.path, mainCandidates(project.main_branch));
    if (!state?.commits) return null;
    const main = await detectMainBranch(project.path, project.main_branch, state);
    const tip = state.tips.get(main) ?? (await branchTip(project.path, main));
    if (!tip) return null;
    const cfg = deps.config.get();
    const on = project.status === 'active' && effectiveParallelCoding(project, cfg.agents.parallel_coding) && cfg.worktrees.spare > 0;
    if (!on) return { count: 0, tip };
    return { count: (await fileCount(project.path, tip)) >= SPARE_MIN_FILES ? cfg.worktrees.spare : 0, tip };
  }

  /** Checks out (or moves) a spare to `tip`, sets it up, then writes its marker. `dir` is in `making`. */
  async function ready(project: Project, dir: string, tip: string, fresh: boolean): Promise<void> {
    const repo = project.path;
    if (fresh) {
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      await git(repo, ['worktree', 'add', '--detach', dir, tip], { timeoutMs: 30 * 60_000 });
    } else {
      // setup may have changed tracked files (a lock file): main's tree wins; untracked files (installed packages) stay
      await git(dir, ['checkout', '-q', '--force', '--detach', tip], { timeoutMs: 30 * 60_000 });
    }
    const logPath = path.join(paths.checks, `${project.abbreviation}-${path.basename(dir).slice(1)}-setup.log`);
    const problems = await setUpFolder({ project, folder: dir, env: commandEnv(deps.config.get()), logPath });
    if (stopped) return; // left without a marker: removed at the next start
    const now = getProject(store.db, project.id);
    if (setUpPrint(now) !== setUpPrint(project)) return; // the setup changed meanwhile: the next pass redoes it
    writeMark(dir, { head: tip, setup: setUpPrint(project), problems });
  }

  async function tend(project: Project): Promise<void> {
    const want = await wanted(project);
    if (!want) return;
    const repo = project.path;
    const ours = path.join(paths.worktrees, project.abbreviation!);
    if (settled(getProject(store.db, project.id), ours, want)) return;
    // under the lock: clean up, pick what to refresh, claim those (a ticket must not take them meanwhile)
    const { stale, missing, names } = await withRepoLock(repo, async () => {
      const left = await pruneProjectSpares(repo, ours, want.count === 0);
      const kept = left.filter((d) => !making.has(d) && readMark(d));
      const extras = kept.splice(want.count);
      for (const extra of extras) await removeSpare(repo, extra);
      const current = getProject(store.db, project.id);
      const old = kept.filter((d) => {
        const mark = readMark(d)!;
        return mark.head !== want.tip || mark.setup !== setUpPrint(current);
      });
      for (const d of old) {
        fs.rmSync(markFile(d), { force: true });
        making.add(d);
      }
      const taken = new Set(left.filter((d) => !extras.includes(d)).map((d) => path.basename(d)));
      const add: string[] = [];
      for (let n = 1; add.length < want.count - kept.length; n += 1) {
        const name = `${SPARE_PREFIX}${n}`;
        if (taken.has(name) || making.has(path.join(ours, name))) continue;
        add.push(path.join(ours, name));
        making.add(path.join(ours, name));
      }
      return { stale: old, missing: add, names: kept.length };
    });
    if (stale.length || missing.length) {
      logger.info('readying spare worktrees', {
        project: project.abbreviation,
        refresh: stale.length,
        new: missing.length,
        ready: names - stale.length,
      });
    }
    const current = getProject(store.db, project.id);
    for (const [dir, fresh] of [...stale.map((d) => [d, false] as const), ...missing.map((d) => [d, true] as const)]) {
      try {
        if (!stopped) await ready(current, dir, want.tip, fresh);
      } catch (err) {
        logger.warn('could not ready a spare worktree', { project: project.abbreviation, folder: dir, error: (err as Error).message });
      } finally {
        making.delete(dir);
      }
    }
  }

  async function pass(): Promise<void> {
    do {
      again = false;
      for (const project of listProjects(store.db)) {
        if (stopped) return;
        if (!project.abbreviation || project.status === 'unregistered') continue;
        try {
          await tend(project);
        } catch (err) {
          logger.warn('spare worktrees: a pass over a project failed', { project: project.abbreviation, error: (err as Error).message });
        }
      }
    } while (again && !stopped);
  }

  function poke(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass().finally(() => {
      running = null;
    });
  }

  return {
    start() {
      stopped = false;
      poke();
      timer = setInterval(poke, SPARE_CHECK_MS);
      timer.unref();
    },
    async stop({ waitMs = 5_000 } = {}) {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      if (running) {
        let wait: NodeJS.Timeout | undefined;
        await Promise.race([running, new Promise<void>((resolve) => (wait = setTimeout(resolve, waitMs)))]);
        clearTimeout(wait);
      }
    },
    poke,
    async take(project, { main, tip, branch, wanted: to }) {
      const repo = project.path;
      const ours = path.join(paths.worktrees, project.abbreviation!);
      let names: string[];
      try {
        names = fs.readdirSync(ours).filter((n) => isSpareName(n) && n.endsWith(READY));
      } catch {
        return null;
      }
      if (names.length === 0 || !tip) return null;
      // only the marker files are read here, no `git worktree list`: each git process costs the wake path milliseconds
      const print = setUpPrint(project);
      for (const dir of names.sort().map((n) => path.join(ours, n.slice(0, -READY.length)))) {
        const mark = readMark(dir);
        if (making.has(dir) || !mark || mark.head !== tip || mark.setup !== print || !fs.existsSync(dir)) continue;
        fs.rmSync(markFile(dir), { force: true }); // claimed: no pass refreshes or removes it now
        let branchMade = false;
        try {
          // what `git switch -c` does here (HEAD is at the tip already), without its pass over the index of every
          // file: the new branch, and the spare's HEAD on it (in its own git dir, which the move leaves where it
          // is); with the move, three git processes side by side, as each one costs the wake path milliseconds
          const gitDir = spareGitDir(dir);
          const all = await Promise.allSettled([
            git(repo, ['worktree', 'move', dir, to]),
            git(repo, ['update-ref', '-m', `branch: created from ${main} for a spare worktree`, `refs/heads/${branch}`, tip, '']).then(
              () => (branchMade = true),
            ),
            git(repo, [`--git-dir=${gitDir}`, 'symbolic-ref', 'HEAD', `refs/heads/${branch}`]),
          ]);
          for (const r of all) if (r.status === 'rejected') throw r.reason;
          // refill in the background, once the ticket's agent has started: a checkout next to its start would slow it
          setTimeout(poke, REFILL_DELAY_MS).unref();
          return { problems: mark.problems, from: dir };
        } catch (err) {
          logger.warn('could not take a spare worktree; creating one', {
            project: project.abbreviation,
            folder: dir,
            error: (err as Error).message,
          });
          for (const left of [dir, to]) if (fs.existsSync(left)) await removeSpare(repo, left);
          // the caller makes the branch along with the worktree: it must not exist yet
          if (branchMade) await git(repo, ['update-ref', '-d', `refs/heads/${branch}`, tip]).catch(() => undefined);
          return null;
        }
      }
      return null;
    },
  };
}
