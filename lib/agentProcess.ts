// Spawning and killing one agent process (SPEC 2, "Spawn"; research/claude-cli.md). The child runs
// detached in its own process group with stdout and stderr written straight to its transcript file
// (lessons 1: nothing to drain, nothing lost when the daemon dies), the task message on stdin and
// stdin closed (an open stdin makes the CLI wait 3 s). Its environment is an allowlist, never the
// daemon's whole environment. Killing takes the whole tree: the CLI's Bash children outlive SIGTERM.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import treeKill from 'tree-kill';
import { agentPathDir, ticketBin } from './paths.js';
import { isAlive, procStat } from './pidfile.js';
import type { Config } from './config.js';

/** Variables an agent may inherit from the daemon. HOME and the CLI's config folders carry its OAuth session (lessons 15). */
const INHERITED = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TERM', 'SHELL', 'TMPDIR', 'TZ', 'CLAUDE_CONFIG_DIR', 'XDG_CONFIG_HOME'] as const;

export interface AgentContext {
  dbPath: string;
  ticketKey: string;
  projectKey: string;
  runId: string;
  /** proves the run to bin/ticket.cjs; the database holds only its hash */
  runSecret: string;
  agentType: string;
  port: number;
}

export function agentEnv(config: Config, daemonEnv: NodeJS.ProcessEnv, ctx: AgentContext): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) if (daemonEnv[name] !== undefined) env[name] = daemonEnv[name];
  env.PATH = [agentPathDir, env.PATH ?? '/usr/local/bin:/usr/bin:/bin'].join(path.delimiter);
  if (config.ai.auth_method === 'api_key') env.ANTHROPIC_API_KEY = config.ai.api_key;
  if (config.ai.auth_method === 'custom') {
    env.ANTHROPIC_BASE_URL = config.ai.base_url;
    if (config.ai.api_key) env.ANTHROPIC_API_KEY = config.ai.api_key;
  }
  Object.assign(env, config.agents.env);
  // after agents.env, so no setting can replace them. ticket.cjs takes the run's ticket, project,
  // author and rights from DISPATCH_RUN_SECRET alone; the ids are for the agent to read.
  Object.assign(env, {
    DISPATCH_DB_PATH: ctx.dbPath,
    DISPATCH_TICKET_ID: ctx.ticketKey,
    DISPATCH_PROJECT_ID: ctx.projectKey,
    DISPATCH_RUN_ID: ctx.runId,
    DISPATCH_RUN_SECRET: ctx.runSecret,
    DISPATCH_AGENT_TYPE: ctx.agentType,
    DISPATCH_PORT: String(ctx.port),
    DISPATCH_TICKET_BIN: ticketBin,
  });
  if (config.api_token) env.DISPATCH_API_TOKEN = config.api_token;
  return env;
}

export interface AgentCommand {
  model: string;
  permissionMode: string;
  allowedTools: string[];
  promptFile: string;
}

/** The CLI's arguments. The prompt travels as a file and the task on stdin: a variadic flag such as
 * --allowedTools would swallow a trailing prompt, and one argv string is capped at 128 KiB. */
export function agentArgs(c: AgentCommand): string[] {
  const args = ['-p', '--output-format', 'stream-json', '--verbose', '--model', c.model, '--permission-mode', c.permissionMode, '--append-system-prompt-file', c.promptFile];
  if (c.allowedTools.length) args.push('--allowedTools', ...c.allowedTools);
  return args;
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
}

export function taskMessage(t: TaskInfo): string {
  const lines = [
    `Your ticket is ${t.key} ("${t.title}") in the ${t.column} column of project ${t.project}.`,
    `Start with: ticket read ${t.key}`,
    `When you are done, move it with ticket move ${t.key} <column> as your instructions say, or send it to human with a question.`,
  ];
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

/** Checks what every run needs before spending a spawn on it (lessons 2: fail loudly, not all night). */
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
export function spawnAgent(opts: { binary: string; args: string[]; env: NodeJS.ProcessEnv; cwd: string; transcriptPath: string; stdin: string }): Promise<Spawned> {
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
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, signal) => res({ code, signal })));
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
  if (stat.state === 'Z' || stat.state === 'X') return false;
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
export function reapGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // nothing left
  }
}
