// Agent runs: one spawn of an agent for a ticket. The row is the durable record the runtime
// writes at claim, spawn and finalize; history pages and the CLI read it. A transcript path is
// only ever taken from a run row and must resolve inside the runs folder, so no request can
// point the server at another file. Each run gets a secret for its agent's environment, stored
// here only as a hash: it is how bin/ticket.cjs knows which run (ticket, project, author) it acts for.
import { HUMAN } from './columns.js';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { NotFoundError, UserError } from './errors.js';
import { markDue } from './heartbeats.js';
import { addSystemComment, moveTicket } from './tickets.js';
import { agentsPaused } from './globalPause.js';
import { budgetBlock, type BudgetScope } from './costs.js';
import { cliPause, describeCliPause, setCliPause, type CliPause } from './cliPause.js';
import { recordNotification } from './notifications.js';
import { COUNTED_RUN, FREE_RATE_LIMITED_RUNS, nextAttemptAt, RUN_CAUSES, type RunCause } from './runCause.js';
import { effectiveParallelCoding } from './projects.js';
import { hashRunSecret } from './ticketRules.js';
import { editsWorkingTree, liveRun, PRIORITY_RANK, type Caps } from './caps.js';
import type { Db } from './db/connection.js';
import type { Store } from './store.js';

/** A run's columns as every reader sees them: never `secret_hash`, which only ticket.cjs looks up by. */
const RUN_COLUMNS = `id, ticket_id, project_id, agent_type_id, cli, model, column_id, job_id, attempt, status, pid, proc_start, exit_code, error, transcript_path, cwd, result_text, tokens_in, tokens_out, cost_usd, cause, runner_id, created_at, started_at, ended_at`;
const RUN_COLUMNS_R = RUN_COLUMNS.split(', ')
  .map((c) => `r.${c}`)
  .join(', ');

export const RUN_STATUS = {
  queued: 'queued',
  running: 'running',
  success: 'success',
  failed: 'failed',
  timeout: 'timeout',
  crashed: 'crashed',
  killed: 'killed',
} as const;
export type RunStatus = (typeof RUN_STATUS)[keyof typeof RUN_STATUS];
export const LIVE_STATUSES: readonly RunStatus[] = [RUN_STATUS.queued, RUN_STATUS.running];
export const RUN_STATUSES: readonly RunStatus[] = Object.values(RUN_STATUS);

export interface Run {
  id: string;
  ticket_id: number;
  project_id: number;
  agent_type_id: string;
  /** the agent CLI the run was started with (lib/clis/): its transcript's format and its pause */
  cli: string;
  model: string;
  column_id: string;
  job_id: string | null;
  attempt: number;
  status: RunStatus;
  pid: number | null;
  proc_start: string | null;
  exit_code: number | null;
  error: string | null;
  transcript_path: string | null;
  cwd: string | null;
  result_text: string | null;
  tokens_in: number | null;
  tokens_out: number | null;
  cost_usd: number | null;
  /** why a failed run failed (lib/runCause.ts); null for a run that did not fail */
  cause: RunCause | null;
  /** the runner that took the run (lib/runners.ts); null: it runs on this machine */
  runner_id: number | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
}

export function listRunsForTicket(db: Db, ticketId: number): Run[] {
  return db.prepare(`SELECT ${RUN_COLUMNS} FROM runs WHERE ticket_id = ? ORDER BY created_at, id`).all(ticketId) as Run[];
}

export const FAILURE_STATUSES: readonly RunStatus[] = [RUN_STATUS.failed, RUN_STATUS.timeout, RUN_STATUS.crashed];
export type FinalStatus = Exclude<RunStatus, 'queued' | 'running'>;

