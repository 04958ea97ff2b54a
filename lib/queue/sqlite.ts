// The `sqlite` queue backend: liteque, embedded in the daemon's database file (tasks.db), nothing
// to install. liteque's public API does what it can: its migrations create the `tasks` table, its
// enqueue adds jobs (idempotency key, delay, attempts) and its stats() counts them. liteque has no
// lease renewal, list, get, retry or delete, and its own claim (attemptDequeue) is not atomic: it
// selects in a transaction and updates after it, and throws on better-sqlite3 >= 11.10. So this file
// is the ONE place with our own SQL on liteque's `tasks` table: the claim, the heartbeat, the end of an
// attempt, the inspector's reads and repairs, and startup recovery. TASKS_COLUMNS is what that SQL
// relies on; openSqliteBackend refuses to start when liteque's table differs from it (a liteque
// upgrade that changed it), and __tests__/queue.contract.test.ts checks the installed liteque.
// Units differ by column: createdAt and expireAt are seconds, availableAt is milliseconds.
import { randomUUID } from 'node:crypto';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrateDB, SqliteQueue } from 'liteque';
import type { Db } from '../db/connection.js';
import { closeEvent, completedSince, crashOpenEvents, openEvent } from './events.js';
import { JOB_KEY, MAX_RUNS, QUEUE_NAMES } from './types.js';
import type { ClaimedJob, JobFilter, JobOutcome, JobRow, QueueBackend, QueueCounts } from './types.js';

/** The columns of liteque's `tasks` table our SQL uses, with their declared types (liteque 0.8.0). */
export const TASKS_COLUMNS: Readonly<Record<string, string>> = {
  id: 'INTEGER',
  queue: 'TEXT',
  payload: 'TEXT',
  createdAt: 'INTEGER',
  availableAt: 'INTEGER',
  status: 'TEXT',
  expireAt: 'INTEGER',
  allocationId: 'TEXT',
  numRunsLeft: 'INTEGER',
  maxNumRuns: 'INTEGER',
  idempotencyKey: 'TEXT',
  priority: 'INTEGER',
};

/** Throws, naming the difference, when liteque's `tasks` table is not the one this adapter's SQL was written for. */
export function checkTasksTable(db: Db): void {
  const columns = db.prepare(`PRAGMA table_info(tasks)`).all() as { name: string; type: string }[];
  const actual = new Map(columns.map((c) => [c.name, c.type.toUpperCase()]));
  const problems: string[] = [];
  for (const [name, type] of Object.entries(TASKS_COLUMNS)) {
    if (!actual.has(name)) problems.push(`column ${name} is missing`);
    else if (actual.get(name) !== type) problems.push(`column ${name} is ${actual.get(name)}, expected ${type}`);
  }
  for (const name of actual.keys()) if (!(name in TASKS_COLUMNS)) problems.push(`unknown column ${name}`);
  if (problems.length) {
    throw new Error(`liteque's tasks table changed (${problems.join('; ')}): lib/queue/sqlite.ts must be updated for this liteque version`);
  }
}

/** A lease long enough to outlive any agent run (7-day cap) and a laptop's sleep; recovery resets leases on start. */
const DEFAULT_LEASE_MS = 8 * 24 * 3600_000;

const JOB_COLUMNS = `CAST(id AS TEXT) AS id, queue, status, payload, maxNumRuns - numRunsLeft AS attempts, maxNumRuns AS max_runs,
  createdAt * 1000 AS created_at, availableAt AS available_at, expireAt * 1000 AS expire_at, idempotencyKey AS idempotency_key`;

const CLAIMABLE = `FROM tasks WHERE queue = ? AND (availableAt IS NULL OR availableAt <= ?)
  AND (status IN ('pending', 'pending_retry') OR (status = 'running' AND expireAt < ?))
  ORDER BY priority, createdAt, id LIMIT 1`;

/** sqlite job ids are liteque's row ids. */
const rowId = (id: string): number | null => (/^\d{1,15}$/.test(id) ? Number(id) : null);

/**
 * The queues on the daemon's own connection (the caller owns and closes it). One connection, not
 * liteque's own second one: with two, every write on one made the other drop its page cache and
 * read its pages again, at every step of every job (BENCHMARKS.md, "daemon CPU per run").
 */
