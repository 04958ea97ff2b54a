// Why a run failed, and what that means for the next one. Every failed run gets one cause, read
// from how it ended (exit code, launch error, timeout) and from the CLI's stream-json (the result's
// `api_error_status`, a `rate_limit_event` with status `rejected`):
//   usage_limit   the subscription's usage limit is used up; nothing helps before its reset time
//   rate_limited  429 without a reset time, 529 (overloaded), other 5xx: try again later
//   auth          401/403, not logged in: no run can work until someone fixes the login
//   config        the agent binary, the ticket tool or the prompt file is missing or unusable
//   agent         the agent's own failure: an error result, a non-zero exit, a timeout
// usage_limit, auth and config are not the ticket's fault: such a run is no retry and no breaker
// strike, and the CLI's dispatching pauses (lib/cliPause.ts). The waits between runs of one ticket
// are derived from the runs table alone, so they hold across restarts without a timer.
import { createHash } from 'node:crypto';
import type { RateLimitInfo, TranscriptSummary } from './transcript.js';
import type { Db } from './db/connection.js';

export const RUN_CAUSES = ['usage_limit', 'rate_limited', 'auth', 'config', 'agent'] as const;
export type RunCause = (typeof RUN_CAUSES)[number];
/** Causes that say nothing about the ticket: the run counts toward neither retries nor the breaker. */
const NEUTRAL_CAUSES: readonly RunCause[] = ['usage_limit', 'auth', 'config'];
/** SQL for "this run counts toward a ticket's retries, breaker and run limit" (runs aliased as the table name). */
export const COUNTED_RUN = `(cause IS NULL OR cause NOT IN (${NEUTRAL_CAUSES.map((c) => `'${c}'`).join(', ')}))`;
/** Rate-limited runs in a row that are free: only later ones count against max_retries. */
export const FREE_RATE_LIMITED_RUNS = 3;

export interface Classified {
  cause: RunCause;
  /** usage_limit: when the limit resets (ms since the epoch) */
  resetsAt?: number;
  /** usage_limit: the CLI's name for the limit (five_hour, seven_day, …) */
  limitType?: string;
}

const LIMIT_TEXT = /\bhit your .*limit\b/i;
const AUTH_TEXT = /not logged in|please run \/login|invalid api key|authentication_error|oauth token (has )?expired/i;

/**
 * The cause of a run that ended with an error result or a non-zero exit. `now` is the clock used
 * when the CLI named no reset time (a limit result without a rate_limit_event).
 */
export function classifyEnd(end: { result: TranscriptSummary | null; rateLimit: RateLimitInfo | null }, now: number): Classified {
  const { result, rateLimit } = end;
  const status = result?.apiErrorStatus ?? null;
  const text = result?.isError ? result.resultText : '';
  if (rateLimit?.status === 'rejected' && (status === 429 || status === null || LIMIT_TEXT.test(text))) {
    return { cause: 'usage_limit', resetsAt: rateLimit.resetsAt ?? resetFromText(text, now), limitType: rateLimit.limitType || 'unknown' };
  }
  if (status === 429 && LIMIT_TEXT.test(text)) return { cause: 'usage_limit', resetsAt: resetFromText(text, now), limitType: 'unknown' };
  if (status === 429 || status === 529 || (status !== null && status >= 500 && status <= 599)) return { cause: 'rate_limited' };
  if (status === 401 || status === 403 || (result?.isError && AUTH_TEXT.test(text))) return { cause: 'auth' };
  return { cause: 'agent' };
}

/**
 * The reset time in a limit message ("resets 7:15am (UTC)"): the next such moment after `now`.
 * Only a UTC time can be read without the CLI's time zone; otherwise an hour from now.
 */
export function resetFromText(text: string, now: number): number {
  const m = /resets\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\s*\(UTC\)/i.exec(text);
  if (!m) return now + 3600_000;
  let hour = Number(m[1]) % 12;
  if (!m[3]) hour = Number(m[1]);
  else if (m[3].toLowerCase() === 'pm') hour += 12;
  const d = new Date(now);
  let at = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), hour, Number(m[2] ?? 0));
  if (at <= now) at += 24 * 3600_000;
  return at;
}

