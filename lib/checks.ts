// A project's check (its tests, its linters: any shell command) and the records of its runs. The
// merge queue (lib/merge.ts) runs the check on the exact tree that would land on main; worktree
// setup (lib/workspace.ts) runs the project's setup command the same way. A command runs under
// `sh -c` in its own process group, with the environment agents get (the daemon's basic variables
// and config agents.env), its output going to a file, and is killed with its whole tree when its
// time is up. A check the daemon did not see end (it was killed) is ended at the next start, its
// process group killed, and the merge job runs the check again.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { INHERITED, killTree } from './agentProcess.js';
import { git, headCommit } from './git.js';
import type { Config } from './config.js';
import type { Db } from './db/connection.js';
import type { Logger } from './logger.js';
import type { Project } from './projects.js';

/** How many lines of a failed check's output its finding quotes. */
export const CHECK_TAIL_LINES = 60;
/** Exit code of `sh -c` when the command is not found: the check cannot start. */
export const COMMAND_NOT_FOUND = 127;

export type CheckStatus = 'running' | 'pass' | 'fail' | 'timeout' | 'error';

export interface CheckRun {
  id: number;
  ticket_id: number;
  project_id: number;
  attempt: number;
  command: string;
  status: CheckStatus;
  exit_code: number | null;
  note: string | null;
  pid: number | null;
  cwd: string;
  output_path: string;
  tested_commit: string;
  main_commit: string;
  merge_commit: string | null;
  started_at: number;
  ended_at: number | null;
}

/** The environment a check or setup command runs with: what agents get, minus the ticket's credentials. */
export function commandEnv(config: Pick<Config, 'agents'> | null, daemonEnv: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) if (daemonEnv[name] !== undefined) env[name] = daemonEnv[name];
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  if (config) Object.assign(env, config.agents.env);
  return env;
}

export interface ShellResult {
  /** exit code, or null when killed by a signal */
  code: number | null;
  timedOut: boolean;
  /** the shell itself could not be started */
  spawnError: string | null;
}

/**
 * Runs `command` with `sh -c` in `cwd`, stdout and stderr appended to `outputPath`, killed with its
 * process tree after `timeoutMs`. `onStart` gets the pid (the process group's id) once it runs.
 */
export function runShell(opts: {
  command: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  outputPath: string;
  onStart?: (pid: number) => void;
}): Promise<ShellResult> {
  fs.mkdirSync(path.dirname(opts.outputPath), { recursive: true });
  const fd = fs.openSync(opts.outputPath, 'a', 0o600);
  fs.writeSync(fd, `$ ${opts.command}\n`);
  return new Promise((resolve) => {
    let timedOut = false;
    let timer: NodeJS.Timeout | null = null;
    let child;
    try {
      child = spawn('/bin/sh', ['-c', opts.command], { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', fd, fd] });
    } catch (err) {
      fs.closeSync(fd);
      resolve({ code: null, timedOut: false, spawnError: (err as Error).message });
      return;
    }
    fs.closeSync(fd);
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      resolve({ code: null, timedOut: false, spawnError: err.message });
    });
    child.once('spawn', () => {
      if (child.pid) opts.onStart?.(child.pid);
      timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) void killTree(child.pid, 2000);
      }, opts.timeoutMs);
    });
    child.once('exit', (code) => {
      if (timer) clearTimeout(timer);
      // whatever the command left running in its group goes with it
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // nothing left
      }
      resolve({ code, timedOut, spawnError: null });
    });
  });
}

/** The last `lines` lines of a text file (read from its end, so a huge output costs little). */
export function tailOfFile(file: string, lines = CHECK_TAIL_LINES, maxBytes = 64 * 1024): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fs.fstatSync(fd).size;
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    fs.readSync(fd, buf, 0, buf.length, start);
    const text = buf.toString('utf8').replace(/\n$/, '');
    return text.split('\n').slice(-lines).join('\n');
  } finally {
    fs.closeSync(fd);
  }
}

// ---- check runs ----

