// Every durable queue is declared here and nowhere else: name, payload schema, retry defaults and
// the idempotency key of each job. The queues are liteque tables inside tasks.db, so a backup holds
// them too. liteque owns the table, its migrations and enqueue. We never run liteque's Runner (its
// timeout does not stop work and its loop polls blindly); lib/pool.ts claims a job with claimJob
// when it has capacity and when poked, and ends it with finishJob (each one transaction).
// Failed jobs are kept (keepFailedJobs) so the inspector can show and retry them, for
// `queue.keep_days` like the attempt history (pruneQueueHistory); every key is unique per event,
// so a kept failure never blocks a later job.
import { randomUUID } from 'node:crypto';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrateDB, SqliteQueue } from 'liteque';
import { z } from 'zod';
import type { Db } from './db/connection.js';

export const QUEUE = { scan: 'scan', agentRun: 'agent-run', merge: 'merge', notify: 'notify' } as const;
export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];
export const QUEUE_NAMES: readonly QueueName[] = Object.values(QUEUE);

export const JOB_STATUS = { pending: 'pending', pendingRetry: 'pending_retry', running: 'running', failed: 'failed' } as const;
export type JobStatus = (typeof JOB_STATUS)[keyof typeof JOB_STATUS];

/** scan: look at one project's agent columns and done column (one job per heartbeat or wake). */
export const scanPayload = z.object({ projectId: z.number().int().positive(), wakeSeq: z.number().int().nonnegative() });
export type ScanPayload = z.infer<typeof scanPayload>;
/** agent-run: spawn (or adopt) the agent of one reserved run. The run row is the truth; the job delivers it. */
export const agentRunPayload = z.object({ runId: z.string().min(1).max(64) });
export type AgentRunPayload = z.infer<typeof agentRunPayload>;
/** merge: merge a done ticket's branch into its project's main branch. */
export const mergePayload = z.object({ ticketId: z.number().int().positive() });
export type MergePayload = z.infer<typeof mergePayload>;
/** notify: deliver one notification (lib/notifications.ts) on one channel. */
export const notifyPayload = z.object({ notificationId: z.number().int().positive(), channel: z.enum(['webhook', 'desktop']) });
export type NotifyPayload = z.infer<typeof notifyPayload>;

export const PAYLOADS = { [QUEUE.scan]: scanPayload, [QUEUE.agentRun]: agentRunPayload, [QUEUE.merge]: mergePayload, [QUEUE.notify]: notifyPayload } as const;

export const jobKeys = {
  scan: (p: ScanPayload, dueAt: number) => `scan:${p.projectId}:${p.wakeSeq}:${dueAt}`,
  /** the delayed scan that starts a ticket's next run once the wait after run `runId` is over */
  scanAfterWait: (runId: string) => `scan-after:${runId}`,
  agentRun: (p: AgentRunPayload) => `run:${p.runId}`,
  merge: (p: MergePayload, enteredDoneAt: number) => `merge:${p.ticketId}:${enteredDoneAt}`,
  notify: (p: NotifyPayload) => `notify:${p.notificationId}:${p.channel}`,
};

/** How long liteque's lease lasts. We are the only consumer and recovery resets leases on start,
 * so the lease only has to outlive any agent run (7-day cap) and a laptop's sleep. */
export const LEASE_SECONDS = 8 * 24 * 3600;

export interface Queues {
  scan: SqliteQueue<ScanPayload>;
  agentRun: SqliteQueue<AgentRunPayload>;
  merge: SqliteQueue<MergePayload>;
  notify: SqliteQueue<NotifyPayload>;
  byName(name: QueueName): SqliteQueue<unknown>;
}

/**
 * The queues on the daemon's own connection (the caller owns and closes it). One connection, not
 * liteque's own second one: with two, every write on one made the other drop its page cache and
 * read its pages again, at every step of every job (BENCHMARKS.md, "daemon CPU per run"). Its
 * statements go through the connection's statement cache too (drizzle compiles every query it runs).
 */