export interface Backoff {
  /** the first wait after a failed run; each further failure in a row waits 4 times longer (capped) */
  retrySeconds: number;
  /** the first wait after a run that ended without moving its ticket; the next ones wait 5 times longer */
  noMoveSeconds: number;
}

export function backoffOf(agents: { retry_backoff_seconds: number; no_move_wait_seconds: number }): Backoff {
  return { retrySeconds: agents.retry_backoff_seconds, noMoveSeconds: agents.no_move_wait_seconds };
}

const MAX_RETRY_WAIT_MS = 3600_000;

/** A stable factor in [0.8, 1.2) from the run id: the jitter survives a restart and differs between tickets. */
function jitter(runId: string): number {
  return 0.8 + (createHash('sha256').update(runId).digest().readUInt32BE(0) / 2 ** 32) * 0.4;
}

/** The wait after the `n`th failure in a row (1-based): 30 s, 2 min, 8 min, 32 min… with jitter, capped at an hour. */
export function retryWaitMs(b: Backoff, n: number, runId: string): number {
  return Math.min(MAX_RETRY_WAIT_MS, b.retrySeconds * 1000 * 4 ** Math.max(0, n - 1) * jitter(runId));
}

/** The wait after the `n`th run in a row that ended without moving its ticket: 2 min, then 10 min. */
export function noMoveWaitMs(b: Backoff, n: number): number {
  return b.noMoveSeconds * 1000 * (n > 1 ? 5 : 1);
}

interface EndedRun {
  id: string;
  status: string;
  cause: RunCause | null;
  ended_at: number;
}

/**
 * When the ticket's next run may start in its column, or null when it may start now: after a
 * failure, a backoff that grows with the failures in a row; after a run that ended without moving
 * the ticket, a wait that grows with such runs in a row. Counted runs since the ticket entered the column only.
 */
export function nextAttemptAt(db: Db, t: { id: number; column_id: string; column_entered_at: number }, b: Backoff): number | null {
  const recent = db
    .prepare(
      `SELECT id, status, cause, ended_at FROM runs
       WHERE ticket_id = ? AND column_id = ? AND created_at >= ? AND status NOT IN ('queued', 'running', 'killed') AND ${COUNTED_RUN}
       ORDER BY created_at DESC, id DESC LIMIT 20`,
    )
    .all(t.id, t.column_id, t.column_entered_at) as EndedRun[];
  const last = recent[0];
  if (!last || last.ended_at === null) return null;
  let n = 0;
  if (last.status === 'success') {
    while (n < recent.length && recent[n]!.status === 'success') n++;
    return last.ended_at + noMoveWaitMs(b, n);
  }
  const limited = last.cause === 'rate_limited';
  while (n < recent.length && recent[n]!.status !== 'success' && (recent[n]!.cause === 'rate_limited') === limited) n++;
  return last.ended_at + retryWaitMs(b, n, last.id);
}

/** The previous counted run in this column, when it ended without moving the ticket (for the next run's task message). */
export function lastRunWithoutMove(
  db: Db,
  t: { id: number; column_id: string; column_entered_at: number },
  beforeRun: string,
): { id: string; result_text: string | null } | null {
  const row = db
    .prepare(
      `SELECT id, status, result_text FROM runs
       WHERE ticket_id = ? AND column_id = ? AND created_at >= ? AND id != ?
         AND status NOT IN ('queued', 'running', 'killed') AND ${COUNTED_RUN}
       ORDER BY created_at DESC, id DESC LIMIT 1`,
    )
    .get(t.id, t.column_id, t.column_entered_at, beforeRun) as { id: string; status: string; result_text: string | null } | undefined;
  return row?.status === 'success' ? { id: row.id, result_text: row.result_text } : null;
}