export function getRun(db: Db, id: string): Run | undefined {
  return db.prepare(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = ?`).get(id) as Run | undefined;
}

/** A run with its ticket's key and title; NotFoundError for an unknown or malformed id. */
export function requireRun(db: Db, id: string): RunListItem {
  const row = RUN_ID.test(id)
    ? (db
        .prepare(
          `SELECT ${RUN_COLUMNS_R}, p.abbreviation || '-' || t.number AS ticket_key, t.title AS ticket_title
           FROM runs r JOIN tickets t ON t.id = r.ticket_id JOIN projects p ON p.id = t.project_id WHERE r.id = ?`,
        )
        .get(id) as RunListItem | undefined)
    : undefined;
  if (!row) throw new NotFoundError('run', id);
  return row;
}

/**
 * The run's transcript file, or null when it has none yet. Throws when the recorded path (or the
 * file it links to) lies outside `runsDir`.
 */
export function transcriptFile(runsDir: string, run: Pick<Run, 'id' | 'transcript_path'>): string | null {
  if (!run.transcript_path) return null;
  const root = path.resolve(runsDir);
  const inside = (p: string, base: string) => {
    const rel = path.relative(base, p);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  const file = path.resolve(root, run.transcript_path);
  if (!inside(file, root)) throw new UserError(`run ${run.id}: transcript path is outside the runs folder`, 'transcript_path');
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return null;
  }
  if (!inside(real, fs.realpathSync(root)))
    throw new UserError(`run ${run.id}: transcript path is outside the runs folder`, 'transcript_path');
  return real;
}

export function liveRuns(db: Db): Run[] {
  return db.prepare(`SELECT ${RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at`).all() as Run[];
}

export interface RunListFilter {
  ticketId?: number;
  projectId?: number;
  status?: RunStatus;
  cause?: RunCause;
  limit?: number;
  offset?: number;
}

export interface RunListItem extends Run {
  ticket_key: string;
  ticket_title: string;
}

/** Recent runs across projects, newest first, with their ticket's key and title. */
export function listRuns(db: Db, filter: RunListFilter = {}): RunListItem[] {
  if (filter.status !== undefined && !RUN_STATUSES.includes(filter.status))
    throw new UserError(`status must be one of ${RUN_STATUSES.join(', ')}`, 'status');
  if (filter.cause !== undefined && !RUN_CAUSES.includes(filter.cause)) {
    throw new UserError(`cause must be one of ${RUN_CAUSES.join(', ')}`, 'cause');
  }
  return db
    .prepare(
      `SELECT ${RUN_COLUMNS_R}, p.abbreviation || '-' || t.number AS ticket_key, t.title AS ticket_title
       FROM runs r JOIN tickets t ON t.id = r.ticket_id JOIN projects p ON p.id = r.project_id
       WHERE (@ticket IS NULL OR r.ticket_id = @ticket) AND (@project IS NULL OR r.project_id = @project) AND (@status IS NULL OR r.status = @status)
         AND (@cause IS NULL OR r.cause = @cause)
       ORDER BY r.created_at DESC, r.id DESC LIMIT @limit OFFSET @offset`,
    )
    .all({
      ticket: filter.ticketId ?? null,
      project: filter.projectId ?? null,
      status: filter.status ?? null,
      cause: filter.cause ?? null,
      limit: Math.min(Math.max(filter.limit ?? 50, 1), 500),
      offset: Math.max(filter.offset ?? 0, 0),
    }) as RunListItem[];
}

/** Run ids are generated here only: sortable by time, safe as a file name. */
export function newRunId(at = Date.now()): string {
  return `${at.toString(36)}-${randomBytes(4).toString('hex')}`;
}
/** What a run id may look like anywhere it arrives from outside (no dots, no slashes). */
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/** The form a run secret is stored in: bin/ticket.cjs hashes the secret it is given with the same function. */
export { hashRunSecret };

/**
 * Gives a run that is about to start its secret: returns it (for the agent's environment, nowhere
 * else) and stores only its hash. Null when the run is no longer queued: it must not start. A run
 * started again after a crash before its spawn gets a new secret that replaces the old one.
 */
export function issueRunSecret(db: Db, runId: string): string | null {
  const secret = randomBytes(32).toString('base64url');
  const issued = db.prepare(`UPDATE runs SET secret_hash = ? WHERE id = ? AND status = 'queued'`).run(hashRunSecret(secret), runId);
  return issued.changes === 1 ? secret : null;
}

export type { Caps };

/** True when the secret is a run's that went to a runner (only those call the daemon's ticket path, /api/agent/ticket). */
export function isRemoteRunSecret(db: Db, secret: string): boolean {
  if (!secret) return false;
  return db.prepare(`SELECT 1 FROM runs WHERE secret_hash = ? AND runner_id IS NOT NULL`).get(hashRunSecret(secret)) !== undefined;
}

export type Reservation =
  | { kind: 'reserved'; run: Run }
  | { kind: 'global-cap' | 'project-cap' | 'serial' | 'stale' | 'paused' }
  | { kind: 'budget'; scope: BudgetScope }
  /** the agent CLI is paused (a usage limit, a login or setup problem) */
  | { kind: 'cli-paused'; pause: CliPause }
  /** the ticket waits after a failed run or a run that did not move it */
  | { kind: 'backoff'; until: number }
  /** the ticket used up its runs and was sent to human */
  | { kind: 'capped' };

/** Runs of a ticket since it was filed or last left human (a person's decision to let agents work on it). */
export function runsSinceHuman(db: Db, ticketId: number): number {
  return (
    db
      .prepare(
        `SELECT COUNT(*) AS n FROM runs WHERE ticket_id = @t AND ${COUNTED_RUN} AND created_at >= COALESCE((
           SELECT MAX(created_at) FROM comments
           WHERE ticket_id = @t AND type = 'move' AND (from_column IS NULL OR from_column = 'human')), 0)`,
      )
      .get({ t: ticketId }) as { n: number }
  ).n;
}

/**
 * Claims a ticket for a new run: one IMMEDIATE transaction that re-reads the ticket (still in the
 * column, unclaimed, no live run, its project active, agents not paused globally), checks today's
 * recorded cost against the daily budgets (global, then the project's own; the day is the local day
 * of `now`), counts live runs against both caps and the serial rule (in a project whose agents share
 * its folder, one run of an agent type that edits the working tree at a time), and inserts the run
 * and the claim. Caps and spend are counted from the runs table, so they hold across restarts and no
 * await can sit between the check and the reservation. A ticket that has had `caps.perTicket` runs
 * since it last left human is sent there instead, so two agents cannot pass it back and forth forever.
 */
export function reserveRun(
  store: Store,
  args: {
    ticketId: number;
    columnId: string;
    agentTypeId: string;
    model: string;
    caps: Caps;
    now?: number;
    /** the caller found the project folder is not a repository with a commit: its agents work in it whatever the setting */
    inFolder?: boolean;
  },
): Reservation {
  const { db } = store;
  return db
    .transaction((): Reservation => {
      const t = db
        .prepare(
          `SELECT t.id, t.project_id, t.column_id, t.claimed_by_run, t.archived_at, t.column_entered_at,
           p.status AS project_status, p.daily_budget_usd, p.parallel_coding
         FROM tickets t JOIN projects p ON p.id = t.project_id WHERE t.id = ?`,
        )
        .get(args.ticketId) as ReservedTicket | undefined;
      if (!t || t.column_id !== args.columnId || t.claimed_by_run !== null || t.archived_at !== null || t.project_status !== 'active')
        return { kind: 'stale' };
      if (agentsPaused(db)) return { kind: 'paused' };
      const now = args.now ?? Date.now();
      const cli =
        (db.prepare(`SELECT cli FROM agent_types WHERE id = ?`).get(args.agentTypeId) as { cli: string } | undefined)?.cli ?? 'claude';
      const held = cliPause(db, cli, now);
      if (held) return { kind: 'cli-paused', pause: held };
      const over = budgetBlock(db, t.project_id, t.daily_budget_usd, args.caps.dailyBudgetUsd ?? 0, now);
      if (over) return { kind: 'budget', scope: over };
      // a live run whose claim was cleared under it: a second one would break the one-live-run index
      if (db.prepare(`SELECT 1 FROM runs WHERE ticket_id = ? AND status IN ('queued', 'running')`).get(t.id)) return { kind: 'stale' };
      const waitUntil = args.caps.backoff ? nextAttemptAt(db, t, args.caps.backoff) : null;
      if (waitUntil !== null && waitUntil > now) return { kind: 'backoff', until: waitUntil };
      const used = runsSinceHuman(db, t.id);
      if (used >= args.caps.perTicket) {
        const why =
          `Run limit: this ticket had ${used} agent runs since it last left human (agents.max_runs_per_ticket is ${args.caps.perTicket}). ` +
          `Agents may be passing it back and forth; read the thread and the runs' transcripts, then move the ticket where it should go.`;
        moveTicket(store, t.id, HUMAN, { actor: 'system', comment: why });
        return { kind: 'capped' };
      }
      const live = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running')`).get() as { n: number };
      if (live.n >= args.caps.global) return { kind: 'global-cap' };
      const mine = db
        .prepare(`SELECT COUNT(*) AS n FROM runs WHERE project_id = ? AND status IN ('queued', 'running')`)
        .get(t.project_id) as { n: number };
      if (mine.n >= args.caps.perProject) return { kind: 'project-cap' };
      // agents sharing the project folder: one that edits the working tree at a time
      const inFolder = args.inFolder === true || !effectiveParallelCoding(t, args.caps.parallelCoding);
      if (inFolder) {
        const busy = db
          .prepare(
            `SELECT 1 FROM runs r WHERE r.project_id = @project AND ${liveRun('r')}
             AND ${editsWorkingTree('r.agent_type_id')} = 1 AND ${editsWorkingTree('@agentType')} = 1 LIMIT 1`,
          )
          .get({ project: t.project_id, agentType: args.agentTypeId });
        if (busy) return { kind: 'serial' };
      }
      const prior = db
        .prepare(`SELECT COUNT(*) AS n FROM runs WHERE ticket_id = ? AND column_id = ? AND created_at >= ?`)
        .get(t.id, t.column_id, t.column_entered_at) as { n: number };
      const id = newRunId(now);
      db.prepare(
        `INSERT INTO runs (id, ticket_id, project_id, agent_type_id, cli, model, column_id, attempt, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)`,
      ).run(id, t.id, t.project_id, args.agentTypeId, cli, args.model, t.column_id, prior.n + 1, now);
      db.prepare(`UPDATE tickets SET claimed_by_run = ?, claimed_at = ? WHERE id = ?`).run(id, now, t.id);
      addSystemComment(
        db,
        t.id,
        'claim',
        `${args.agentTypeId} run ${id} claimed the ticket (attempt ${prior.n + 1})`,
        `${args.agentTypeId}:${id}`,
      );
      return { kind: 'reserved', run: getRun(db, id)! };
    })
    .immediate();
}