export function startCheckRun(
  db: Db,
  r: {
    ticketId: number;
    projectId: number;
    command: string;
    cwd: string;
    outputDir: string;
    key: string;
    testedCommit: string;
    mainCommit: string;
  },
): CheckRun {
  return db
    .transaction(() => {
      const { n } = db.prepare(`SELECT COALESCE(MAX(attempt), 0) + 1 AS n FROM check_runs WHERE ticket_id = ?`).get(r.ticketId) as {
        n: number;
      };
      const output = path.join(r.outputDir, `${r.key}-check-${n}.log`);
      const id = Number(
        db
          .prepare(
            `INSERT INTO check_runs (ticket_id, project_id, attempt, command, status, cwd, output_path, tested_commit, main_commit, started_at)
         VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)`,
          )
          .run(r.ticketId, r.projectId, n, r.command, r.cwd, output, r.testedCommit, r.mainCommit, Date.now()).lastInsertRowid,
      );
      return getCheckRun(db, id)!;
    })
    .immediate();
}

export function getCheckRun(db: Db, id: number): CheckRun | undefined {
  return db.prepare(`SELECT * FROM check_runs WHERE id = ?`).get(id) as CheckRun | undefined;
}

export function setCheckPid(db: Db, id: number, pid: number): void {
  db.prepare(`UPDATE check_runs SET pid = ? WHERE id = ?`).run(pid, id);
}

export function endCheckRun(
  db: Db,
  id: number,
  end: { status: Exclude<CheckStatus, 'running'>; exitCode: number | null; note: string | null },
): void {
  db.prepare(`UPDATE check_runs SET status = ?, exit_code = ?, note = ?, ended_at = ? WHERE id = ? AND status = 'running'`).run(
    end.status,
    end.exitCode,
    end.note,
    Date.now(),
    id,
  );
}

/** The commit that landed on main after this passing check (the merge of the tested branch). */
export function recordCheckLanded(db: Db, id: number, mergeCommit: string | null): void {
  db.prepare(`UPDATE check_runs SET merge_commit = ? WHERE id = ?`).run(mergeCommit, id);
}

export function listCheckRuns(db: Db, ticketId: number): CheckRun[] {
  return db.prepare(`SELECT * FROM check_runs WHERE ticket_id = ? ORDER BY attempt`).all(ticketId) as CheckRun[];
}

/** The project's newest finished check run (what main's last check said), with its ticket's key. */
export function lastCheckRun(db: Db, projectId: number): (CheckRun & { key: string }) | undefined {
  return db
    .prepare(
      `SELECT c.*, p.abbreviation || '-' || t.number AS key
       FROM check_runs c JOIN tickets t ON t.id = c.ticket_id JOIN projects p ON p.id = c.project_id
       WHERE c.project_id = ? AND c.status != 'running' ORDER BY c.started_at DESC, c.id DESC LIMIT 1`,
    )
    .get(projectId) as (CheckRun & { key: string }) | undefined;
}

const PRIORITY_RANK = `CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END`;

/** The merge queue's order rank of a ticket priority (liteque takes lower first). */
export function priorityRank(priority: string): number {
  return { urgent: 0, high: 1, normal: 2 }[priority] ?? 3;
}

/** The project's merge queue: done tickets whose branch waits to land, by priority, then time in done. */
export function mergeQueue(db: Db, projectId: number): { id: number; key: string }[] {
  return db
    .prepare(
      `SELECT t.id, p.abbreviation || '-' || t.number AS key FROM tickets t JOIN projects p ON p.id = t.project_id
       WHERE t.project_id = ? AND t.column_id = 'done' AND t.branch IS NOT NULL AND t.merged_at IS NULL AND t.archived_at IS NULL
       ORDER BY ${PRIORITY_RANK}, t.column_entered_at, t.id`,
    )
    .all(projectId) as { id: number; key: string }[];
}

/** Pids of live processes in process group `pgid` whose working directory is inside `dir` (from /proc). */
function groupMembersIn(pgid: number, dir: string): number[] {
  if (!fs.existsSync('/proc/self/stat')) return [];
  let real = dir;
  try {
    real = fs.realpathSync(dir);
  } catch {
    // the worktree is gone: nothing can work in it
    return [];
  }
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid || fields[0] === 'Z') continue;
      const cwd = fs.readlinkSync(`/proc/${name}/cwd`);
      if (cwd === real || cwd.startsWith(real + path.sep)) found.push(Number(name));
    } catch {
      // ended meanwhile, or not ours to inspect
    }
  }
  return found;
}

