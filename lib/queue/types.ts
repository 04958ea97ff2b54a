// The one queue interface. Every durable queue is declared here and nowhere else: its name (the same
// string in code, URLs, logs, the inspector and the docs), payload schema, attempts and the
// idempotency keys of its jobs. Two backends implement QueueBackend: `sqlite` (liteque, embedded,
// lib/queue/sqlite.ts) and `redis` (BullMQ, lib/queue/redis.ts); lib/queue/index.ts picks one from
// config. Workers (lib/pool.ts) only ever see this interface. The attempt history of every job
// (job_events) stays in the daemon's SQLite database whatever the backend (lib/queue/events.ts).
import { z } from 'zod';

export const QUEUE_NAMES = ['scan', 'agent-run', 'merge', 'notify'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** The inspector's job states, the same on both backends. */
export const JOB_STATUS = { pending: 'pending', pendingRetry: 'pending_retry', running: 'running', failed: 'failed' } as const;
export type JobStatus = (typeof JOB_STATUS)[keyof typeof JOB_STATUS];
export const JOB_STATUSES: readonly JobStatus[] = Object.values(JOB_STATUS);

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

export const PAYLOADS = { scan: scanPayload, 'agent-run': agentRunPayload, merge: mergePayload, notify: notifyPayload } as const;
export type Payload<Q extends QueueName> = z.infer<(typeof PAYLOADS)[Q]>;

/** Attempts a job of each queue gets before it is kept as failed. */
// a webhook that is down is tried 6 times over about a minute (the pool's growing backoff), then kept as failed
export const MAX_RUNS: Readonly<Record<QueueName, number>> = { scan: 3, 'agent-run': 3, merge: 4, notify: 6 };

/** What an idempotency key may contain (the redis backend turns it into a job id, where ':' is reserved). */
export const JOB_KEY = /^[A-Za-z0-9_-][A-Za-z0-9:_-]{0,199}$/;
/** What a job id may look like anywhere it arrives from outside (sqlite ids are numbers, redis ids are `<queue>.<...>`). */
export const JOB_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,299}$/;

export const jobKeys = {
  scan: (p: ScanPayload, dueAt: number) => `scan:${p.projectId}:${p.wakeSeq}:${dueAt}`,
  /** the delayed scan that starts a ticket's next run once the wait after run `runId` is over */
  scanAfterWait: (runId: string) => `scan-after:${runId}`,
  agentRun: (p: AgentRunPayload) => `run:${p.runId}`,
  merge: (p: MergePayload, enteredDoneAt: number) => `merge:${p.ticketId}:${enteredDoneAt}`,
  notify: (p: NotifyPayload) => `notify:${p.notificationId}:${p.channel}`,
};

export interface EnqueueOptions {
  /** A second job with the same key is not added while the first is waiting, running or kept as failed. */
  key?: string;
  delayMs?: number;
  /** Lower is taken first (0 = most urgent); equal priorities go oldest first. @defaultValue 0 */
  priority?: number;
}

/** A job as the inspector shows it. Times are milliseconds. */
export interface JobRow {
  id: string;
  queue: QueueName;
  status: JobStatus;
  payload: string;
  attempts: number;
  max_runs: number;
  created_at: number;
  available_at: number | null;
  /** the lease's end while running */
  expire_at: number | null;
  idempotency_key: string | null;
}

/** A job a worker holds: its lease is `token` until it finishes, or the lease runs out. */
export interface ClaimedJob {
  id: string;
  queue: QueueName;
  payload: string;
  token: string;
  /** 1 for the first attempt */
  attempt: number;
  /** true on the last attempt the job gets */
  final: boolean;
  /** the job_events row of this attempt */
  eventId: number;
}

export type JobOutcome =
  { outcome: 'completed' } | { outcome: 'failed'; error: string } | { outcome: 'retry'; error: string; retryAt: number };

export interface QueueCounts {
  queue: QueueName;
  pending: number;
  pending_retry: number;
  running: number;
  failed: number;
  completed_24h: number;
}

export interface JobFilter {
  queue?: QueueName;
  status?: JobStatus;
  limit?: number;
  offset?: number;
}

/** What one housekeeping pass removed, and when it ran. */
export interface PruneReport {
  at: number;
  events: number;
  failed_jobs: number;
}

export type BackendKind = 'sqlite' | 'redis';

export interface QueueBackend {
  readonly kind: BackendKind;
  /** How long a claim holds a job without a heartbeat; workers renew it every third of that. */
  readonly leaseMs: number;
  /** Adds a job; returns its id (the existing job's id when the key is taken). */
  enqueue<Q extends QueueName>(queue: Q, payload: Payload<Q>, opts?: EnqueueOptions): Promise<string>;
  /** Takes the queue's next available job (a running job whose lease ran out counts) and opens its job event. */
  claim(queue: QueueName): Promise<ClaimedJob | null>;
  /** The heartbeat: renews the lease; false when the job is no longer this claim's. */
  extend(job: ClaimedJob): Promise<boolean>;
  /** Ends an attempt and closes its job event; a job reset or re-claimed meanwhile is not touched. */
  finish(job: ClaimedJob, end: JobOutcome): Promise<void>;
  /** When the queue's earliest waiting job may run (ms), or null when none waits. */
  nextAvailableAt(queue: QueueName): Promise<number | null>;
  counts(): Promise<QueueCounts[]>;
  list(filter?: JobFilter): Promise<JobRow[]>;
  get(id: string): Promise<JobRow | undefined>;
  byKey(queue: QueueName, key: string): Promise<JobRow | undefined>;
  /** Puts a failed job back in line with one more attempt; false when it is not failed. */
  retry(id: string): Promise<boolean>;
  /** Deletes a job no worker holds; false when it is running or gone. */
  remove(id: string): Promise<boolean>;
  /**
   * Startup recovery: every job left running by a dead daemon goes back in line now with its attempt
   * refunded, instead of waiting out its lease. MUST run before any worker claims.
   */
  resetOrphaned(): Promise<number>;
  /** Jobs not finished yet (waiting, delayed or running), over all queues. */
  unfinished(): Promise<number>;
  /** Deletes failed jobs with no attempt in the last `keepDays` days (job history is pruned by the caller). */
  pruneFailed(keepDays: number, now?: number): Promise<number>;
  close(): Promise<void>;
}
