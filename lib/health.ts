// Health checks: what must hold for agents to run and for the daemon to keep its data. They run
// when the daemon starts, after every settings change, and again every few minutes (so a problem
// fixed outside the daemon clears by itself, and one that appears is noticed); the last results
// are kept in memory and shown as a banner on every page, in /api/health and in
// `dispatch daemon status`. A failing check only reports: it does not pause anything (a run that
// cannot start pauses dispatching by its own cause, lib/cliPause.ts).
// A settings save that points claude_binary or projects_root at something missing is refused
// (setupProblem) unless the person says to save anyway.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { UserError } from './errors.js';
import type { Config, ConfigStore } from './config.js';
import type { Logger } from './logger.js';
import { cliBinary } from './clis/index.js';

export type HealthLevel = 'ok' | 'warn' | 'error';
export type HealthCheckId = 'claude_binary' | 'projects_root' | 'data_home' | 'disk_space';

export interface HealthCheck {
  id: HealthCheckId;
  level: HealthLevel;
  /** what was found, in words ("claude_binary /x does not exist") */
  message: string;
  /** what to do about it; null when all is well */
  fix: string | null;
}

export interface HealthReport {
  /** when the last complete round of checks ended (ms since the epoch); null before the first */
  checked_at: number | null;
  checks: HealthCheck[];
  /** the checks that are not ok, errors first */
  problems: HealthCheck[];
}

/** How long `claude_binary --version` may take before it counts as not answering. */
export const VERSION_TIMEOUT_MS = 10_000;
/** Below this much free space on the data home's disk, a warning. */
export const LOW_DISK_BYTES = 1024 ** 3;
/** How often the checks run again by themselves. */
export const RECHECK_MS = 5 * 60_000;

/** The file `name` runs: a path as it is, a bare name looked up on `pathEnv`; null when there is none that may be executed. */
export function findExecutable(name: string, pathEnv = ''): string | null {
  const candidates = name.includes('/')
    ? [path.resolve(name)]
    : pathEnv
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, name));
  for (const file of candidates) {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** Why `binary` cannot be started (missing, not a file, not executable), or null. No process is started. */
export function binaryProblem(binary: string, pathEnv = process.env.PATH ?? ''): string | null {
  if (!binary.includes('/')) return findExecutable(binary, pathEnv) ? null : `${binary} was not found on the daemon's PATH`;
  const file = path.resolve(binary);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return `${binary} does not exist`;
  }
  if (!stat.isFile()) return `${binary} is not a file`;
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    return `${binary} is not executable`;
  }
  return null;
}

