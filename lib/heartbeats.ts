// Heartbeat rows: the one source of truth for when a project is next scanned. `wake_seq` counts
// wakes; a scan records the sequence it started from and may only write its backoff if no newer
// wake arrived meanwhile, so an in-flight scan can never overwrite a fresh reset.
import { budgetBlockedProjects } from './costs.js';
import { MARK_DUE_SQL } from './ticketRules.js';
import { editsWorkingTree, liveRun, PRIORITY_RANK, type WakeCaps } from './caps.js';
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
  db.prepare(MARK_DUE_SQL).run(at, projectId);
}

export function getHeartbeat(db: Db, projectId: number): Heartbeat | undefined {
  return db.prepare(`SELECT * FROM heartbeats WHERE project_id = ?`).get(projectId) as Heartbeat | undefined;
}

export interface Backoff {
  base_interval_seconds: number;
  max_interval_seconds: number;
  backoff_multiplier: number;
}

/** Active projects whose next check is due. */
export function dueHeartbeats(db: Db, at = Date.now()): Heartbeat[] {
  return db
    .prepare(
      `SELECT h.* FROM heartbeats h JOIN projects p ON p.id = h.project_id WHERE p.status = 'active' AND h.next_check_at <= ? ORDER BY h.next_check_at`,
    )
    .all(at) as Heartbeat[];
}

/** The earliest next check of any active project, or null when there is none. */
export function nextDueAt(db: Db): number | null {
  const row = db
    .prepare(`SELECT MIN(h.next_check_at) AS at FROM heartbeats h JOIN projects p ON p.id = h.project_id WHERE p.status = 'active'`)
    .get() as { at: number | null };
  return row.at;
}

/**
 * After a scan job is enqueued for a due heartbeat, pushes its next check one interval out so the
 * scheduler does not enqueue it again; the scan itself then writes the real next check. Guarded by
 * the wake sequence: a wake that arrived meanwhile keeps the project due.
 */
export function deferHeartbeat(db: Db, h: Heartbeat, at = Date.now()): void {
  db.prepare(`UPDATE heartbeats SET next_check_at = ? WHERE project_id = ? AND wake_seq = ?`).run(
    at + h.interval_seconds * 1000,
    h.project_id,
    h.wake_seq,
  );
}

/**
 * Records a finished scan: work found resets the interval to the base; an empty scan multiplies it
 * (capped), and the next check is never later than `notAfter`. Written only if no wake arrived since
 * the scan started (`wakeSeq`), so an in-flight scan never overwrites a newer reset (docs/ARCHITECTURE.md, invariant 6).
 * Returns the row as written, or null if skipped.
 */
export function recordScan(
  db: Db,
  projectId: number,
  wakeSeq: number,
  foundWork: boolean,
  b: Backoff,
  at = Date.now(),
  notAfter: number | null = null,
): Heartbeat | null {
  return db
    .transaction(() => {
      const h = getHeartbeat(db, projectId);
      if (!h) return null;
      const streak = foundWork ? 0 : h.empty_streak + 1;
      const interval = foundWork
        ? b.base_interval_seconds
        : Math.min(b.max_interval_seconds, Math.round(b.base_interval_seconds * b.backoff_multiplier ** streak));
      // notAfter: a scan held back by a daily budget must look again when the day turns
      const next = notAfter === null ? at + interval * 1000 : Math.min(at + interval * 1000, notAfter);
      const changed = db
        .prepare(
          `UPDATE heartbeats SET interval_seconds = ?, empty_streak = ?, next_check_at = ?, last_check_at = ? WHERE project_id = ? AND wake_seq = ?`,
        )
        .run(interval, streak, next, at, projectId, wakeSeq).changes;
      if (changed === 0) {
        db.prepare(`UPDATE heartbeats SET last_check_at = ? WHERE project_id = ?`).run(at, projectId);
        return null;
      }
      return getHeartbeat(db, projectId)!;
    })
    .immediate();
}

/**
 * A run slot just freed: marks due the projects that can use it, at most one per free global slot.
 * A candidate has an unclaimed ticket in an agent column that its caps allow it to start now (below
 * the per-project cap; not held back by the serial rule, by which a project whose agents work in its
 * folder runs one agent that edits the working tree at a time; no daily budget used up),
 * most urgent and oldest waiting first. Waking every waiting project instead made each finalize cost
 * a scan per project, almost all ending at the global cap (BENCHMARKS.md, "daemon overhead and CPU per run").
 */
export function markWaitingProjectsDue(
  db: Db,
  /** parallelCoding: agents.parallel_coding, for projects without their own setting */
  caps: WakeCaps,
  at = Date.now(),
): number[] {
  return db
    .transaction(() => {
      const live = (db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE ${liveRun()}`).get() as { n: number }).n;
      const free = caps.global - live;
      if (free <= 0) return [];
      // a project whose daily budget is used up cannot start a run: waking it would only cost a scan
      const blocked = budgetBlockedProjects(db, caps.dailyBudgetUsd ?? 0, at);
      if (blocked === 'all') return [];
      const ids = (
        db
          .prepare(
            // live runs counted once per project (not once per waiting ticket), then from the agent
            // columns of active projects to their tickets (CROSS JOIN keeps that order): starting from
            // the tickets read every ticket ever filed (10 ms a finalize at 15,000 tickets), and
            // counting per ticket cost 20 ms a finalize with 1,000 tickets waiting
            `WITH live AS (
             SELECT r.project_id, COUNT(*) AS n, SUM(${editsWorkingTree('r.agent_type_id')}) AS editing
             FROM runs r WHERE ${liveRun('r')} GROUP BY r.project_id)
           SELECT p.id FROM projects p
           LEFT JOIN live l ON l.project_id = p.id
           CROSS JOIN project_columns pc ON pc.project_id = p.id AND pc.agent_type_id IS NOT NULL
           CROSS JOIN tickets t ON t.project_id = pc.project_id AND t.column_id = pc.column_id
           WHERE p.status = 'active' AND t.claimed_by_run IS NULL AND t.archived_at IS NULL
             AND COALESCE(l.n, 0) < @perProject AND p.id NOT IN (SELECT value FROM json_each(@blocked))
             AND (COALESCE(p.parallel_coding, @parallel) = 1 OR COALESCE(l.editing, 0) = 0
                  OR ${editsWorkingTree('pc.agent_type_id')} = 0)
           GROUP BY p.id
           ORDER BY MIN(${PRIORITY_RANK}), MIN(t.column_entered_at), p.id
           LIMIT @free`,
          )
          .all({ perProject: caps.perProject, parallel: caps.parallelCoding ? 1 : 0, free, blocked: JSON.stringify(blocked) }) as {
          id: number;
        }[]
      ).map((r) => r.id);
      for (const id of ids) markDue(db, id, at);
      return ids;
    })
    .immediate();
}

/** Start-up repair: every active project has a heartbeat row, or it would never be scanned. */
export function ensureAllHeartbeats(db: Db, baseIntervalSeconds: number, at = Date.now()): void {
  db.prepare(
    `INSERT OR IGNORE INTO heartbeats (project_id, interval_seconds, empty_streak, next_check_at, wake_seq)
     SELECT id, ?, 0, ?, 0 FROM projects WHERE status = 'active'`,
  ).run(baseIntervalSeconds, at);
}
