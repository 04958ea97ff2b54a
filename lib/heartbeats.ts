// Heartbeat rows: the one source of truth for when a project is next scanned. `wake_seq` counts
// wakes; a scan records the sequence it started from and may only write its backoff if no newer
// wake arrived meanwhile, so an in-flight scan can never overwrite a fresh reset.
import type { Db } from './db/connection.js';

export interface Heartbeat {
  project_id: number;
  interval_seconds: number;
  empty_streak: number;
  next_check_at: number;
  last_check_at: number | null;
  wake_seq: number;
}

export function ensureHeartbeat(db: Db, projectId: number, baseIntervalSeconds: number, at = Date.now()): void {
  db.prepare(
    `INSERT OR IGNORE INTO heartbeats (project_id, interval_seconds, empty_streak, next_check_at, wake_seq) VALUES (?, ?, 0, ?, 0)`,
  ).run(projectId, baseIntervalSeconds, at);
}

/** Marks a project due now. MUST be called inside the transaction that made the work appear. */
export function markDue(db: Db, projectId: number, at = Date.now()): void {
  db.prepare(`UPDATE heartbeats SET next_check_at = ?, empty_streak = 0, wake_seq = wake_seq + 1 WHERE project_id = ?`).run(at, projectId);
}

export function getHeartbeat(db: Db, projectId: number): Heartbeat | undefined {
  return db.prepare(`SELECT * FROM heartbeats WHERE project_id = ?`).get(projectId) as Heartbeat | undefined;
}