interface ReservedTicket {
  id: number;
  project_id: number;
  column_id: string;
  claimed_by_run: string | null;
  archived_at: number | null;
  column_entered_at: number;
  project_status: string;
  daily_budget_usd: number | null;
  parallel_coding: number | null;
}

export function markRunStarted(
  db: Db,
  id: string,
  s: { pid: number; procStart: string | null; transcriptPath: string; cwd: string; jobId: string | null },
): boolean {
  return (
    db
      .prepare(
        `UPDATE runs SET status = 'running', pid = ?, proc_start = ?, transcript_path = ?, cwd = ?, job_id = COALESCE(?, job_id), started_at = ? WHERE id = ? AND status = 'queued'`,
      )
      .run(s.pid, s.procStart, s.transcriptPath, s.cwd, s.jobId, Date.now(), id).changes === 1
  );
}

/**
 * A runner's first heartbeat with its agent's pid: the run is running. That pid is on the runner's
 * machine, so it goes to runner_pid, never to runs.pid (which names processes of this machine).
 */
export function markRemoteRunStarted(db: Db, id: string, s: { runnerPid: number; transcriptPath: string; jobId: string | null }): boolean {
  return (
    db
      .prepare(
        `UPDATE runs SET status = 'running', runner_pid = ?, transcript_path = COALESCE(transcript_path, ?), job_id = COALESCE(?, job_id),
           started_at = ? WHERE id = ? AND status = 'queued' AND runner_id IS NOT NULL`,
      )
      .run(s.runnerPid, s.transcriptPath, s.jobId, Date.now(), id).changes === 1
  );
}