/**
 * At start, before any merge job runs: a check left `running` by a dead daemon is ended as an
 * error (its merge job is retried and runs the check again), and what is left of its process
 * group, if anything still works in that worktree, is killed so it cannot change the tree the
 * new check tests.
 */
export async function recoverCheckRuns(db: Db, logger?: Logger): Promise<number> {
  const stale = db.prepare(`SELECT * FROM check_runs WHERE status = 'running'`).all() as CheckRun[];
  for (const run of stale) {
    // the group id is the shell's pid; a member still working in the worktree is what is left of it
    if (run.pid && groupMembersIn(run.pid, run.cwd).length > 0) {
      try {
        process.kill(-run.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // what the half-run check wrote goes, so the worktree is again exactly the commit it was testing
    try {
      if (fs.existsSync(run.cwd) && (await headCommit(run.cwd)) === run.tested_commit) {
        await git(run.cwd, ['reset', '--quiet', '--hard', 'HEAD']);
        await git(run.cwd, ['clean', '-fdq']);
      }
    } catch (err) {
      logger?.warn('could not restore the worktree of an interrupted check', { check: run.id, error: (err as Error).message });
    }
    endCheckRun(db, run.id, { status: 'error', exitCode: null, note: 'the daemon stopped while this check ran; it runs again' });
    logger?.warn('a check was interrupted by a daemon stop; it will run again', { check: run.id, ticket: run.ticket_id });
  }
  return stale.length;
}

export interface TicketMergeStatus {
  /** 1-based place in its project's merge queue, while the ticket waits in done to land */
  queue: { position: number; length: number } | null;
  check_runs: (CheckRun & { duration_ms: number | null; tail: string })[];
  merge_commit: string | null;
}

/** What the ticket page and the API show of a ticket's way to main: its place in the queue, its check runs, its merge commit. */
export function ticketMergeStatus(db: Db, ticket: { id: number; project_id: number }): TicketMergeStatus {
  const queue = mergeQueue(db, ticket.project_id);
  const at = queue.findIndex((q) => q.id === ticket.id);
  const runs = listCheckRuns(db, ticket.id).map((r) => ({
    ...r,
    duration_ms: r.ended_at === null ? null : r.ended_at - r.started_at,
    tail: tailOfFile(r.output_path, CHECK_TAIL_LINES),
  }));
  const { merge_commit } = db.prepare(`SELECT merge_commit FROM tickets WHERE id = ?`).get(ticket.id) as { merge_commit: string | null };
  return { queue: at < 0 ? null : { position: at + 1, length: queue.length }, check_runs: runs, merge_commit };
}

/** How long a worktree's setup command may run. */
const SETUP_TIMEOUT_MS = 30 * 60_000;

/**
 * Readies a fresh checkout of the project (a ticket's new worktree, or a spare one): copies the
 * project's copy_files in from the project folder, then runs its setup command there with its
 * output in `logPath`. Returns the problems in words (empty when all went well).
 */
export async function setUpFolder(args: { project: Project; folder: string; env: NodeJS.ProcessEnv; logPath: string }): Promise<string[]> {
  const { project, folder, env } = args;
  const problems: string[] = [];
  const root = fs.realpathSync(project.path);
  for (const file of JSON.parse(project.copy_files) as string[]) {
    const from = path.join(project.path, file);
    let real: string;
    try {
      real = fs.realpathSync(from);
    } catch {
      problems.push(`${file}: not found in ${project.path}`);
      continue;
    }
    if (!real.startsWith(root + path.sep)) {
      problems.push(`${file}: leads outside the project folder; not copied`);
      continue;
    }
    try {
      const to = path.join(folder, file);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.cpSync(real, to, { recursive: true });
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  if (project.setup_command) {
    const output = args.logPath;
    const r = await runShell({ command: project.setup_command, cwd: folder, env, timeoutMs: SETUP_TIMEOUT_MS, outputPath: output });
    if (r.spawnError || r.timedOut || r.code !== 0) {
      const why =
        r.spawnError ??
        (r.timedOut ? `did not finish within ${SETUP_TIMEOUT_MS / 60_000} minutes and was killed` : `exited ${r.code ?? 'on a signal'}`);
      problems.push(`setup command "${project.setup_command}" ${why}. Last lines (all of it in ${output}):\n${tailOfFile(output, 20)}`);
    }
  }
  return problems;
}
