// A worker pool over one queue. It dequeues only while it has a free slot (p-limit, whose
// concurrency is read from config on every pass, so cap changes apply without a restart), so a
// claimed job never waits in memory burning its lease. `poke()` makes it look at once (a wake must
// reach a spawn in well under a second); otherwise it sleeps until its queue's next job becomes
// available (a retry's backoff), polling at most every `idlePollMs` as a safety net. The loop never
// dies silently: an error is kept as `lastError` and logged once with a count while it repeats,
// and the loop pauses longer after each failure in a row (a full disk fails every pass) and goes
// on. The end of an attempt the disk refuses is retried until it lands, so the job does not stay
// "running" until the next restart. While a job runs, its lease is renewed every third of the
// backend's lease (the heartbeat), so a lease only runs out when this process is gone. The pool
// sees only the queue interface (lib/queue), whichever backend holds the jobs.
// Stopping is graceful, then forceful: `stop({ waitMs })` stops dequeuing and waits up to `waitMs`
// for the jobs in flight to end and record their end (a merge running the user's git hooks, a scan);
// past the deadline it returns anyway, and a job still running then is left "running" for the next
// start's recovery to put back in line (its late end is not recorded: the database is closing).
// Without `waitMs` nothing is waited for: the agent-run pool's jobs last as long as their agents,
// which are detached and adopted on restart.
import pLimit, { type LimitFunction } from 'p-limit';
import type { ZodType } from 'zod';
import type { ClaimedJob, JobOutcome, QueueBackend, QueueName } from './queue/index.js';
import { storageError } from './db/connection.js';
import { RepeatedFailure, type Logger } from './logger.js';

/** The longest pause after failed passes, and between attempts to record a job's end. */
const MAX_RETRY_MS = 60_000;
const retryDelay = (failures: number) => Math.min(MAX_RETRY_MS, 1000 * 2 ** (failures - 1));

/** Thrown by a handler when retrying cannot help (bad payload, a row that no longer exists). */
export class PermanentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentError';
  }
}

export interface PoolOptions<T> {
  name: QueueName;
  schema: ZodType<T>;
  backend: QueueBackend;
  logger: Logger;
  concurrency: () => number;
  /** `final` is true on the job's last attempt. */
  handler: (data: T, job: { id: string; attempt: number; final: boolean }) => Promise<void>;
  /** @defaultValue 300000 */
  idlePollMs?: number;
  /** the clock jobs are claimed, leased, retried and ended by (ms) @defaultValue Date.now */
  now?: () => number;
}

export interface Pool {
  readonly name: QueueName;
  start(): void;
  poke(): void;
  /**
   * Stops dequeuing, then waits up to `waitMs` (default 0) for the jobs in flight to end. Resolves
   * with the number of jobs still running at the deadline (left to the next start's recovery).
   */
  stop(opts?: { waitMs?: number }): Promise<number>;
  active(): number;
  lastError: string | null;
}

