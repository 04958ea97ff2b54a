// The `redis` queue backend: BullMQ on a Redis server (6.2 or newer), for running more agents than
// one machine holds. Each queue is a BullMQ queue under the `dispatch` prefix; a job's lease is
// BullMQ's lock (claimed with a Worker's getNextJob, renewed by the pool's heartbeat with
// extendLock, and found expired by BullMQ's stalled-job check, which puts the job back in line).
// We decide retries ourselves (one policy for both backends): a retry is moveToDelayed, a final
// failure an UnrecoverableError so BullMQ never retries on its own. A job keyed for idempotency
// gets the key as its BullMQ job id (`<queue>.k.<key with ':' as '.'>`), so BullMQ's own
// "a job id exists once" is the dedupe; completed jobs are removed (the key is free again), failed
// ones kept for the inspector, as on sqlite. Job data is `{ payload, runs, refunds }`: the payload
// as JSON text, the attempts it may make (an inspector retry adds one) and the attempts refunded by
// startup recovery. State mapping for the inspector: waiting/prioritized are `pending`,
// delayed (a retry's backoff, or a job enqueued with a delay) `pending_retry`, active `running`.
import { randomUUID } from 'node:crypto';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Db } from '../db/connection.js';
import { redact } from './redact.js';
import { closeEvent, completedSince, crashOpenEvents, openEvent } from './events.js';
import { JOB_KEY, MAX_RUNS, QUEUE_NAMES } from './types.js';
import type { JobFilter, JobRow, JobStatus, QueueBackend, QueueCounts, QueueName } from './types.js';

const PREFIX = 'dispatch';
/** A lease renewed every 10 s: a dead worker's job is back in line within about a minute. */
const DEFAULT_LEASE_MS = 30_000;
export const MIN_REDIS_VERSION = '6.2.0';

interface Data {
  payload: string;
  runs: number;
  refunds: number;
  key: string | null;
}

const STATES: Record<JobStatus, string[]> = {
  pending: ['waiting', 'prioritized'],
  pending_retry: ['delayed'],
  running: ['active'],
  failed: ['failed'],
};
function statusOf(state: string): JobStatus | null {
  for (const [status, states] of Object.entries(STATES)) if (states.includes(state)) return status as JobStatus;
  return null;
}

const keyedId = (queue: QueueName, key: string) => `${queue}.k.${key.replaceAll(':', '.')}`;
function queueOf(id: string): QueueName | null {
  const q = id.slice(0, id.indexOf('.'));
  return (QUEUE_NAMES as readonly string[]).includes(q) ? (q as QueueName) : null;
}

/** True for BullMQ's refusals of a finish by a worker whose lock is gone (the job was reclaimed: leave it). */
const lostLock = (err: unknown) => /lock|not in the active state|Missing key/i.test((err as Error).message ?? '');

function versionAtLeast(actual: string, wanted: string): boolean {
  const a = actual.split('.').map(Number);
  const w = wanted.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (w[i] ?? 0)) return (a[i] ?? 0) > (w[i] ?? 0);
  return true;
}

