// Helpers for engine tests: a real daemon whose agent binary is the fake claude, projects
// registered through the API, scripted tickets, and read-only access to the daemon's database.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { repoRoot, startTestDaemon, type DaemonOptions, type RunningDaemon } from './daemon.js';

export const fakeClaude = path.join(repoRoot, '__tests__', 'fixtures', 'fake-claude.cjs');
/** The fake of each agent CLI (they play the same ticket scripts), and a model each accepts. */
export const fakeClis = {
  claude: { binary: fakeClaude, model: 'sonnet' },
  codex: { binary: path.join(repoRoot, '__tests__', 'fixtures', 'fake-codex.cjs'), model: 'gpt-5-codex' },
  gemini: { binary: path.join(repoRoot, '__tests__', 'fixtures', 'fake-gemini.cjs'), model: 'gemini-2.5-flash' },
  opencode: { binary: path.join(repoRoot, '__tests__', 'fixtures', 'fake-opencode.cjs'), model: 'anthropic/claude-sonnet-4-5' },
} as const;
export type CliName = keyof typeof fakeClis;

export interface EngineDaemon extends RunningDaemon {
  db(): Database.Database;
  project(name: string, type?: string, abbreviation?: string): Promise<{ id: number; abbreviation: string; path: string }>;
  ticket(project: string, column: string, script: unknown, title?: string, priority?: string): Promise<{ id: number; key: string }>;
  runs(ticketKey?: string): any[];
  ticketRow(key: string): any;
}

/**
 * The waits between runs of a ticket (after a failure, after a run that did not move it) are 0 here
 * unless a test sets them: most tests are about what happens, not when.
 */
export async function startEngineDaemon(opts: DaemonOptions & { config?: Record<string, unknown> } = {}): Promise<EngineDaemon> {
  const agents = { retry_backoff_seconds: 0, no_move_wait_seconds: 0, ...(opts.config?.agents as Record<string, unknown> | undefined) };
  // the other CLIs run their fakes too; claude's binary comes from DISPATCH_CLAUDE_BIN
  const clis = {
    codex: { binary: fakeClis.codex.binary },
    gemini: { binary: fakeClis.gemini.binary },
    opencode: { binary: fakeClis.opencode.binary },
  };
  const config = { ...opts.config, agents, clis: { ...clis, ...(opts.config?.clis as Record<string, unknown> | undefined) } };
  const d = (await startTestDaemon({ ...opts, config, env: { DISPATCH_CLAUDE_BIN: fakeClaude, ...opts.env } })) as EngineDaemon;
  let handle: Database.Database | null = null;
  d.db = () => (handle ??= new Database(path.join(d.home, 'tasks.db'), { readonly: true, fileMustExist: true }));
  const stop = d.stop.bind(d);
  d.stop = async (signal) => {
    handle?.close();
    handle = null;
    return stop(signal);
  };
  d.project = async (name, type = 'software-dev', abbreviation) => {
    const dir = path.join(d.projectsRoot, name);
    fs.mkdirSync(dir, { recursive: true });
    const res = await d.api('POST', '/api/projects', { path: dir, type, abbreviation });
    if (res.status !== 201) throw new Error(`register failed: ${JSON.stringify(res.body)}`);
    return res.body.project;
  };
  d.ticket = async (project, column, script, title = 'a ticket', priority = 'normal') => {
    const body =
      script === undefined ? 'no script' : `Scripted for the fake agent.\n\n\`\`\`fake-claude\n${JSON.stringify(script)}\n\`\`\`\n`;
    const res = await d.api('POST', '/api/tickets', { project, title, body, column, priority });
    if (res.status !== 201) throw new Error(`ticket failed: ${JSON.stringify(res.body)}`);
    return res.body.ticket;
  };
  d.runs = (ticketKey) => {
    if (!ticketKey) return d.db().prepare(`SELECT * FROM runs ORDER BY created_at, id`).all();
    const t = d.ticketRow(ticketKey);
    return d.db().prepare(`SELECT * FROM runs WHERE ticket_id = ? ORDER BY created_at, id`).all(t.id);
  };
  d.ticketRow = (key) => {
    const [abbr, n] = key.split('-');
    return d
      .db()
      .prepare(`SELECT t.* FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = ? AND t.number = ?`)
      .get(abbr, Number(n));
  };
  return d;
}

export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export function comments(d: EngineDaemon, key: string): any[] {
  return d.db().prepare(`SELECT * FROM comments WHERE ticket_id = ? ORDER BY id`).all(d.ticketRow(key).id);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Config for a daemon whose agents start and then wait (until killed): tickets stay where tests put them. */
export const WAITING_AGENTS = { agents: { env: { FAKE_CLAUDE_SCRIPT: JSON.stringify({ '*': [{ do: 'hang' }] }) } } };

/**
 * Files a ticket whose agent writes its environment to a file and then waits until killed; returns
 * the ticket and that environment (its DISPATCH_RUN_SECRET lets a test act as the agent).
 */
export async function agentAtWork(
  d: EngineDaemon,
  project: string,
  column: string,
  title: string,
): Promise<{ key: string; env: Record<string, string> }> {
  const envFile = path.join(d.root, `agent-${project}-${title.replace(/\W+/g, '-')}.env.json`);
  const { key } = await d.ticket(project, column, { [column]: [{ do: 'env', file: envFile }, { do: 'hang' }] }, title);
  const env = await waitFor(
    `${title}'s agent`,
    () =>
      fs.existsSync(envFile) && fs.statSync(envFile).size > 0 && (JSON.parse(fs.readFileSync(envFile, 'utf8')) as Record<string, string>),
    60_000,
  );
  return { key, env };
}

/** Kills every agent the daemon is running (through the API), so no test leaves processes behind. */
export async function killAgents(d: RunningDaemon): Promise<void> {
  const active = await d.api('GET', '/api/runs/active');
  for (const r of active.body?.runs ?? []) await d.api('POST', `/api/runs/${r.id}/kill`);
}

/** The most runs live at any one moment, from the runs table (reservation to end). */
export function maxOverlap(runs: { created_at: number; ended_at: number | null }[]): number {
  const events = runs.flatMap((r) => [
    [r.created_at, 1],
    [r.ended_at ?? Number.MAX_SAFE_INTEGER, -1],
  ]) as [number, number][];
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let live = 0;
  let max = 0;
  for (const [, delta] of events) max = Math.max(max, (live += delta));
  return max;
}