/** A runner's heartbeat for a run: when, and how many transcript bytes the daemon holds. */
export function recordBeat(db: Db, id: string, beat: { at: number; transcriptPath?: string; transcriptBytes?: number }): void {
  db.prepare(
    `UPDATE runs SET beat_at = ?, transcript_path = COALESCE(transcript_path, ?), transcript_bytes = COALESCE(?, transcript_bytes)
     WHERE id = ?`,
  ).run(beat.at, beat.transcriptPath ?? null, beat.transcriptBytes ?? null, id);
}

export interface RunOutcome {
  status: FinalStatus;
  exitCode: number | null;
  error: string | null;
  resultText?: string | null;
  tokensIn?: number | null;
  tokensOut?: number | null;
  costUsd?: number | null;
  transcriptPath?: string | null;
  /**
   * A `killed` run stopped by a pause or an archive: its ticket stays in its column, unclaimed, and
   * the run counts toward neither the retries nor the circuit breaker (a user's kill parks it in human).
   */
  keepInColumn?: boolean;
  /** why a failed run failed */
  cause?: RunCause | null;
  /** a usage limit, login or setup problem: pause the CLI's dispatching (recorded in the same transaction) */
  pause?: Pick<CliPause, 'cause' | 'until' | 'resetsAt' | 'limitType' | 'fix'>;
}