export function createPool<T>(opts: PoolOptions<T>): Pool {
  const limit: LimitFunction = pLimit(Math.max(1, opts.concurrency()));
  const idle = opts.idlePollMs ?? 300_000;
  const now = opts.now ?? Date.now;
  let stopping = false;
  let loop: Promise<void> | null = null;
  let wakeUp: (() => void) | null = null;
  let poked = false;
  let failures = 0;
  const passFailure = new RepeatedFailure(opts.logger, 'pool pass failed');
  const finishFailure = new RepeatedFailure(opts.logger, 'could not record the end of a job; will retry');
  /** the jobs in flight, each with the promise that settles once its end is recorded */
  const inFlight = new Map<string, Promise<void>>();
  /** set when stop() gave up waiting: a job that ends later does not write (the database is closing) */
  let abandoned = false;

  /** Records the end of an attempt, waiting out a disk that refuses the write (until the pool stops). */
  async function finish(job: ClaimedJob, end: JobOutcome): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (abandoned) return;
      try {
        await opts.backend.finish(job, end);
        finishFailure.ok();
        return;
      } catch (err) {
        if (!storageError(err) || stopping) throw err;
        finishFailure.fail(err, { queue: opts.name, job: String(job.id) });
        await new Promise((r) => setTimeout(r, retryDelay(attempt)).unref());
      }
    }
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (poked || stopping) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = null;
        resolve();
      }
      wakeUp = done;
    });

  /** Renews the job's lease until the attempt ends. */
  function heartbeat(job: ClaimedJob): () => void {
    const timer = setInterval(
      () => {
        opts.backend.extend(job).then(
          (held) => held || opts.logger.warn('job lease lost', { queue: opts.name, job: job.id }),
          (err: unknown) => opts.logger.warn('job lease not renewed', { queue: opts.name, job: job.id, error: (err as Error).message }),
        );
      },
      Math.max(1000, Math.floor(opts.backend.leaseMs / 3)),
    );
    timer.unref();
    return () => clearInterval(timer);
  }

  async function runJob(job: ClaimedJob): Promise<void> {
    const stopBeat = heartbeat(job);
    try {
      await attemptJob(job);
    } finally {
      stopBeat();
    }
  }

  async function attemptJob(job: ClaimedJob): Promise<void> {
    const id = job.id;
    const { attempt } = job;
    let data: T;
    try {
      data = opts.schema.parse(JSON.parse(job.payload));
    } catch (err) {
      opts.logger.error('job payload rejected', { queue: opts.name, job: id, error: (err as Error).message });
      await finish(job, { outcome: 'failed', error: 'invalid payload' });
      return;
    }
    try {
      await opts.handler(data, { id, attempt, final: job.final });
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      const final = err instanceof PermanentError || job.final;
      opts.logger.error(final ? 'job failed' : 'job failed; will retry', { queue: opts.name, job: id, attempt, error });
      // a retry waits a little longer each time, so a failing dependency is not hammered
      const retryAt = now() + Math.min(60_000, 1000 * 2 ** attempt);
      await finish(job, final ? { outcome: 'failed', error } : { outcome: 'retry', error, retryAt });
      return;
    }
    await finish(job, { outcome: 'completed' });
  }

  async function pass(): Promise<void> {
    limit.concurrency = Math.max(1, opts.concurrency());
    while (!stopping && limit.activeCount + limit.pendingCount < limit.concurrency) {
      const job = await opts.backend.claim(opts.name);
      if (!job) return;
      // in-process guard: the same job id must never run twice at once here
      if (inFlight.has(job.id)) continue;
      const done = limit(() => runJob(job))
        .catch((err: unknown) => {
          if (abandoned) return;
          pool.lastError = (err as Error).message;
          opts.logger.error('job bookkeeping failed', { queue: opts.name, job: job.id, error: (err as Error).stack ?? String(err) });
        })
        .finally(() => {
          inFlight.delete(job.id);
          pool.poke(); // a slot is free
        });
      inFlight.set(job.id, done);
    }
  }

  /** How long to sleep after a pass: until the next waiting job is due, unless every slot is taken (a finishing job pokes). */
  async function idleWait(): Promise<number> {
    if (limit.activeCount + limit.pendingCount >= limit.concurrency) return idle;
    try {
      const next = await opts.backend.nextAvailableAt(opts.name);
      return next === null ? idle : Math.min(idle, Math.max(100, next - now()));
    } catch (err) {
      pool.lastError = `${opts.name} pool: ${(err as Error).message}`;
      return idle;
    }
  }

  const pool: Pool = {
    name: opts.name,
    lastError: null,
    start() {
      if (loop) return;
      loop = (async () => {
        while (!stopping) {
          poked = false;
          try {
            await pass();
            failures = 0;
            passFailure.ok();
          } catch (err) {
            failures += 1;
            pool.lastError = `${opts.name} pool: ${(err as Error).message}`;
            passFailure.fail(err, { queue: opts.name });
          }
          await sleep(failures > 0 ? retryDelay(failures) : await idleWait());
        }
      })();
    },
    poke() {
      poked = true;
      wakeUp?.();
    },
    async stop({ waitMs = 0 } = {}) {
      stopping = true;
      wakeUp?.();
      await loop;
      if (inFlight.size === 0) return 0;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
      await Promise.race([Promise.allSettled([...inFlight.values()]), deadline]);
      clearTimeout(timer);
      const left = inFlight.size;
      if (left > 0) {
        abandoned = true;
        if (waitMs > 0)
          opts.logger.warn('stopped before jobs ended; the next start puts them back in line', {
            queue: opts.name,
            jobs: [...inFlight.keys()],
          });
      }
      return left;
    },
    active: () => limit.activeCount,
  };
  return pool;
}
