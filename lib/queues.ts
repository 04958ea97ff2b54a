// Every durable queue is declared here and nowhere else: name, payload schema, retry defaults and
// the idempotency key of each job. The queues are liteque tables inside tasks.db, so a backup holds
// them too. We never run liteque's Runner (its timeout does not stop work and its loop polls
// blindly); lib/pool.ts dequeues with `attemptDequeue` when it has capacity and when poked.
// Failed jobs are kept (keepFailedJobs) so the inspector can show and retry them; every key is
// unique per event, so a kept failure never blocks a later job.
import { buildDBClient, SqliteQueue } from 'liteque';
import { z } from 'zod';
import { cacheStatements, type Db } from './db/connection.js';

export const QUEUE = { scan: 'scan', agentRun: 'agent-run', merge: 'merge' } as const;
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

export const PAYLOADS = { [QUEUE.scan]: scanPayload, [QUEUE.agentRun]: agentRunPayload, [QUEUE.merge]: mergePayload } as const;

export const jobKeys = {
  scan: (p: ScanPayload, dueAt: number) => `scan:${p.projectId}:${p.wakeSeq}:${dueAt}`,
  agentRun: (p: AgentRunPayload) => `run:${p.runId}`,
  merge: (p: MergePayload, enteredDoneAt: number) => `merge:${p.ticketId}:${enteredDoneAt}`,
};

/** How long liteque's lease lasts. We are the only consumer and recovery resets leases on start,
 * so the lease only has to outlive any agent run (7-day cap) and a laptop's sleep. */
export const LEASE_SECONDS = 8 * 24 * 3600;

export interface Queues {
  scan: SqliteQueue<ScanPayload>;
  agentRun: SqliteQueue<AgentRunPayload>;
  merge: SqliteQueue<MergePayload>;
  byName(name: QueueName): SqliteQueue<unknown>;
  close(): void;
}

export function openQueues(dbPath: string): Queues {
  const client = buildDBClient(dbPath, { runMigrations: true });
  const connection = (client as unknown as { session: { client: Db } }).session.client;
  cacheStatements(connection); // drizzle compiles every query it runs: the pools' dequeue loop is hot
  // liteque creates the table and indexes it one column at a time; with many kept failed jobs every
  // dequeue and the inspector's counts scanned the whole table. Created here because the table is
  // liteque's, made by its migrations just above, after ours have run (BENCHMARKS.md, "queue scale").
  connection.exec(`CREATE INDEX IF NOT EXISTS tasks_queue_status ON tasks (queue, status, priority, createdAt)`);
  const make = <T>(name: QueueName, numRetries: number) => new SqliteQueue<T>(name, client, { defaultJobArgs: { numRetries }, keepFailedJobs: true });
  const scan = make<ScanPayload>(QUEUE.scan, 2);
  const agentRun = make<AgentRunPayload>(QUEUE.agentRun, 2);
  const merge = make<MergePayload>(QUEUE.merge, 3);
  const all = { [QUEUE.scan]: scan, [QUEUE.agentRun]: agentRun, [QUEUE.merge]: merge } as Record<QueueName, SqliteQueue<unknown>>;
  return {
    scan,
    agentRun,
    merge,
    byName: (name) => all[name],
    close: () => connection.close(),
  };
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

export function recordJobStart(db: Db, e: { jobId: string; queue: QueueName; attempt: number; payload: unknown }): number {
  return Number(
    db.prepare(`INSERT INTO job_events (job_id, queue, attempt, outcome, payload, started_at) VALUES (?, ?, ?, 'running', ?, ?)`).run(
      e.jobId,
      e.queue,
      e.attempt,
      JSON.stringify(e.payload),
      Date.now(),
    ).lastInsertRowid,
  );
}

export function recordJobEnd(db: Db, eventId: number, outcome: 'completed' | 'retry' | 'failed', error: string | null): void {
  db.prepare(`UPDATE job_events SET outcome = ?, error = ?, ended_at = ? WHERE id = ? AND outcome = 'running'`).run(outcome, error, Date.now(), eventId);
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