export interface Policy {
  circuitBreakerMaxRuns: number;
  maxRetries: number;
}

export interface Finalized {
  run: Run;
  /** why the ticket was sent to `human`, when it was */
  sentToHuman: string | null;
}

/**
 * Ends a run exactly once: the status update is conditional on the run still being live, so a
 * second finalize (recovery racing a watcher) changes nothing and returns null. In the same
 * transaction the claim is released (the claim MUST be released whatever happened), the outcome
 * is written to the history, and the retry limit and circuit breaker may send the ticket to human.
 */
export function finalizeRun(store: Store, id: string, outcome: RunOutcome, policy: Policy): Finalized | null {
  const { db } = store;
  return db
    .transaction((): Finalized | null => {
      const changed = db
        .prepare(
          `UPDATE runs SET status = ?, exit_code = ?, error = ?, cause = ?, result_text = COALESCE(?, result_text), tokens_in = COALESCE(?, tokens_in),
           tokens_out = COALESCE(?, tokens_out), cost_usd = COALESCE(?, cost_usd), transcript_path = COALESCE(?, transcript_path), ended_at = ?
         WHERE id = ? AND status IN ('queued', 'running')`,
        )
        .run(
          outcome.status,
          outcome.exitCode,
          outcome.error,
          outcome.cause ?? null,
          outcome.resultText ?? null,
          outcome.tokensIn ?? null,
          outcome.tokensOut ?? null,
          outcome.costUsd ?? null,
          outcome.transcriptPath ?? null,
          Date.now(),
          id,
        ).changes;
      if (changed === 0) return null;
      const run = getRun(db, id)!;
      db.prepare(`UPDATE tickets SET claimed_by_run = NULL, claimed_at = NULL WHERE id = ? AND claimed_by_run = ?`).run(run.ticket_id, id);
      const failed = FAILURE_STATUSES.includes(outcome.status);
      // a usage limit, a login or a setup problem is not the ticket's: it stays in its column, unclaimed,
      // and the run counts toward neither the retries nor the breaker
      const neutral = failed && outcome.pause !== undefined;
      if (neutral) {
        const pause: CliPause = { ...outcome.pause!, cli: run.cli, runId: id, since: Date.now() };
        setCliPause(db, pause);
        recordNotification(db, {
          kind: 'paused',
          title: 'Agents paused',
          body: describeCliPause(pause),
          dedupeKey: `pause:${pause.cli}:${pause.cause}:${pause.until ?? pause.since}`,
        });
        const note =
          `The ${run.agent_type_id} run ${id} did not start work: ${outcome.error ?? pause.cause}. Dispatching is paused ` +
          `(${describeCliPause(pause)}); the ticket stays in ${run.column_id} and this run counts as no retry.`;
        addSystemComment(db, run.ticket_id, 'system', note, 'system');
      } else if (failed) addSystemComment(db, run.ticket_id, 'system', describeFailure(run, outcome), 'system');
      const halted = neutral || (outcome.status === RUN_STATUS.killed && outcome.keepInColumn === true);
      if (halted && !neutral) {
        const note = `The ${run.agent_type_id} run ${id} was stopped: ${outcome.error ?? 'paused'}. The ticket stays in ${run.column_id}, unclaimed.`;
        addSystemComment(db, run.ticket_id, 'system', note, 'system');
      }
      const ticket = db
        .prepare(
          `SELECT t.column_id, t.column_entered_at, t.archived_at, p.status AS project_status
         FROM tickets t JOIN projects p ON p.id = t.project_id WHERE t.id = ?`,
        )
        .get(run.ticket_id) as { column_id: string; column_entered_at: number; archived_at: number | null; project_status: string };
      let sentToHuman: string | null = null;
      // an archived project's tickets stay where they are (lib/tickets.ts refuses moves there)
      const stillHere = ticket.column_id === run.column_id && ticket.archived_at === null && run.column_id !== HUMAN;
      if (!halted && stillHere && ticket.project_status !== 'archived') {
        // killed runs are not counted: a user's kill or a move away parks or moves the ticket, and a pause keeps it here
        const here = db
          .prepare(
            `SELECT status, cause FROM runs WHERE ticket_id = ? AND column_id = ? AND created_at >= ? AND status != 'killed' AND ${COUNTED_RUN}
           ORDER BY created_at, id`,
          )
          .all(run.ticket_id, run.column_id, ticket.column_entered_at) as { status: RunStatus; cause: RunCause | null }[];
        // rate-limited runs in a row count against max_retries only once their backoff is spent
        let failuresInARow = 0;
        let rateLimited = 0;
        for (let i = here.length - 1; i >= 0 && FAILURE_STATUSES.includes(here[i]!.status); i--) {
          if (here[i]!.cause === 'rate_limited' && ++rateLimited <= FREE_RATE_LIMITED_RUNS) continue;
          failuresInARow++;
        }
        // the breaker is about agents that run without moving the ticket: an overloaded API is not that
        const breakerRuns = here.filter((r) => r.cause !== 'rate_limited').length;
        if (outcome.status === RUN_STATUS.killed) {
          sentToHuman = `The ${run.agent_type_id} run ${id} was stopped by the user; the ticket waits here so it is not started again.`;
        } else if (failed && failuresInARow > policy.maxRetries) {
          sentToHuman = `Gave up after ${failuresInARow} failed ${run.agent_type_id} runs in a row (max_retries is ${policy.maxRetries}). Last error: ${outcome.error ?? 'none recorded'}`;
        } else if (breakerRuns >= policy.circuitBreakerMaxRuns) {
          sentToHuman = `Circuit breaker: ${run.agent_type_id} ran ${breakerRuns} times on this ticket without moving it (limit ${policy.circuitBreakerMaxRuns}). Look at the runs' transcripts, then move the ticket where it should go.`;
        }
        if (sentToHuman) moveTicket(store, run.ticket_id, HUMAN, { actor: 'system', comment: sentToHuman });
      }
      return { run: getRun(db, id)!, sentToHuman };
    })
    .immediate();
}