/** Why `dir` cannot serve as a folder to read (missing, not a folder, not readable), or null. */
export function folderProblem(dir: string): string | null {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    return `${dir} does not exist`;
  }
  if (!stat.isDirectory()) return `${dir} is not a folder`;
  try {
    fs.readdirSync(dir);
  } catch (err) {
    return `${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  return null;
}

const SETUP_FIELDS = ['claude_binary', 'projects_root'] as const;

/**
 * The check a settings save makes before writing: a changed claude_binary or projects_root must
 * point at something that exists. Throws a UserError naming the field; `howToForce` says how to save
 * all the same ('tick "save anyway"', 'send "save_anyway": true').
 */
export function refuseMissingSetup(next: Config, prev: Config, howToForce: string): void {
  for (const field of SETUP_FIELDS) {
    if (next[field] === prev[field]) continue;
    const problem = field === 'claude_binary' ? binaryProblem(next.claude_binary) : folderProblem(next.projects_root);
    if (problem) throw new UserError(`${field}: ${problem}; not saved (${howToForce} to save it all the same)`, field);
  }
}

const ok = (id: HealthCheckId, message: string): HealthCheck => ({ id, level: 'ok', message, fix: null });

/** Output kept from `--version`: enough for a version line, never a flood. */
const MAX_VERSION_OUTPUT = 4096;

/** Runs `file --version` in its own process group; the group is killed if it does not end within the timeout or on `signal`. */
type VersionReply = { code: number | null; out: string; err: string } | { failed: string };

function askVersion(file: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<VersionReply> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    let settled = false;
    const settle = (v: VersionReply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const child = spawn(file, ['--version'], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout.on('data', (d: Buffer) => (out = (out + d.toString('utf8')).slice(0, MAX_VERSION_OUTPUT)));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(0, MAX_VERSION_OUTPUT)));
    child.once('error', (e: NodeJS.ErrnoException) => settle({ failed: `could not be started (${e.code ?? e.message})` }));
    child.once('close', (code) => settle({ code, out, err }));
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL'); // the whole group: a script's own children too
      } catch {
        // already gone, or never started
      }
    };
    const timer = setTimeout(() => {
      killGroup();
      settle({ failed: `did not answer --version within ${VERSION_TIMEOUT_MS / 1000} s` });
    }, VERSION_TIMEOUT_MS);
    const abort = () => {
      killGroup();
      settle({ failed: 'was not asked to the end (the daemon stopped)' });
    };
    if (signal?.aborted) abort();
    signal?.addEventListener('abort', abort, { once: true });
    child.once('close', () => signal?.removeEventListener('abort', abort));
  });
}

const firstLine = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .find(Boolean) ?? '';

/** A binary's answer to --version, kept with what identifies the file that gave it. */
export interface VersionAnswer {
  /** path, inode, size and modification time of the file that answered */
  identity: string;
  check: HealthCheck;
}

function identityOf(file: string): string {
  const s = fs.statSync(file);
  return `${file}:${s.ino}:${s.size}:${s.mtimeMs}`;
}

/**
 * Checks that the binary exists, may be executed and answers --version. With `known`, a file that
 * answered well before and has not changed since (same path, inode, size and time) is not asked
 * again: the periodic round stays cheap.
 */
export async function checkClaudeBinary(
  binary: string,
  env: NodeJS.ProcessEnv,
  known: VersionAnswer | null = null,
  signal?: AbortSignal,
): Promise<VersionAnswer | HealthCheck> {
  const fixSetting = 'install the claude CLI, or set claude_binary in Settings (or DISPATCH_CLAUDE_BIN) to its path';
  const problem = binaryProblem(binary, env.PATH ?? '');
  if (problem) return { id: 'claude_binary', level: 'error', message: `claude_binary ${problem}`, fix: fixSetting };
  const file = findExecutable(binary, env.PATH ?? '')!;
  let identity: string;
  try {
    identity = identityOf(file);
  } catch {
    return { id: 'claude_binary', level: 'error', message: `claude_binary ${binary} does not exist`, fix: fixSetting };
  }
  if (known && known.identity === identity && known.check.level === 'ok') return known;
  const answer = await askVersion(file, env, signal);
  const fix = `check that ${file} is the claude CLI and that "${file} --version" works in a terminal`;
  let check: HealthCheck;
  if ('failed' in answer) {
    check = { id: 'claude_binary', level: 'error', message: `claude_binary ${binary} ${answer.failed}`, fix };
  } else if (answer.code !== 0) {
    const said = firstLine(answer.err) || firstLine(answer.out);
    const message = `claude_binary ${binary} exited with code ${answer.code} on --version${said ? `: ${said}` : ''}`;
    check = { id: 'claude_binary', level: 'error', message, fix };
  } else {
    const version = firstLine(answer.out);
    check = version
      ? ok('claude_binary', `claude_binary ${binary}: ${version}`)
      : { id: 'claude_binary', level: 'warn', message: `claude_binary ${binary} printed no version`, fix };
  }
  return { identity, check };
}

export function checkProjectsRoot(dir: string): HealthCheck {
  const problem = folderProblem(dir);
  if (!problem) return ok('projects_root', `projects_root ${dir} is readable`);
  const fix = 'create it, or set projects_root in Settings (or DISPATCH_PROJECTS_ROOT) to the folder holding your projects';
  return { id: 'projects_root', level: 'error', message: `projects_root ${problem}`, fix };
}

/** Writes and removes a small file in the data home: the one proof that the disk takes writes. */
export function checkDataHome(home: string): HealthCheck {
  const probe = path.join(home, `.health-check-${process.pid}`);
  try {
    fs.writeFileSync(probe, 'ok\n');
    fs.rmSync(probe, { force: true });
    return ok('data_home', `the data home ${home} is writable`);
  } catch (err) {
    fs.rmSync(probe, { force: true });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    const fix = code === 'ENOSPC' || code === 'EDQUOT' ? 'free some space on its disk' : "check that folder's permissions and its disk";
    return { id: 'data_home', level: 'error', message: `the data home ${home} cannot be written (${code}): nothing can be saved`, fix };
  }
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GB`;
  if (n >= 1024 ** 2) return `${Math.round(n / 1024 ** 2)} MB`;
  return `${Math.round(n / 1024)} KB`;
}