export function openQueues(db: Db): Queues {
  const client = drizzle(db);
  migrateDB(client as unknown as Parameters<typeof migrateDB>[0]);
  // liteque creates the table and indexes it one column at a time; with many kept failed jobs every
  // dequeue and the inspector's counts scanned the whole table. Created here because the table is
  // liteque's, made by its migrations just above, after ours have run (BENCHMARKS.md, "queue scale").
  db.exec(`CREATE INDEX IF NOT EXISTS tasks_queue_status ON tasks (queue, status, priority, createdAt)`);
  const make = <T>(name: QueueName, numRetries: number) =>
    new SqliteQueue<T>(name, client as unknown as ConstructorParameters<typeof SqliteQueue<T>>[1], { defaultJobArgs: { numRetries }, keepFailedJobs: true });
  const scan = make<ScanPayload>(QUEUE.scan, 2);
  const agentRun = make<AgentRunPayload>(QUEUE.agentRun, 2);
  const merge = make<MergePayload>(QUEUE.merge, 3);
  // a webhook that is down is tried 6 times over about a minute (the pool's growing backoff), then kept as failed
  const notify = make<NotifyPayload>(QUEUE.notify, 5);
  const all = { [QUEUE.scan]: scan, [QUEUE.agentRun]: agentRun, [QUEUE.merge]: merge, [QUEUE.notify]: notify } as Record<QueueName, SqliteQueue<unknown>>;
  return { scan, agentRun, merge, notify, byName: (name) => all[name] };
}

// ---- reading and repairing the liteque table directly (it has no list/get/retry API) ----
// Units differ by column: createdAt and expireAt are seconds, availableAt is milliseconds.

export interface JobRow {
  id: number;
  queue: QueueName;
  status: JobStatus;
  payload: string;
  priority: number;
  attempts: number;
  max_runs: number;
  created_at: number;
  available_at: number | null;
  expire_at: number | null;
  idempotency_key: string | null;
}

const JOB_COLUMNS = `id, queue, status, payload, priority, maxNumRuns - numRunsLeft AS attempts, maxNumRuns AS max_runs,
  createdAt * 1000 AS created_at, availableAt AS available_at, expireAt * 1000 AS expire_at, idempotencyKey AS idempotency_key`;

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

/**
 * Startup recovery for the queue. MUST run before any pool dequeues: every job left `running` by a
 * dead daemon goes back to `pending_retry` now, with the attempt refunded (the crash was not the
 * job's fault), instead of waiting out its lease. Its open job event is closed as `crashed`.
 */
export function resetOrphanedJobs(db: Db, at = Date.now()): number {
  return db.transaction(() => {
    const n = db
      .prepare(`UPDATE tasks SET status = 'pending_retry', expireAt = NULL, availableAt = ?, numRunsLeft = numRunsLeft + 1 WHERE status = 'running'`)
      .run(at).changes;
    db.prepare(`UPDATE job_events SET outcome = 'crashed', ended_at = ?, error = 'the daemon stopped while this attempt ran' WHERE outcome = 'running'`).run(at);
    return n;
  }).immediate();
}

/** A job claimed by a pool: its row's fields and the job event opened for this attempt. */
export interface ClaimedJob {
  id: number;
  payload: string;
  allocationId: string;
  /** Attempts left after this one (0: this is the last). */
  numRunsLeft: number;
  maxNumRuns: number;
  attempt: number;
  eventId: number;
}

const CLAIMABLE = `FROM tasks WHERE queue = ? AND (availableAt IS NULL OR availableAt <= ?)
  AND (status IN ('pending', 'pending_retry') OR (status = 'running' AND expireAt < ?))
  ORDER BY priority, createdAt, id LIMIT 1`;

/**
 * Claims the queue's next available job (liteque's order: priority, then age; a running job whose
 * lease ran out counts as available) and opens its job event, in one IMMEDIATE transaction. Our
 * own statements instead of liteque's attemptDequeue: that one selects in a transaction and
 * updates after it (not atomic; it breaks on better-sqlite3 >= 11.10) and
 * builds its SQL through drizzle on every call, the largest cost of a pool pass. An empty queue
 * costs one read and never takes the write lock. A job with no attempts left is marked failed, as
 * liteque does. Returns null when nothing is available.
 */