function describeFailure(run: Run, o: RunOutcome): string {
  const what = o.status === 'timeout' ? 'timed out and was killed with its process tree' : o.status === 'crashed' ? 'crashed' : 'failed';
  return `The ${run.agent_type_id} run ${run.id} ${what}${o.exitCode !== null ? ` (exit code ${o.exitCode})` : ''}${o.error ? `: ${o.error}` : '.'}`;
}

export interface LiveRunCheck {
  id: string;
  started_at: number | null;
  timeout_minutes: number;
  /** the ticket left the run's column (or was archived) */
  off_column: number;
  /** the ticket was closed (archived) */
  closed: number;
  ticket_column: string;
  moved_by: string | null;
}

/** What the runtime's watch needs to know about its live runs, in one query. */
export function liveRunChecks(db: Db, runIds: string[]): LiveRunCheck[] {
  if (runIds.length === 0) return [];
  return db
    .prepare(
      `SELECT r.id, r.started_at, COALESCE(a.timeout_minutes, 30) AS timeout_minutes, t.column_id AS ticket_column,
         (t.column_id != r.column_id OR t.archived_at IS NOT NULL) AS off_column, (t.archived_at IS NOT NULL) AS closed,
         (SELECT author FROM comments WHERE ticket_id = t.id AND type = 'move' ORDER BY id DESC LIMIT 1) AS moved_by
       FROM runs r JOIN tickets t ON t.id = r.ticket_id LEFT JOIN agent_types a ON a.id = r.agent_type_id
       WHERE r.id IN (SELECT value FROM json_each(?)) AND r.status IN ('queued', 'running')`,
    )
    .all(JSON.stringify(runIds)) as LiveRunCheck[];
}

