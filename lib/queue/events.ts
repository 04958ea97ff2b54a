// The attempt history of every job (job_events), kept in the daemon's SQLite database whatever the
// queue backend: liteque deletes completed jobs and BullMQ is told to, so the inspector's attempts,
// errors and "completed in 24 h" come from here. One row per attempt, opened at the claim.
import type { Db } from '../db/connection.js';
import type { QueueName } from './types.js';

export interface JobEvent {
  id: number;
  job_id: string;
  queue: string;
  attempt: number;
  outcome: 'running' | 'completed' | 'retry' | 'failed' | 'crashed' | 'cancelled';
  payload: string;
  error: string | null;
  started_at: number;
  ended_at: number | null;
}

export function openEvent(db: Db, jobId: string, queue: QueueName, attempt: number, payload: string, now = Date.now()): number {
  return Number(
    db
      .prepare(`INSERT INTO job_events (job_id, queue, attempt, outcome, payload, started_at) VALUES (?, ?, ?, 'running', ?, ?)`)
      .run(jobId, queue, attempt, payload, now).lastInsertRowid,
  );
}

export function closeEvent(db: Db, eventId: number, outcome: 'completed' | 'retry' | 'failed', error: string | null, now = Date.now()) {
  db.prepare(`UPDATE job_events SET outcome = ?, error = ?, ended_at = ? WHERE id = ? AND outcome = 'running'`).run(
    outcome,
    error,
    now,
    eventId,
  );
}

/** Closes every open attempt as crashed (startup recovery: no attempt of a dead daemon is still running). */
export function crashOpenEvents(db: Db, now = Date.now()): number {
  return db
    .prepare(
      `UPDATE job_events SET outcome = 'crashed', ended_at = ?, error = 'the daemon stopped while this attempt ran'
       WHERE outcome = 'running'`,
    )
    .run(now).changes;
}

/** A job's attempts, including those of jobs that already completed (their rows are gone from the queue). */
export function jobEvents(db: Db, jobId: string): JobEvent[] {
  return db.prepare(`SELECT * FROM job_events WHERE job_id = ? ORDER BY id`).all(jobId) as JobEvent[];
}

export function recentJobEvents(db: Db, limit = 50): JobEvent[] {
  return db.prepare(`SELECT * FROM job_events ORDER BY id DESC LIMIT ?`).all(Math.min(Math.max(limit, 1), 500)) as JobEvent[];
}

/** The newest recorded error of each of a page of jobs, by job id (one indexed query per page). */
export function lastJobErrors(db: Db, jobIds: readonly string[]): Map<string, string> {
  if (jobIds.length === 0) return new Map();
  const ids = jobIds.slice(0, 500);
  const rows = db
    .prepare(
      `SELECT job_id, error FROM job_events WHERE id IN
         (SELECT MAX(id) FROM job_events WHERE job_id IN (${ids.map(() => '?').join(', ')}) AND error IS NOT NULL GROUP BY job_id)`,
    )
    .all(...ids) as { job_id: string; error: string }[];
  return new Map(rows.map((r) => [r.job_id, r.error]));
}

/** Jobs completed per queue since `since`. */
export function completedSince(db: Db, since: number): Map<string, number> {
  const rows = db
    .prepare(`SELECT queue, COUNT(*) AS n FROM job_events WHERE outcome = 'completed' AND ended_at >= ? GROUP BY queue`)
    .all(since) as { queue: string; n: number }[];
  return new Map(rows.map((r) => [r.queue, r.n]));
}

/** Deletes attempt records that ended before `cutoff` (never a running one). */
export function pruneEvents(db: Db, cutoff: number): number {
  return db.prepare(`DELETE FROM job_events WHERE outcome != 'running' AND ended_at < ?`).run(cutoff).changes;
}