/** `now` is the clock of claims, leases, ends and retries (ms; tests inject one); liteque stamps new jobs by the real one. */
export function openSqliteBackend(db: Db, opts: { leaseMs?: number; now?: () => number } = {}): QueueBackend {
  const clock = opts.now ?? Date.now;
  const client = drizzle(db);
  migrateDB(client as unknown as Parameters<typeof migrateDB>[0]);
  checkTasksTable(db);
  // liteque indexes the table one column at a time; with many kept failed jobs every claim and the
  // inspector's counts scanned the whole table (BENCHMARKS.md, "queue scale")
  db.exec(`CREATE INDEX IF NOT EXISTS tasks_queue_status ON tasks (queue, status, priority, createdAt)`);
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const queues = new Map(
    QUEUE_NAMES.map((name) => [
      name,
      // failed jobs are kept so the inspector can show and retry them (pruned after queue.keep_days);
      // every key is unique per event, so a kept failure never blocks a later job
      new SqliteQueue<unknown>(name, client as unknown as ConstructorParameters<typeof SqliteQueue<unknown>>[1], {
        defaultJobArgs: { numRetries: MAX_RUNS[name] - 1 },
        keepFailedJobs: true,
      }),
    ]),
  );
  const getRow = (id: string) => {
    const n = rowId(id);
    return n === null ? undefined : (db.prepare(`SELECT ${JOB_COLUMNS} FROM tasks WHERE id = ?`).get(n) as JobRow | undefined);
  };

  return {
    kind: 'sqlite',
    leaseMs,
    async enqueue(queue, payload, o = {}) {
      if (o.key !== undefined && !JOB_KEY.test(o.key)) throw new Error(`invalid job key ${JSON.stringify(o.key)}`);
      const job = await queues.get(queue)!.enqueue(payload, { idempotencyKey: o.key, delayMs: o.delayMs, priority: o.priority });
      if (job) return String(job.id);
      // liteque returns nothing when the key is taken: the job holding it
      const held = db
        .prepare(`SELECT CAST(id AS TEXT) AS id FROM tasks WHERE queue = ? AND idempotencyKey = ?`)
        .get(queue, o.key ?? null) as { id: string } | undefined;
      if (!held) throw new Error(`liteque refused a job for ${queue} and no job holds its key`);
      return held.id;
    },

    /**
     * liteque's order (priority, then age; a running job whose lease ran out counts as available) in
     * one IMMEDIATE transaction that also opens the job event. An empty queue costs one read and
     * never takes the write lock. A job with no attempts left is marked failed, as liteque does.
     */
    async claim(queue) {
      const now = clock();
      const nowSecs = Math.floor(now / 1000);
      if (!db.prepare(`SELECT id ${CLAIMABLE}`).get(queue, now, nowSecs)) return null;
      return db
        .transaction((): ClaimedJob | null => {
          for (;;) {
            const job = db.prepare(`SELECT id, payload, numRunsLeft, maxNumRuns ${CLAIMABLE}`).get(queue, now, nowSecs) as
              { id: number; payload: string; numRunsLeft: number; maxNumRuns: number } | undefined;
            if (!job) return null;
            if (job.numRunsLeft <= 0) {
              db.prepare(`UPDATE tasks SET status = 'failed', expireAt = NULL WHERE id = ?`).run(job.id);
              continue;
            }
            const token = randomUUID();
            db.prepare(
              `UPDATE tasks SET status = 'running', numRunsLeft = numRunsLeft - 1, allocationId = ?, expireAt = ? WHERE id = ?`,
            ).run(token, Math.ceil((now + leaseMs) / 1000), job.id);
            const attempt = job.maxNumRuns - job.numRunsLeft + 1;
            const eventId = openEvent(db, String(job.id), queue, attempt, job.payload, now);
            return { id: String(job.id), queue, payload: job.payload, token, attempt, final: job.numRunsLeft - 1 <= 0, eventId };
          }
        })
        .immediate();
    },

    async extend(job) {
      const until = Math.ceil((clock() + leaseMs) / 1000);
      const renew = db.prepare(`UPDATE tasks SET expireAt = ? WHERE id = ? AND allocationId = ? AND status = 'running'`);
      return renew.run(until, Number(job.id), job.token).changes === 1;
    },

    /** A completed job's row is deleted (liteque's rule), a failed one kept, a retry waits until `retryAt`. */
    async finish(job, end: JobOutcome) {
      const now = clock();
      db.transaction(() => {
        if (end.outcome === 'completed') db.prepare(`DELETE FROM tasks WHERE id = ? AND allocationId = ?`).run(Number(job.id), job.token);
        else {
          const [status, availableAt] = end.outcome === 'failed' ? ['failed', now] : ['pending_retry', end.retryAt];
          db.prepare(`UPDATE tasks SET status = ?, expireAt = NULL, availableAt = ? WHERE id = ? AND allocationId = ?`).run(
            status,
            availableAt,
            Number(job.id),
            job.token,
          );
        }
        closeEvent(db, job.eventId, end.outcome, end.outcome === 'completed' ? null : end.error, now);
      }).immediate();
    },

    async nextAvailableAt(queue) {
      const row = db
        .prepare(`SELECT MIN(COALESCE(availableAt, 0)) AS at FROM tasks WHERE queue = ? AND status IN ('pending', 'pending_retry')`)
        .get(queue) as { at: number | null };
      return row.at;
    },

    async counts() {
      const done = completedSince(db, clock() - 24 * 3600_000);
      const out: QueueCounts[] = [];
      for (const [name, q] of queues) out.push({ queue: name, ...(await q.stats()), completed_24h: done.get(name) ?? 0 });
      return out;
    },

    async list(f: JobFilter = {}) {
      return db
        .prepare(
          `SELECT ${JOB_COLUMNS} FROM tasks WHERE (@queue IS NULL OR queue = @queue) AND (@status IS NULL OR status = @status)
           ORDER BY tasks.id DESC LIMIT @limit OFFSET @offset`,
        )
        .all({
          queue: f.queue ?? null,
          status: f.status ?? null,
          limit: Math.min(Math.max(f.limit ?? 50, 1), 500),
          offset: Math.max(f.offset ?? 0, 0),
        }) as JobRow[];
    },

    get: async (id) => getRow(id),

    async byKey(queue, key) {
      return db.prepare(`SELECT ${JOB_COLUMNS} FROM tasks WHERE queue = ? AND idempotencyKey = ?`).get(queue, key) as JobRow | undefined;
    },

    /** Guarded by status: never touches a job a worker holds. */
    async retry(id) {
      const n = rowId(id);
      if (n === null) return false;
      const sql = `UPDATE tasks SET status = 'pending_retry', numRunsLeft = MAX(numRunsLeft, 1),
        maxNumRuns = maxNumRuns + (numRunsLeft = 0), availableAt = ?, expireAt = NULL WHERE id = ? AND status = 'failed'`;
      return db.prepare(sql).run(clock(), n).changes === 1;
    },

    async remove(id) {
      const n = rowId(id);
      if (n === null) return false;
      return db.prepare(`DELETE FROM tasks WHERE id = ? AND status IN ('pending', 'pending_retry', 'failed')`).run(n).changes === 1;
    },

    async resetOrphaned() {
      const at = clock();
      return db
        .transaction(() => {
          const n = db
            .prepare(
              `UPDATE tasks SET status = 'pending_retry', expireAt = NULL, availableAt = ?, numRunsLeft = numRunsLeft + 1 WHERE status = 'running'`,
            )
            .run(at).changes;
          crashOpenEvents(db, at);
          return n;
        })
        .immediate();
    },

    async unfinished() {
      const row = db.prepare(`SELECT COUNT(*) AS n FROM tasks WHERE status IN ('pending', 'pending_retry', 'running')`).get() as {
        n: number;
      };
      return row.n;
    },

    async pruneFailed(keepDays, now = clock()) {
      const cutoff = now - keepDays * 86_400_000;
      return db
        .prepare(
          `DELETE FROM tasks WHERE status = 'failed' AND COALESCE(availableAt, createdAt * 1000) < ?
             AND NOT EXISTS (SELECT 1 FROM job_events e
                             WHERE e.job_id = CAST(tasks.id AS TEXT) AND (e.ended_at IS NULL OR e.ended_at >= ?))`,
        )
        .run(cutoff, cutoff).changes;
    },

    async close() {},
  };
}
