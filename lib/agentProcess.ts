// Spawning and killing one agent process (each CLI's flags and output: lib/clis/, docs/agents/). The child runs
// detached in its own process group with stdout and stderr written straight to its transcript file
// (nothing to drain, nothing lost when the daemon dies), the task message on stdin and
// stdin closed (an open stdin makes the CLI wait 3 s). Its environment is an allowlist, never the
// daemon's whole environment. Killing takes the whole tree: the CLI's Bash children outlive SIGTERM.
// Every process an agent starts ends with its run, also those that left its tree (RunProcesses).
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import treeKill from 'tree-kill';
import { agentPathDir, ticketBin } from './paths.js';
import { isAlive, procStat, type ProcStat } from './pidfile.js';
import type { Config } from './config.js';
import type { CliAdapter } from './clis/index.js';

/**
 * Variables an agent may inherit from the daemon, besides those its CLI's adapter names (its API key,
 * its config folder). HOME and the CLI's config folders carry its OAuth session.
 */
export const INHERITED = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TERM', 'SHELL', 'TMPDIR', 'TZ', 'XDG_CONFIG_HOME'] as const;

/** What names an agent's run, for it and for the ticket tool (which trusts the secret alone). */
export interface AgentIds {
  ticketKey: string;
  projectKey: string;
  runId: string;
  /** proves the run to bin/ticket.cjs; the database holds only its hash */
  runSecret: string;
  agentType: string;
}

export interface AgentContext extends AgentIds {
  dbPath: string;
  port: number;
}

/**
 * The environment of every agent, on this machine or on a runner: the allowlisted variables of the
 * parent (`INHERITED` and the CLI's own), PATH with the `ticket` command first, `settings` in order
 * (later ones win), then the run's DISPATCH_* variables and `dispatch` (where the ticket tool
 * reaches its tickets), which no setting can replace. ticket.cjs takes the run's ticket, project,
 * author and rights from DISPATCH_RUN_SECRET alone; the ids are for the agent to read.
 */
export function baseAgentEnv(
  parentEnv: NodeJS.ProcessEnv,
  cli: Pick<CliAdapter, 'inheritedEnv'>,
  settings: Record<string, string>[],
  ids: AgentIds,
  dispatch: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of [...INHERITED, ...cli.inheritedEnv]) if (parentEnv[name] !== undefined) env[name] = parentEnv[name];
  env.PATH = [agentPathDir, env.PATH ?? '/usr/local/bin:/usr/bin:/bin'].join(path.delimiter);
  for (const s of settings) Object.assign(env, s);
  return Object.assign(env, {
    DISPATCH_TICKET_ID: ids.ticketKey,
    DISPATCH_PROJECT_ID: ids.projectKey,
    DISPATCH_RUN_ID: ids.runId,
    DISPATCH_RUN_SECRET: ids.runSecret,
    DISPATCH_AGENT_TYPE: ids.agentType,
    DISPATCH_TICKET_BIN: ticketBin,
    ...dispatch,
  });
}

/** A local agent's environment. `cli`: the agent's CLI; `cliEnv`: what its launch sets (its permissions). */
export function agentEnv(
  config: Config,
  daemonEnv: NodeJS.ProcessEnv,
  ctx: AgentContext,
  cli: Pick<CliAdapter, 'name' | 'inheritedEnv'>,
  cliEnv: Record<string, string> = {},
): NodeJS.ProcessEnv {
  // the `ai` settings are Claude's login
  const login: Record<string, string> = {};
  if (cli.name === 'claude' && config.ai.auth_method === 'api_key') login.ANTHROPIC_API_KEY = config.ai.api_key;
  if (cli.name === 'claude' && config.ai.auth_method === 'custom') {
    login.ANTHROPIC_BASE_URL = config.ai.base_url;
    if (config.ai.api_key) login.ANTHROPIC_API_KEY = config.ai.api_key;
  }
  const local: Record<string, string> = { DISPATCH_DB_PATH: ctx.dbPath, DISPATCH_PORT: String(ctx.port) };
  if (config.api_token) local.DISPATCH_API_TOKEN = config.api_token;
  return baseAgentEnv(daemonEnv, cli, [login, config.agents.env, cliEnv], ctx, local);
}