export async function checkDiskSpace(home: string): Promise<HealthCheck> {
  let free: number;
  try {
    const s = await fs.promises.statfs(home);
    free = s.bavail * s.bsize;
  } catch (err) {
    const message = `free space on the disk of ${home} could not be read (${(err as Error).message})`;
    return { id: 'disk_space', level: 'warn', message, fix: null };
  }
  if (free >= LOW_DISK_BYTES) return ok('disk_space', `${formatBytes(free)} free on the disk holding ${home}`);
  return {
    id: 'disk_space',
    level: 'warn',
    message: `only ${formatBytes(free)} free on the disk holding ${home}`,
    fix: `free some space (at least ${formatBytes(LOW_DISK_BYTES)}): the database, logs and transcripts live there`,
  };
}

/** Runs every check once, at the same time; `known` as for checkClaudeBinary. */
export async function runHealthChecks(opts: {
  config: Config;
  home: string;
  env?: NodeJS.ProcessEnv;
  known?: VersionAnswer | null;
  signal?: AbortSignal;
}): Promise<{ checks: HealthCheck[]; version: VersionAnswer | null }> {
  const env = opts.env ?? process.env;
  const binaryCheck = checkClaudeBinary(cliBinary(opts.config, 'claude'), env, opts.known ?? null, opts.signal);
  const [binary, disk] = await Promise.all([binaryCheck, checkDiskSpace(opts.home)]);
  const version = 'identity' in binary ? binary : null;
  const binaryResult = version ? version.check : (binary as HealthCheck);
  const checks = [binaryResult, checkProjectsRoot(opts.config.projects_root), checkDataHome(opts.home), disk];
  return { checks, version };
}

const RANK: Record<HealthLevel, number> = { error: 0, warn: 1, ok: 2 };

export function reportOf(checks: HealthCheck[], at: number | null): HealthReport {
  const problems = checks.filter((c) => c.level !== 'ok').sort((a, b) => RANK[a.level] - RANK[b.level]);
  return { checked_at: at, checks, problems };
}

/**
 * Keeps the last results; runs the checks at start, on every settings change and every RECHECK_MS.
 * The periodic round asks the binary for its version only when the file changed or last failed.
 */
export class HealthMonitor {
  private last: HealthReport = reportOf([], null);
  private version: VersionAnswer | null = null;
  private running: Promise<HealthReport> | null = null;
  private queued: Promise<HealthReport> | null = null;
  /** whether the queued round must ask the binary again (some caller wanted a fresh round) */
  private queuedFresh = false;
  private timer: NodeJS.Timeout | null = null;
  /** ends a --version still going when the daemon stops (a hanging binary must not outlive it) */
  private readonly stopped = new AbortController();
  private readonly onChange = () => void this.check();

  constructor(private readonly deps: { config: ConfigStore; home: string; logger: Logger; env?: NodeJS.ProcessEnv }) {}

  start(): void {
    this.deps.config.on('change', this.onChange);
    void this.check();
    this.timer = setInterval(() => void this.check({ fresh: false }), RECHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.deps.config.off('change', this.onChange);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopped.abort();
  }

  report(): HealthReport {
    return this.last;
  }

  /**
   * Runs the checks now and resolves with their report. A call while a round is going gets the round
   * after it (which sees the newest settings); further calls meanwhile share that one. `fresh: false`
   * lets an unchanged binary that answered well keep its last answer.
   */
  check(opts: { fresh?: boolean } = {}): Promise<HealthReport> {
    if (this.stopped.signal.aborted) return Promise.resolve(this.last);
    const fresh = opts.fresh ?? true;
    if (!this.running) return (this.running = this.round(fresh));
    this.queuedFresh ||= fresh;
    this.queued ??= this.running.then(() => {
      const queuedFresh = this.queuedFresh;
      this.queued = null;
      this.queuedFresh = false;
      return (this.running = this.round(queuedFresh));
    });
    return this.queued;
  }

  private async round(fresh: boolean): Promise<HealthReport> {
    try {
      const known = fresh ? null : this.version;
      const { config, home, env } = this.deps;
      const { checks, version } = await runHealthChecks({ config: config.get(), home, env, known, signal: this.stopped.signal });
      if (this.stopped.signal.aborted) return this.last;
      this.version = version;
      const before = new Map(this.last.problems.map((p) => [p.id, p.message]));
      this.last = reportOf(checks, Date.now());
      for (const p of this.last.problems) {
        if (before.get(p.id) === p.message) continue;
        this.deps.logger.warn('health check failed', { check: p.id, level: p.level, problem: p.message, fix: p.fix });
      }
      for (const id of before.keys()) {
        if (!this.last.problems.some((p) => p.id === id)) this.deps.logger.info('health check passes again', { check: id });
      }
    } catch (err) {
      this.deps.logger.error('health checks could not run', { error: (err as Error).message });
    } finally {
      this.running = null;
    }
    return this.last;
  }
}