export interface Claimable {
  ticket_id: number;
  column_id: string;
  agent_type_id: string;
  model: string;
}

/** Unclaimed tickets waiting in a project's agent columns: most urgent first, then oldest in the column. */
export function claimableTickets(db: Db, projectId: number, limit = 200): Claimable[] {
  return db
    .prepare(
      // from the project's agent columns to their tickets (CROSS JOIN keeps that order): starting
      // from the tickets read every ticket of the project, done ones included
      `SELECT t.id AS ticket_id, t.column_id, pc.agent_type_id, a.model
       FROM project_columns pc
       CROSS JOIN tickets t ON t.project_id = pc.project_id AND t.column_id = pc.column_id
       JOIN agent_types a ON a.id = pc.agent_type_id
       WHERE pc.project_id = ? AND t.claimed_by_run IS NULL AND t.archived_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.ticket_id = t.id AND r.status IN ('queued', 'running'))
       ORDER BY ${PRIORITY_RANK}, t.column_entered_at, t.id
       LIMIT ?`,
    )
    .all(projectId, limit) as Claimable[];
}

interface StaleClaim {
  id: number;
  project_id: number;
  claimed_by_run: string;
}

/**
 * Releases claims whose run is not live: an ended run, or an id no run has (a claim written by
 * hand, a restored backup). Such a claim would keep its ticket "running" forever. Each release
 * writes a system comment and marks the project due. Reads first and opens a write transaction
 * only when there is something to release: every scan calls it for its project.
 */
export function releaseStaleClaims(db: Db, projectId?: number): number {
  const notLive = `NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = t.claimed_by_run AND r.status IN ('queued', 'running'))`;
  const stale = (
    projectId === undefined
      ? db.prepare(`SELECT t.id, t.project_id, t.claimed_by_run FROM tickets t WHERE t.claimed_by_run IS NOT NULL AND ${notLive}`).all()
      : db
          .prepare(
            `SELECT t.id, t.project_id, t.claimed_by_run FROM tickets t
                    WHERE t.project_id = ? AND t.claimed_by_run IS NOT NULL AND ${notLive}`,
          )
          .all(projectId)
  ) as StaleClaim[];
  if (stale.length === 0) return 0;
  return db
    .transaction(() => {
      let released = 0;
      for (const s of stale) {
        const changed = db
          .prepare(
            `UPDATE tickets AS t SET claimed_by_run = NULL, claimed_at = NULL WHERE t.id = ? AND t.claimed_by_run = ? AND ${notLive}`,
          )
          .run(s.id, s.claimed_by_run).changes;
        if (changed === 0) continue;
        released++;
        const holder = s.claimed_by_run.length > 100 ? `${s.claimed_by_run.slice(0, 100)}…` : s.claimed_by_run;
        const note = `Released a claim held by "${holder}", which is not a live run; the ticket can be picked up again.`;
        addSystemComment(db, s.id, 'system', note);
        markDue(db, s.project_id);
      }
      return released;
    })
    .immediate();
}