/** How much of the previous run's last words the next task message quotes. */
const PREVIOUS_WORDS_MAX = 2000;

export interface TaskInfo {
  key: string;
  title: string;
  column: string;
  project: string;
  /** the previous run in this column, when it ended without moving the ticket */
  previous?: { id: string; result_text: string | null } | null;
  /** the project's check command, which this agent may run and the merge queue runs before merging */
  check?: string | null;
}

export function taskMessage(t: TaskInfo): string {
  const lines = [
    `Your ticket is ${t.key} ("${t.title}") in the ${t.column} column of project ${t.project}.`,
    `Start with: ticket read ${t.key}`,
    `When you are done, move it with ticket move ${t.key} <column> as your instructions say, or send it to human with a question.`,
  ];
  if (t.check) {
    lines.push(
      `The project's check is: ${t.check}`,
      'Run it exactly as written, with nothing added, before you hand the ticket on: the branch is merged into main only when this check passes.',
    );
  }
  if (t.previous) {
    const said = (t.previous.result_text ?? '').trim();
    const quoted = said.length > PREVIOUS_WORDS_MAX ? `${said.slice(0, PREVIOUS_WORDS_MAX)}…` : said;
    lines.push(
      '',
      `The previous run on this ticket (${t.previous.id}) ended without moving it.`,
      'This time, finish by moving it (or by sending it to human).',
      quoted ? `That run's last words were:\n${quoted}` : 'That run left no final message.',
    );
  }
  return lines.join('\n');
}

/** Checks what every run needs before spending a spawn on it (fail loudly, not all night). */
export function checkTicketTool(): string | null {
  if (!fs.existsSync(ticketBin)) return `the ticket tool is missing: ${ticketBin}`;
  if (!fs.existsSync(path.join(agentPathDir, 'ticket'))) return `the ticket command is missing: ${path.join(agentPathDir, 'ticket')}`;
  try {
    createRequire(ticketBin).resolve('better-sqlite3');
  } catch (err) {
    return `the ticket tool cannot load better-sqlite3: ${(err as Error).message}`;
  }
  return null;
}

export interface Spawned {
  pid: number;
  procStart: string | null;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the agent. Rejects (without leaving a process) when the binary cannot be started. */
export function spawnAgent(opts: {
  binary: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  transcriptPath: string;
  stdin: string;
}): Promise<Spawned> {
  fs.mkdirSync(path.dirname(opts.transcriptPath), { recursive: true });
  const out = fs.openSync(opts.transcriptPath, 'a', 0o600);
  return new Promise<Spawned>((resolve, reject) => {
    let child;
    try {
      child = spawn(opts.binary, opts.args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['pipe', out, out] });
    } catch (err) {
      fs.closeSync(out);
      reject(err);
      return;
    }
    fs.closeSync(out);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
      child.once('exit', (code, signal) => res({ code, signal })),
    );
    child.once('error', (err) => reject(err));
    child.once('spawn', () => {
      child.stdin!.on('error', () => {}); // an agent that exits without reading its task must not crash us
      child.stdin!.end(opts.stdin);
      child.unref();
      resolve({ pid: child.pid!, procStart: processStartTime(child.pid!), exited });
    });
  });
}

/**
 * A process's start time as the kernel records it (Linux /proc), used to tell our agent from a
 * later process that reused its pid. Null where it cannot be read.
 */
export function processStartTime(pid: number): string | null {
  return procStat(pid)?.startTicks ?? null;
}

/** True while the process runs and is the one we started (a zombie or a reused pid is not). */
export function isAgentAlive(pid: number, procStart: string | null): boolean {
  if (!isAlive(pid)) return false;
  const stat = procStat(pid);
  if (!stat) return true; // no /proc (macOS): kill(0) is all we have
  return procStart === null || stat.startTicks === procStart;
}