export function claimJob(db: Db, queue: QueueName, leaseSecs: number, now = Date.now()): ClaimedJob | null {
  const nowSecs = Math.floor(now / 1000);
  if (!db.prepare(`SELECT id ${CLAIMABLE}`).get(queue, now, nowSecs)) return null;
  return db.transaction((): ClaimedJob | null => {
    for (;;) {
      const job = db.prepare(`SELECT id, payload, numRunsLeft, maxNumRuns ${CLAIMABLE}`).get(queue, now, nowSecs) as
        | { id: number; payload: string; numRunsLeft: number; maxNumRuns: number }
        | undefined;
      if (!job) return null;
      if (job.numRunsLeft <= 0) {
        db.prepare(`UPDATE tasks SET status = 'failed', expireAt = NULL WHERE id = ?`).run(job.id);
        continue;
      }
      const allocationId = randomUUID();
      db.prepare(`UPDATE tasks SET status = 'running', numRunsLeft = numRunsLeft - 1, allocationId = ?, expireAt = ? WHERE id = ?`).run(allocationId, nowSecs + leaseSecs, job.id);
      const attempt = job.maxNumRuns - job.numRunsLeft + 1;
      const eventId = Number(
        db.prepare(`INSERT INTO job_events (job_id, queue, attempt, outcome, payload, started_at) VALUES (?, ?, ?, 'running', ?, ?)`).run(String(job.id), queue, attempt, job.payload, now)
          .lastInsertRowid,
      );
      return { id: job.id, payload: job.payload, allocationId, numRunsLeft: job.numRunsLeft - 1, maxNumRuns: job.maxNumRuns, attempt, eventId };
    }
  }).immediate();
}

export type JobOutcome = { outcome: 'completed' } | { outcome: 'failed'; error: string } | { outcome: 'retry'; error: string; retryAt: number };

/**
 * Ends a claimed job's attempt and closes its job event, in one IMMEDIATE transaction. A completed
 * job's row is deleted (liteque's rule; its history stays in job_events), a failed one is kept for
 * the inspector, a retry waits until `retryAt`. Guarded by the claim's allocation id: a job that was
 * reset or re-claimed meanwhile is not touched (its event is still closed).
 */
export function finishJob(db: Db, job: Pick<ClaimedJob, 'id' | 'allocationId' | 'eventId'>, end: JobOutcome, now = Date.now()): void {
  db.transaction(() => {
    if (end.outcome === 'completed') db.prepare(`DELETE FROM tasks WHERE id = ? AND allocationId = ?`).run(job.id, job.allocationId);
    else {
      const [status, availableAt] = end.outcome === 'failed' ? ['failed', now] : ['pending_retry', end.retryAt];
      db.prepare(`UPDATE tasks SET status = ?, expireAt = NULL, availableAt = ? WHERE id = ? AND allocationId = ?`).run(status, availableAt, job.id, job.allocationId);
    }
    db.prepare(`UPDATE job_events SET outcome = ?, error = ?, ended_at = ? WHERE id = ? AND outcome = 'running'`).run(
      end.outcome,
      end.outcome === 'completed' ? null : end.error,
      now,
      job.eventId,
    );
  }).immediate();
}

/** When the earliest waiting job of a queue may run (ms), or null when none waits. */
export function nextAvailableAt(db: Db, queue: QueueName): number | null {
  const row = db.prepare(`SELECT MIN(COALESCE(availableAt, 0)) AS at FROM tasks WHERE queue = ? AND status IN ('pending', 'pending_retry')`).get(queue) as { at: number | null };
  return row.at;
}

export interface QueueCounts {
  queue: QueueName;
  pending: number;
  pending_retry: number;
  running: number;
  failed: number;
  completed_24h: number;
}

export function queueCounts(db: Db, at = Date.now()): QueueCounts[] {
  const counts = new Map<string, QueueCounts>(QUEUE_NAMES.map((q) => [q, { queue: q, pending: 0, pending_retry: 0, running: 0, failed: 0, completed_24h: 0 }]));
  for (const r of db.prepare(`SELECT queue, status, COUNT(*) AS n FROM tasks GROUP BY queue, status`).all() as { queue: string; status: JobStatus; n: number }[]) {
    const c = counts.get(r.queue);
    if (c) c[r.status] = r.n;
  }
  for (const r of db
    .prepare(`SELECT queue, COUNT(*) AS n FROM job_events WHERE outcome = 'completed' AND ended_at >= ? GROUP BY queue`)
    .all(at - 24 * 3600_000) as { queue: string; n: number }[]) {
    const c = counts.get(r.queue);
    if (c) c.completed_24h = r.n;
  }
  return [...counts.values()];
}

