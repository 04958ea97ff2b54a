// Opens the queue backend chosen in config (`queue.backend`: 'sqlite', the default, or 'redis' at
// `queue.redis_url`). A change takes effect at the next start. The backend in use is recorded in
// daemon_state; a start with another backend while jobs still wait in the previous one is refused
// with their count and how to drain them, because jobs are not moved between backends.
import { UserError } from '../errors.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { redact } from './redact.js';
import { openSqliteBackend } from './sqlite.js';
import { pruneEvents } from './events.js';
import type { PruneReport, QueueBackend } from './types.js';

export * from './types.js';
export * from './events.js';

const STATE_KEY = 'queue-backend';
type Choice = { backend: Config['queue']['backend']; redis_url?: string };

const label = (c: Choice) => (c.backend === 'redis' ? `redis at ${redact(c.redis_url ?? '')}` : 'sqlite');

async function open(db: Db, c: Choice, opts: { leaseMs?: number }): Promise<QueueBackend> {
  // BullMQ is loaded only when Redis is used
  if (c.backend === 'redis') return (await import('./redis.js')).openRedisBackend(db, c.redis_url!, opts);
  return openSqliteBackend(db, opts);
}

export async function openQueueBackend(db: Db, cfg: Config['queue'], opts: { leaseMs?: number } = {}): Promise<QueueBackend> {
  const chosen: Choice = cfg.backend === 'redis' ? { backend: 'redis', redis_url: cfg.redis_url } : { backend: 'sqlite' };
  const row = db.prepare(`SELECT value FROM daemon_state WHERE key = ?`).get(STATE_KEY) as { value: string } | undefined;
  // before this was recorded, sqlite was the only backend
  const previous: Choice = row ? (JSON.parse(row.value) as Choice) : { backend: 'sqlite' };
  if (label(previous) !== label(chosen) || previous.redis_url !== chosen.redis_url) {
    let waiting: number;
    try {
      const old = await open(db, previous, opts);
      try {
        waiting = await old.unfinished();
      } finally {
        await old.close();
      }
    } catch (err) {
      throw new UserError(
        `queue.backend changed from ${label(previous)} to ${label(chosen)}, but the jobs still in ${label(previous)} cannot be counted ` +
          `(${(err as Error).message}). Make it reachable again, or set the queue settings back to it.`,
        'queue.backend',
      );
    }
    if (waiting > 0) {
      throw new UserError(
        `queue.backend changed from ${label(previous)} to ${label(chosen)}, ` +
          `but ${waiting} job${waiting === 1 ? '' : 's'} still wait in ${label(previous)}. ` +
          `To drain them: set the queue settings back, start the daemon, ` +
          `run \`dispatch queue stats\` until pending, pending_retry and running are 0, stop the daemon, then switch again.`,
        'queue.backend',
      );
    }
  }
  let backend: QueueBackend;
  try {
    backend = await open(db, chosen, opts);
  } catch (err) {
    // the redis backend names the URL and the reason; anything else is not the person's to fix
    const named = chosen.backend === 'redis' && err instanceof Error && err.message.startsWith('queue.redis_url ');
    if (named) throw new UserError(err.message, 'queue.redis_url');
    throw err;
  }
  db.prepare(
    `INSERT INTO daemon_state (key, value, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
  ).run(STATE_KEY, JSON.stringify(chosen), Date.now());
  return backend;
}

/**
 * Queue housekeeping: failed jobs with no attempt within `keepDays`, then attempt records that ended
 * before it. A running attempt, a waiting job and a failed job retried or failed again within the
 * window are never touched. Without this, job_events grows by a row per attempt of every job ever
 * run and kept failed jobs pile up in the inspector.
 */
export async function pruneQueueHistory(queue: QueueBackend, db: Db, keepDays: number, now = Date.now()): Promise<PruneReport> {
  const failed = await queue.pruneFailed(keepDays, now);
  return { at: now, events: pruneEvents(db, now - keepDays * 86_400_000), failed_jobs: failed };
}