/** Kills the process tree (children first) and its process group; SIGKILL after a grace period. */
export async function killTree(pid: number, graceMs = 3000): Promise<void> {
  const signalAll = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      treeKill(pid, signal, () => {
        try {
          process.kill(-pid, signal);
        } catch {
          // the group is already gone
        }
        resolve();
      });
    });
  await signalAll('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAgentAlive(pid, null)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await signalAll('SIGKILL');
}

/** Kills what is left of an exited agent's process group (children it forked and abandoned). */
function reapGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // nothing left
  }
}

/** Reads a number from a /proc file (the first match of `re`, or the whole file); null where it cannot. */
function procNumber(file: string, re?: RegExp): number | null {
  try {
    const text = fs.readFileSync(file, 'latin1');
    const n = Number(re ? re.exec(text)?.[1] : text.trim());
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** How many processes (and threads) the kernel has created since boot. */
const forkCount = () => procNumber('/proc/stat', /^processes (\d+)$/m);
const PID_MAX = procNumber('/proc/sys/kernel/pid_max');

/**
 * Which pids can belong to processes started after the agent: the kernel hands out pids in
 * increasing order from the last one (ns_last_pid), wrapping at pid_max. While fewer processes
 * than pid_max were created since the agent started (the fork count tells), every process started
 * after it has a pid between the agent's and the last one handed out, and only those need reading
 * (a whole /proc read per run end was 3 ms of daemon CPU on a quiet machine). Null: any pid.
 */
function pidWindow(agentPid: number, forksAtStart: number | null): ((pid: number) => boolean) | null {
  const last = procNumber('/proc/sys/kernel/ns_last_pid');
  const forks = forkCount();
  if (last === null || forks === null || forksAtStart === null || PID_MAX === null) return null;
  if (forks - forksAtStart > PID_MAX / 2) return null; // pids may have gone round since
  return last >= agentPid ? (pid) => pid >= agentPid && pid <= last : (pid) => pid >= agentPid || pid <= last;
}

/** The processes /proc lists (Linux) whose pid `want` accepts; empty where there is no /proc. */
function listProcesses(want: ((pid: number) => boolean) | null = null): ProcStat[] {
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcStat[] = [];
  for (const name of names) {
    const code = name.charCodeAt(0);
    if (code < 48 || code > 57) continue; // not a pid
    const pid = Number(name);
    if (want && !want(pid)) continue;
    const stat = procStat(pid);
    if (stat) out.push(stat);
  }
  return out;
}

const gone = (p: ProcStat) => p.state === 'Z' || p.state === 'X';

/**
 * The processes of one run, so that every process its agent starts ends with it. A child that
 * calls setsid(), or forks twice so that its parent exits, leaves the agent's process group and
 * tree and outlived the run. A cgroup would hold it (`systemd-run --user --scope`), but needs a
 * reachable user systemd; a subreaper (prctl PR_SET_CHILD_SUBREAPER) would inherit it, but Node
 * cannot make that call without native code. So the run's processes are found in /proc, by:
 * - descent: the agent's children and theirs, recorded every `track()` while the agent lives;
 * - its session and process group (the agent leads both; a setsid() child keeps neither, but its
 *   own children keep the first), which the kernel never hands to a new process while in use;
 * - the run id in their environment (DISPATCH_RUN_ID, inherited by everything the agent starts),
 *   which finds a double-forked child at the end of the run, after its ancestry is lost.
 * Only a process that started no earlier than the agent counts, and its start time is checked
 * again right before it is signalled, so a pid reused by another process is never killed. What
 * escapes: a process that clears its environment and leaves the tree between two `track()` calls.
 * Without /proc (macOS) only the agent's process group is killed.
 */
export class RunProcesses {
  /** pid → start ticks of the descendants seen while the agent lived */
  private readonly seen = new Map<number, string>();
  private readonly marker: string;
  private byGroup = true;
  /** the kernel's fork count when the agent had just started; null for an adopted agent */
  private readonly forksAtStart: number | null;

  /** `spawned`: the agent was started just now (not adopted after a restart). */
  constructor(
    runId: string,
    readonly agentPid: number,
    private readonly agentStart: string | null,
    spawned = false,
  ) {
    this.marker = `DISPATCH_RUN_ID=${runId}\0`;
    this.forksAtStart = spawned ? forkCount() : null;
  }

  /** The pids worth reading now: those handed out since the agent started, or all of them. */
  window(): ((pid: number) => boolean) | null {
    return pidWindow(this.agentPid, this.forksAtStart);
  }

  private startedBefore(p: ProcStat): boolean {
    return this.agentStart !== null && Number(p.startTicks) < Number(this.agentStart);
  }

  private isAgent(p: ProcStat | undefined): boolean {
    return p !== undefined && p.pid === this.agentPid && (this.agentStart === null || p.startTicks === this.agentStart);
  }

  /** Whether `p` is one of the run's processes (the agent itself aside); `environ` also reads its environment. */
  private owns(p: ProcStat, byPid: Map<number, ProcStat>, environ: boolean): boolean {
    if (p.pid === process.pid || this.isAgent(p) || this.startedBefore(p)) return false;
    if (this.seen.get(p.pid) === p.startTicks) return true;
    // the agent's session and group ids, unless its pid now names another process (then they are that one's)
    const holder = byPid.get(this.agentPid);
    const groupIsOurs = this.byGroup && (holder === undefined || this.isAgent(holder));
    if (groupIsOurs && (p.session === this.agentPid || p.pgrp === this.agentPid)) return true;
    let parent = byPid.get(p.ppid);
    for (let depth = 0; parent && depth < 64; depth++, parent = byPid.get(parent.ppid)) {
      if (this.isAgent(parent) || this.seen.get(parent.pid) === parent.startTicks) return true;
    }
    if (!environ) return false;
    try {
      const env = fs.readFileSync(`/proc/${p.pid}/environ`, 'latin1');
      return env.startsWith(this.marker) || env.includes(`\0${this.marker}`);
    } catch {
      return false; // gone, or another user's
    }
  }

  /** Records the agent's descendants living now (call while the agent runs). */
  track(procs: ProcStat[] = listProcesses(this.window())): void {
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    for (const p of procs) if (!gone(p) && this.owns(p, byPid, false)) this.seen.set(p.pid, p.startTicks);
  }

  /**
   * Kills every process of the run still alive, right after the agent ended. Each round stops them
   * all first, so none forks a new one between being found and being killed, then kills them;
   * rounds repeat until none is left. Returns how many were killed. `longGone`: the agent ended
   * long ago (while the daemon was down), so its session and group ids may have been handed on and
   * only the run id in the environment counts.
   */
  async end(longGone = false): Promise<number> {
    this.byGroup = !longGone;
    if (this.byGroup) reapGroup(this.agentPid);
    let killed = 0;
    for (let round = 0; round < 20; round++) {
      const procs = listProcesses(this.window());
      const byPid = new Map(procs.map((p) => [p.pid, p]));
      const found = procs.filter((p) => !gone(p) && this.owns(p, byPid, true));
      if (found.length === 0) break;
      const signal = (p: ProcStat, sig: NodeJS.Signals) => {
        if (procStat(p.pid)?.startTicks !== p.startTicks) return; // ended meanwhile, and its pid may be someone else's now
        try {
          process.kill(p.pid, sig);
        } catch {
          // already gone
        }
      };
      for (const p of found) signal(p, 'SIGSTOP');
      for (const p of found) signal(p, 'SIGKILL');
      killed += found.length;
      await new Promise((r) => setTimeout(r, 50));
    }
    return killed;
  }
}

/** Tracks the processes of several live runs with one read of /proc. */
export function trackRuns(runs: Iterable<RunProcesses>): void {
  const list = [...runs];
  if (list.length === 0) return;
  const windows = list.map((r) => r.window());
  const procs = listProcesses(windows.includes(null) ? null : (pid) => windows.some((w) => w!(pid)));
  for (const r of list) r.track(procs);
}