export function listJobs(db: Db, filter: { queue?: QueueName; status?: JobStatus; limit?: number; offset?: number } = {}): JobRow[] {
  return db
    .prepare(
      `SELECT ${JOB_COLUMNS} FROM tasks WHERE (@queue IS NULL OR queue = @queue) AND (@status IS NULL OR status = @status)
       ORDER BY id DESC LIMIT @limit OFFSET @offset`,
    )
    .all({ queue: filter.queue ?? null, status: filter.status ?? null, limit: Math.min(Math.max(filter.limit ?? 50, 1), 500), offset: Math.max(filter.offset ?? 0, 0) }) as JobRow[];
}

export function getJob(db: Db, id: number): JobRow | undefined {
  return db.prepare(`SELECT ${JOB_COLUMNS} FROM tasks WHERE id = ?`).get(id) as JobRow | undefined;
}

/** A job's attempts, including those of jobs that already completed (liteque deletes those rows). */
export function jobEvents(db: Db, jobId: string): JobEvent[] {
  return db.prepare(`SELECT * FROM job_events WHERE job_id = ? ORDER BY id`).all(jobId) as JobEvent[];
}

/** The newest recorded error of each of a page of jobs, by job id (one indexed query per page). */
export function lastJobErrors(db: Db, jobIds: readonly number[]): Map<number, string> {
  if (jobIds.length === 0) return new Map();
  const ids = jobIds.slice(0, 500).map(String);
  const rows = db
    .prepare(
      `SELECT job_id, error FROM job_events WHERE id IN
         (SELECT MAX(id) FROM job_events WHERE job_id IN (${ids.map(() => '?').join(', ')}) AND error IS NOT NULL GROUP BY job_id)`,
    )
    .all(...ids) as { job_id: string; error: string }[];
  return new Map(rows.map((r) => [Number(r.job_id), r.error]));
}

export function recentJobEvents(db: Db, limit = 50): JobEvent[] {
  return db.prepare(`SELECT * FROM job_events ORDER BY id DESC LIMIT ?`).all(Math.min(Math.max(limit, 1), 500)) as JobEvent[];
}

/** What one housekeeping pass removed, and when it ran. */
export interface PruneReport {
  at: number;
  events: number;
  failed_jobs: number;
}

/**
 * Queue housekeeping: attempt records that ended more than `keepDays` ago, and failed jobs with no
 * attempt since then, are deleted in one transaction. A running attempt, a waiting job and a failed
 * job retried or failed again within the window are never touched. Without this, job_events grows
 * by a row per attempt of every job ever run and kept failed jobs pile up in the inspector.
 */
export function pruneQueueHistory(db: Db, keepDays: number, now = Date.now()): PruneReport {
  const cutoff = now - keepDays * 86_400_000;
  return db.transaction((): PruneReport => {
    const failed = db
      .prepare(
        `DELETE FROM tasks WHERE status = 'failed' AND COALESCE(availableAt, createdAt * 1000) < ?
           AND NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = CAST(tasks.id AS TEXT) AND (e.ended_at IS NULL OR e.ended_at >= ?))`,
      )
      .run(cutoff, cutoff).changes;
    const events = db.prepare(`DELETE FROM job_events WHERE outcome != 'running' AND ended_at < ?`).run(cutoff).changes;
    return { at: now, events, failed_jobs: failed };
  }).immediate();
}

/** Puts a failed job back in line with one more attempt. Guarded by status: never touches a job a pool holds. */
export function retryJob(db: Db, id: number, at = Date.now()): boolean {
  return (
    db.prepare(`UPDATE tasks SET status = 'pending_retry', numRunsLeft = MAX(numRunsLeft, 1), maxNumRuns = maxNumRuns + (numRunsLeft = 0), availableAt = ?, expireAt = NULL WHERE id = ? AND status = 'failed'`).run(at, id)
      .changes === 1
  );
}

/** Deletes a job that no pool holds. */
export function deleteJob(db: Db, id: number): boolean {
  return db.prepare(`DELETE FROM tasks WHERE id = ? AND status IN ('pending', 'pending_retry', 'failed')`).run(id).changes === 1;
}

export function jobByKey(db: Db, queue: QueueName, key: string): JobRow | undefined {
  return db.prepare(`SELECT ${JOB_COLUMNS} FROM tasks WHERE queue = ? AND idempotencyKey = ?`).get(queue, key) as JobRow | undefined;
}
