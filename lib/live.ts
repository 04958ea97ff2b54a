// What the live pages (board, inbox, ticket) need to follow changes made by any process: the daemon's
// routes and workers, and agents' ticket.cjs, which write the database directly. Two cheap
// signals cover every move, claim and run end whoever wrote it:
// - the ticket history (comments) is append-only and every move, creation and claim writes a row
//   in the same transaction as the change. SQLite has one writer at a time and gives a new row the
//   table's largest id plus one, so once a reader sees id N, every row below N is committed
//   too: "rows after the last id seen" never skips one (a rolled-back id is just reused).
// - a run end releases its claim in the same transaction, but a successful run writes no history
//   row; so the set of tickets claimed by a live run (a handful, read through the claimed-tickets
//   index) is compared with the last one seen.
// - a notification (a ticket parked in human, a pause) is a row of the append-only `notifications`
//   table, read the same way: rows after the last id seen.
// An idle poll reads all three in one statement (changeMark) and goes further only when it changed.
import type { Db } from './db/connection.js';

/** One ticket as a live page shows it: the fields a card, an inbox row or a ticket's header need. */
export interface LiveTicket {
  key: string;
  project: string;
  column: string;
  columnName: string;
  title: string;
  priority: string;
  /** the live run holding the ticket's claim (the running marker), or null */
  running: string | null;
  /** the inbox list the ticket is in (`needs` counts in the badge), or null outside the inbox */
  inbox: 'needs' | 'backlog' | null;
  /** archived, or its project is: no page shows it any more */
  gone: boolean;
}

/** The id of the newest history row (0 for none): a position in the history to follow changes from. */
export function historyCursor(db: Db): number {
  return (db.prepare(`SELECT coalesce(max(id), 0) AS id FROM comments`).get() as { id: number }).id;
}

/**
 * One statement (its own snapshot, no transaction) whose answer changes whenever a history row or a
 * notification is added or a ticket starts or stops running: what an idle poll reads, before anything else.
 */
export function changeMark(db: Db): string {
  return (
    db
      .prepare(
        `SELECT (SELECT coalesce(max(id), 0) FROM comments) || '/' || coalesce((
           SELECT group_concat(t.id || ':' || t.claimed_by_run) FROM tickets t JOIN runs r ON r.id = t.claimed_by_run
           WHERE t.claimed_by_run IS NOT NULL AND r.status IN ('queued', 'running')), '')
           || '/' || (SELECT coalesce(max(id), 0) FROM notifications) AS mark`,
      )
      .get() as { mark: string }
  ).mark;
}

/** Tickets claimed by a live run: ticket id → run id. */
export function runningClaims(db: Db): Map<number, string> {
  const rows = db
    .prepare(
      `SELECT t.id, t.claimed_by_run AS run FROM tickets t JOIN runs r ON r.id = t.claimed_by_run
       WHERE t.claimed_by_run IS NOT NULL AND r.status IN ('queued', 'running')`,
    )
    .all() as { id: number; run: string }[];
  return new Map(rows.map((r) => [r.id, r.run]));
}

/**
 * Tickets with history rows after `after`, reading at most `limit` rows: the ticket ids (each once)
 * and the id of the last row read, from which the next call goes on.
 */
export function historyAfter(db: Db, after: number, limit: number): { tickets: number[]; cursor: number; more: boolean } {
  const rows = db.prepare(`SELECT id, ticket_id FROM comments WHERE id > ? ORDER BY id LIMIT ?`).all(after, limit) as {
    id: number;
    ticket_id: number;
  }[];
  return { tickets: [...new Set(rows.map((r) => r.ticket_id))], cursor: rows.at(-1)?.id ?? after, more: rows.length === limit };
}

/** The live view of the given tickets (unknown ids are left out). */
export function liveTickets(db: Db, ids: number[]): LiveTicket[] {
  if (ids.length === 0) return [];
  const rows = db
    .prepare(
      `SELECT p.abbreviation || '-' || t.number AS key, p.abbreviation AS project, t.column_id AS "column",
         coalesce(pc.name, t.column_id) AS columnName, t.title, t.priority, r.id AS running,
         CASE WHEN t.column_id = 'human' AND t.archived_at IS NULL AND p.status != 'archived'
           THEN CASE WHEN t.parked_by IS 'human' THEN 'backlog' ELSE 'needs' END END AS inbox,
         (t.archived_at IS NOT NULL OR p.status = 'archived') AS gone
       FROM tickets t JOIN projects p ON p.id = t.project_id
       LEFT JOIN project_columns pc ON pc.project_id = t.project_id AND pc.column_id = t.column_id
       LEFT JOIN runs r ON r.id = t.claimed_by_run AND r.status IN ('queued', 'running')
       WHERE t.id IN (SELECT value FROM json_each(?)) ORDER BY t.id`,
    )
    .all(JSON.stringify(ids)) as (Omit<LiveTicket, 'gone'> & { gone: number })[];
  return rows.map((r) => ({ ...r, gone: r.gone === 1 }));
}