/** Connects and checks the server (reachable, version 6.2 or newer) before anything uses it; one clear error otherwise. */
export async function openRedisBackend(db: Db, url: string, opts: { leaseMs?: number } = {}): Promise<QueueBackend> {
  // a first connection that does not retry, so a wrong URL or a stopped server is one clear error
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 5000 });
  let lastError: Error | null = null;
  probe.on('error', (err: Error) => (lastError = err));
  try {
    await probe.connect();
    const info = await probe.info('server');
    const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0';
    if (!versionAtLeast(version, MIN_REDIS_VERSION)) {
      throw new Error(`Redis ${version} is too old: ${MIN_REDIS_VERSION} or newer is needed`);
    }
  } catch (err) {
    throw new Error(`queue.redis_url ${redact(url)}: cannot use Redis: ${(lastError ?? (err as Error)).message}`);
  } finally {
    if (probe.status === 'ready') await probe.quit().catch(() => probe.disconnect());
    else if (probe.status !== 'end') probe.disconnect();
  }
  // from here on ioredis reconnects by itself; commands wait meanwhile and callers report failures
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  connection.on('error', () => {});
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const queues = new Map(QUEUE_NAMES.map((name) => [name, new Queue(name, { connection, prefix: PREFIX })]));
  const workers = new Map(
    QUEUE_NAMES.map((name) => [
      name,
      // no processor: jobs are taken with getNextJob when the pool has a free slot. The stalled-job
      // check runs every lease; stalls never fail a job here (the claim below counts attempts)
      new Worker(name, null, {
        connection,
        prefix: PREFIX,
        autorun: false,
        lockDuration: leaseMs,
        stalledInterval: leaseMs,
        maxStalledCount: 1_000_000,
      }),
    ]),
  );
  for (const w of workers.values()) {
    w.on('error', () => {});
    void w.startStalledCheckTimer().catch(() => {});
  }
  const held = new Map<string, Job>();
  const q = (name: QueueName) => queues.get(name)!;

  async function row(job: Job, state: string): Promise<JobRow | undefined> {
    const status = statusOf(state);
    if (!status || !job.id) return undefined;
    const data = job.data as Data;
    const queue = queueOf(job.id)!;
    let available: number | null = null;
    if (status === 'pending_retry') {
      const score = await connection.zscore(q(queue).toKey('delayed'), job.id);
      available = score === null ? null : Math.floor(Number(score) / 0x1000);
    } else if (status === 'pending') available = job.timestamp;
    let expire: number | null = null;
    if (status === 'running') {
      const ttl = await connection.pttl(q(queue).toKey(`${job.id}:lock`));
      expire = ttl > 0 ? Date.now() + ttl : null;
    }
    return {
      id: job.id,
      queue,
      status,
      payload: data.payload,
      attempts: Math.max(0, job.attemptsStarted - data.refunds),
      max_runs: data.runs,
      created_at: job.timestamp,
      available_at: available,
      expire_at: expire,
      idempotency_key: data.key,
    };
  }

  async function find(id: string): Promise<{ job: Job; state: string } | undefined> {
    const queue = queueOf(id);
    if (!queue) return undefined;
    const job = await q(queue).getJob(id);
    if (!job) return undefined;
    return { job, state: await job.getState() };
  }

  const backend: QueueBackend = {
    kind: 'redis',
    leaseMs,
    async enqueue(queue, payload, o = {}) {
      if (o.key !== undefined && !JOB_KEY.test(o.key)) throw new Error(`invalid job key ${JSON.stringify(o.key)}`);
      const jobId = o.key === undefined ? `${queue}.n.${randomUUID()}` : keyedId(queue, o.key);
      const data: Data = { payload: JSON.stringify(payload), runs: MAX_RUNS[queue], refunds: 0, key: o.key ?? null };
      const delay = o.delayMs && o.delayMs > 0 ? o.delayMs : undefined;
      // BullMQ's priority 0 means "none" (ahead of every prioritised job): ours are shifted by one
      const priority = o.priority === undefined ? undefined : Math.min(o.priority + 1, 2_097_152);
      const job = await q(queue).add(queue, data, { jobId, delay, priority, removeOnComplete: true, removeOnFail: false });
      return job.id ?? jobId;
    },

    async claim(queue) {
      for (;;) {
        const token = randomUUID();
        const job = await workers.get(queue)!.getNextJob(token, { block: false });
        if (!job?.id) return null;
        const data = job.data as Data;
        const attempt = job.attemptsStarted - data.refunds;
        if (attempt > data.runs) {
          // reclaimed after its lease ran out on its last attempt: failed, as liteque does
          const error = new UnrecoverableError('no attempts left (the last one stopped without finishing)');
          await job.moveToFailed(error, token, false).catch(() => {});
          continue;
        }
        const eventId = openEvent(db, job.id, queue, attempt, data.payload);
        held.set(job.id, job);
        return { id: job.id, queue, payload: data.payload, token, attempt, final: attempt >= data.runs, eventId };
      }
    },

    async extend(c) {
      const job = held.get(c.id);
      if (!job) return false;
      return (await job.extendLock(c.token, leaseMs)) === 1;
    },

    async finish(c, end) {
      const job = held.get(c.id) ?? (await q(c.queue).getJob(c.id));
      held.delete(c.id);
      try {
        if (job) {
          if (end.outcome === 'completed') await job.moveToCompleted(null, c.token, false);
          else if (end.outcome === 'retry') await job.moveToDelayed(end.retryAt, c.token);
          else await job.moveToFailed(new UnrecoverableError(end.error), c.token, false);
        }
      } catch (err) {
        if (!lostLock(err)) throw err;
      }
      closeEvent(db, c.eventId, end.outcome, end.outcome === 'completed' ? null : end.error);
    },

    async nextAvailableAt(queue) {
      const counts = await q(queue).getJobCounts('waiting', 'prioritized');
      if ((counts.waiting ?? 0) + (counts.prioritized ?? 0) > 0) return 0;
      const first = await connection.zrange(q(queue).toKey('delayed'), 0, 0, 'WITHSCORES');
      return first.length === 2 ? Math.floor(Number(first[1]) / 0x1000) : null;
    },

    async counts() {
      const done = completedSince(db, Date.now() - 24 * 3600_000);
      const out: QueueCounts[] = [];
      for (const name of QUEUE_NAMES) {
        const c = await q(name).getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed');
        const sum = (s: JobStatus) => STATES[s].reduce((n, st) => n + (c[st] ?? 0), 0);
        out.push({
          queue: name,
          pending: sum('pending'),
          pending_retry: sum('pending_retry'),
          running: sum('running'),
          failed: sum('failed'),
          completed_24h: done.get(name) ?? 0,
        });
      }
      return out;
    },

    /** Newest first over the chosen queues and states; reads at most offset + limit jobs per queue and state. */
    async list(f: JobFilter = {}) {
      const limit = Math.min(Math.max(f.limit ?? 50, 1), 500);
      const offset = Math.max(f.offset ?? 0, 0);
      const found: { job: Job; state: string }[] = [];
      for (const name of f.queue ? [f.queue] : QUEUE_NAMES) {
        for (const state of f.status ? STATES[f.status] : Object.values(STATES).flat()) {
          for (const job of await q(name).getJobs([state as 'waiting'], 0, offset + limit - 1)) if (job) found.push({ job, state });
        }
      }
      found.sort((a, b) => b.job.timestamp - a.job.timestamp || (b.job.id! < a.job.id! ? -1 : 1));
      const rows: JobRow[] = [];
      for (const { job, state } of found.slice(offset, offset + limit)) {
        const r = await row(job, state);
        if (r) rows.push(r);
      }
      return rows;
    },

    async get(id) {
      const hit = await find(id);
      return hit ? row(hit.job, hit.state) : undefined;
    },

    byKey: (queue, key) => backend.get(keyedId(queue, key)),

    async retry(id) {
      const hit = await find(id);
      if (!hit || hit.state !== 'failed') return false;
      const data = hit.job.data as Data;
      await hit.job.updateData({ ...data, runs: Math.max(data.runs, hit.job.attemptsStarted - data.refunds + 1) });
      try {
        await hit.job.retry('failed');
        return true;
      } catch {
        return false; // retried or removed meanwhile
      }
    },

    async remove(id) {
      const hit = await find(id);
      if (!hit || hit.state === 'active' || !statusOf(hit.state)) return false;
      try {
        await hit.job.remove();
        return true;
      } catch {
        return false; // claimed meanwhile: its lock refuses the removal
      }
    },

    /** Single consumer: at start, every active job is an orphan. Each goes back to the front of its line, the attempt refunded. */
    async resetOrphaned() {
      let n = 0;
      for (const name of QUEUE_NAMES) {
        for (const job of await q(name).getJobs(['active'])) {
          if (!job?.id) continue;
          const lockKey = q(name).toKey(`${job.id}:lock`);
          let token = await connection.get(lockKey);
          if (!token) {
            token = randomUUID();
            await connection.set(lockKey, token, 'PX', leaseMs);
          }
          const data = job.data as Data;
          await job.updateData({ ...data, refunds: data.refunds + 1 });
          await job.moveToWait(token);
          n += 1;
        }
      }
      crashOpenEvents(db);
      return n;
    },

    async unfinished() {
      let n = 0;
      for (const c of await backend.counts()) n += c.pending + c.pending_retry + c.running;
      return n;
    },

    async pruneFailed(keepDays) {
      let n = 0;
      for (const name of QUEUE_NAMES) {
        for (;;) {
          const removed = await q(name).clean(keepDays * 86_400_000, 1000, 'failed');
          n += removed.length;
          if (removed.length < 1000) break;
        }
      }
      return n;
    },

    async close() {
      held.clear();
      await Promise.allSettled([...workers.values()].map((w) => w.close(true)));
      await Promise.allSettled([...queues.values()].map((qq) => qq.close()));
      await connection.quit().catch(() => connection.disconnect());
    },
  };
  return backend;
}
