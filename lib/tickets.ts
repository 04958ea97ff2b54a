// Tickets and their append-only history. Tickets are numbered per project (`pd-42`), numbers are
// never reused, and every change (create, move, comment, finding) is one transaction that also
// writes its history row. A move into an agent column marks the project due in that same
// transaction, so the wake survives even if the in-process notification is lost.
import { HUMAN, DONE } from './columns.js';
import { markDue } from './heartbeats.js';
import { ConflictError, NotFoundError, UserError } from './errors.js';
import { PRIORITY_RANK } from './caps.js';
import { FREE_COMMENT_TYPES, LIMITS, SEVERITIES, TICKET_KEY, wakesOnMove } from './ticketRules.js';
import { getColumns, getProject, type Column } from './projects.js';
import type { Db } from './db/connection.js';
import type { Store } from './store.js';

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type Priority = (typeof PRIORITIES)[number];
export { SEVERITIES, FREE_COMMENT_TYPES, LIMITS };
export type Severity = (typeof SEVERITIES)[number];
export const COMMENT_TYPES = ['comment', 'move', 'claim', 'complete', 'finding', 'journal', 'block', 'merge', 'system'] as const;
export type CommentType = (typeof COMMENT_TYPES)[number];
// the types a person or an agent writes with `comment` (FREE_COMMENT_TYPES), the severities and the
// limits are shared with bin/ticket.cjs (lib/shared/ticketRules.cjs)

export interface Ticket {
  id: number;
  project_id: number;
  number: number;
  title: string;
  body: string;
  column_id: string;
  priority: Priority;
  tags: string;
  created_by: string;
  claimed_by_run: string | null;
  claimed_at: number | null;
  branch: string | null;
  worktree_path: string | null;
  created_at: number;
  updated_at: number;
  column_entered_at: number;
  archived_at: number | null;
  parked_by?: string | null;
}

export interface TicketView extends Omit<Ticket, 'tags'> {
  key: string;
  abbreviation: string;
  tags: string[];
}

export interface Comment {
  id: number;
  ticket_id: number;
  type: CommentType;
  author: string;
  body: string;
  severity: Severity | null;
  title: string | null;
  from_column: string | null;
  to_column: string | null;
  created_at: number;
}

/** Resolves `pd-42` or a numeric id to the ticket row. */
export function findTicket(db: Db, ref: string | number): (Ticket & { abbreviation: string }) | undefined {
  const key = String(ref).trim();
  if (/^\d+$/.test(key)) {
    return db
      .prepare(`SELECT t.*, p.abbreviation FROM tickets t JOIN projects p ON p.id = t.project_id WHERE t.id = ?`)
      .get(Number(key)) as (Ticket & { abbreviation: string }) | undefined;
  }
  const m = TICKET_KEY.exec(key);
  if (!m) return undefined;
  return db
    .prepare(`SELECT t.*, p.abbreviation FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = ? AND t.number = ?`)
    .get(m[1]!.toLowerCase(), Number(m[2])) as (Ticket & { abbreviation: string }) | undefined;
}

export function requireTicket(db: Db, ref: string | number): Ticket & { abbreviation: string } {
  const t = findTicket(db, ref);
  if (!t) throw new NotFoundError('ticket', ref);
  return t;
}

export function toView(t: Ticket & { abbreviation: string }): TicketView {
  return { ...t, key: `${t.abbreviation}-${t.number}`, tags: parseTags(t.tags) };
}

function parseTags(raw: string): string[] {
  try {
    const v = JSON.parse(raw);
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}

function checkText(value: unknown, field: string, max: number, required: boolean): string {
  if (value === undefined || value === null) {
    if (required) throw new UserError(`${field} is required`, field);
    return '';
  }
  if (typeof value !== 'string') throw new UserError(`${field} must be a string`, field);
  if (required && !value.trim()) throw new UserError(`${field} must not be empty`, field);
  if (value.length > max) throw new UserError(`${field} is longer than ${max} characters`, field);
  return value;
}

function checkTags(tags: unknown): string[] {
  if (tags === undefined) return [];
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) throw new UserError('tags must be a list of strings', 'tags');
  const clean = [...new Set((tags as string[]).map((t) => t.trim()).filter(Boolean))];
  if (clean.length > LIMITS.tags) throw new UserError(`at most ${LIMITS.tags} tags`, 'tags');
  if (clean.some((t) => t.length > LIMITS.tag)) throw new UserError(`a tag is longer than ${LIMITS.tag} characters`, 'tags');
  return clean;
}

function checkPriority(p: unknown): Priority {
  if (p === undefined) return 'normal';
  if (!PRIORITIES.includes(p as Priority)) throw new UserError(`priority must be one of ${PRIORITIES.join(', ')}`, 'priority');
  return p as Priority;
}

function columnOf(columns: Column[], id: string, field = 'column'): Column {
  const col = columns.find((c) => c.column_id === id);
  if (!col) throw new UserError(`unknown column "${id}"; this project's columns are ${columns.map((c) => c.column_id).join(', ')}`, field);
  return col;
}

/**
 * An archived project's tickets are read-only (409): its agents were stopped, and neither a person,
 * the API nor the CLI may file, move, comment on or edit them until it is restored. Called inside
 * the write's transaction where there is one.
 */
function assertOpen(db: Db, projectId: number): void {
  const p = db.prepare(`SELECT abbreviation, status FROM projects WHERE id = ?`).get(projectId) as
    { abbreviation: string; status: string } | undefined;
  if (p?.status !== 'archived') return;
  throw new ConflictError(`project ${p.abbreviation} is archived: its tickets cannot be changed; restore the project first`, 'project');
}

function insertComment(db: Db, c: Omit<Comment, 'id' | 'created_at'> & { created_at?: number }): number {
  return Number(
    db
      .prepare(
        `INSERT INTO comments (ticket_id, type, author, body, severity, title, from_column, to_column, created_at)
         VALUES (@ticket_id, @type, @author, @body, @severity, @title, @from_column, @to_column, @created_at)`,
      )
      .run({ ...c, created_at: c.created_at ?? Date.now() }).lastInsertRowid,
  );
}

export interface CreateTicketInput {
  project: string | number;
  title: unknown;
  body?: unknown;
  column?: string;
  priority?: unknown;
  tags?: unknown;
  createdBy: string;
}

export function createTicket(store: Store, input: CreateTicketInput): TicketView {
  const { db } = store;
  const project = getProject(db, input.project);
  if (project.status === 'unregistered') throw new UserError(`register ${project.path} before filing tickets`, 'project');
  const title = checkText(input.title, 'title', LIMITS.title, true).trim();
  const body = checkText(input.body, 'body', LIMITS.body, false);
  const priority = checkPriority(input.priority);
  const tags = checkTags(input.tags);
  const columns = getColumns(db, project.id);
  const column = columnOf(columns, input.column ?? HUMAN);
  const now = Date.now();
  const id = db
    .transaction(() => {
      assertOpen(db, project.id);
      const { number } = db
        .prepare(
          `UPDATE projects SET next_ticket_number = next_ticket_number + 1, updated_at = ? WHERE id = ? RETURNING next_ticket_number - 1 AS number`,
        )
        .get(now, project.id) as { number: number };
      const ticketId = Number(
        db
          .prepare(
            `INSERT INTO tickets (project_id, number, title, body, column_id, priority, tags, created_by, created_at, updated_at, column_entered_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(project.id, number, title, body, column.column_id, priority, JSON.stringify(tags), input.createdBy, now, now, now)
          .lastInsertRowid,
      );
      insertComment(db, {
        ticket_id: ticketId,
        type: 'move',
        author: input.createdBy,
        body: 'created',
        severity: null,
        title: null,
        from_column: null,
        to_column: column.column_id,
      });
      if (column.agent_type_id) markDue(db, project.id, now);
      return ticketId;
    })
    .immediate();
  if (column.agent_type_id) store.notify(project.id);
  return toView(requireTicket(db, id));
}

export interface MoveResult {
  ticket: TicketView;
  from: string;
  to: string;
}

export function moveTicket(
  store: Store,
  ref: string | number,
  to: string,
  opts: { actor: string; comment?: string; expectFrom?: string },
): MoveResult {
  const { db } = store;
  const comment = checkText(opts.comment, 'comment', LIMITS.comment, false);
  const result = db
    .transaction(() => {
      const ticket = requireTicket(db, ref);
      assertOpen(db, ticket.project_id);
      const columns = getColumns(db, ticket.project_id);
      const target = columnOf(columns, to);
      if (opts.expectFrom !== undefined && ticket.column_id !== opts.expectFrom) {
        throw new UserError(
          `ticket ${ticket.abbreviation}-${ticket.number} is in "${ticket.column_id}", not "${opts.expectFrom}"`,
          'column',
        );
      }
      if (ticket.column_id === target.column_id)
        throw new UserError(`ticket ${ticket.abbreviation}-${ticket.number} is already in "${to}"`, 'column');
      const wake = writeMove(db, ticket, target, opts.actor, comment);
      return { id: ticket.id, from: ticket.column_id, to: target.column_id, projectId: ticket.project_id, wake };
    })
    .immediate();
  if (result.wake) store.notify(result.projectId);
  return { ticket: toView(requireTicket(db, result.id)), from: result.from, to: result.to };
}

/**
 * Takes back a run's own move: the ticket goes back to the run's column, with `why` as the move's
 * comment. For a run on a runner whose work never reached the remote (the runner was lost, or its
 * push failed after the agent had moved the ticket on): the next column would get a ticket without
 * the work it announces, and the merge would land nothing. Only while the ticket's last move is that
 * run's and the ticket is open; a move by anyone since is left alone. True when it moved the ticket.
 */
export function undoRunMove(
  store: Store,
  run: { id: string; ticket_id: number; column_id: string; agent_type_id: string },
  why: string,
): boolean {
  const { db } = store;
  const projectId = db
    .transaction(() => {
      const ticket = requireTicket(db, run.ticket_id);
      if (ticket.column_id === run.column_id || ticket.archived_at !== null) return null;
      const last = db
        .prepare(`SELECT author FROM comments WHERE ticket_id = ? AND type = 'move' ORDER BY id DESC LIMIT 1`)
        .get(ticket.id) as { author: string } | undefined;
      if (last?.author !== `${run.agent_type_id}:${run.id}`) return null;
      const column = getColumns(db, ticket.project_id).find((c) => c.column_id === run.column_id);
      if (!column) return null; // the workflow lost that column since
      writeMove(db, ticket, column, 'system', why);
      return ticket.project_id;
    })
    .immediate();
  if (projectId === null) return false;
  store.notify(projectId);
  return true;
}

/**
 * The write of one move, inside the caller's transaction: the column, its history row, and the
 * project marked due when the column needs a worker. A person's move wins over a running agent: the
 * runtime sees the ticket off the run's column and stops the run. True when the project needs a wake.
 */
function writeMove(db: Db, ticket: Ticket, target: Column, actor: string, comment: string): boolean {
  const now = Date.now();
  db.prepare(`UPDATE tickets SET column_id = ?, column_entered_at = ?, updated_at = ? WHERE id = ?`).run(
    target.column_id,
    now,
    now,
    ticket.id,
  );
  insertComment(db, {
    ticket_id: ticket.id,
    type: 'move',
    author: actor,
    body: comment,
    severity: null,
    title: null,
    from_column: ticket.column_id,
    to_column: target.column_id,
  });
  // an agent column needs an agent; done needs the merge worker (no agent run moves through here)
  const wake = wakesOnMove({ to: target.column_id, toAgentColumn: Boolean(target.agent_type_id), byRun: false });
  if (wake) markDue(db, ticket.project_id, now);
  return wake;
}

/**
 * Closing a ticket archives it (`archived_at`): it leaves its board, the lists, the inbox and search,
 * no agent picks it up, a running agent on it is stopped like after a move away, and its finished
 * worktree may be removed. Its page and history stay; `reopenTicket` brings it back to its column.
 */
function writeClose(db: Db, ticket: Ticket, actor: string, comment: string): void {
  const now = Date.now();
  db.prepare(`UPDATE tickets SET archived_at = ?, updated_at = ? WHERE id = ?`).run(now, now, ticket.id);
  insertComment(db, historyNote(ticket.id, actor, comment || 'Closed.'));
}

/** The history row of a close or a reopen: a note by whoever did it. */
function historyNote(ticketId: number, author: string, body: string): Omit<Comment, 'id' | 'created_at'> {
  return { ticket_id: ticketId, type: 'system', author, body, severity: null, title: null, from_column: null, to_column: null };
}

export function closeTicket(store: Store, ref: string | number, opts: { actor: string; comment?: string }): TicketView {
  const { db } = store;
  const comment = checkText(opts.comment, 'comment', LIMITS.comment, false);
  const id = db
    .transaction(() => {
      const ticket = requireTicket(db, ref);
      assertOpen(db, ticket.project_id);
      if (ticket.archived_at !== null) throw new UserError(`ticket ${ticket.abbreviation}-${ticket.number} is already closed`, 'ticket');
      writeClose(db, ticket, opts.actor, comment);
      return ticket.id;
    })
    .immediate();
  return toView(requireTicket(db, id));
}

/** Brings a closed ticket back to the column it was closed in; an agent column wakes its project. */
export function reopenTicket(store: Store, ref: string | number, opts: { actor: string }): TicketView {
  const { db } = store;
  const result = db
    .transaction(() => {
      const ticket = requireTicket(db, ref);
      assertOpen(db, ticket.project_id);
      if (ticket.archived_at === null) throw new UserError(`ticket ${ticket.abbreviation}-${ticket.number} is not closed`, 'ticket');
      const column = getColumns(db, ticket.project_id).find((c) => c.column_id === ticket.column_id);
      const now = Date.now();
      db.prepare(`UPDATE tickets SET archived_at = NULL, updated_at = ? WHERE id = ?`).run(now, ticket.id);
      insertComment(db, historyNote(ticket.id, opts.actor, 'Reopened.'));
      const wake = Boolean(column?.agent_type_id) || ticket.column_id === 'done';
      if (wake) markDue(db, ticket.project_id, now);
      return { id: ticket.id, projectId: ticket.project_id, wake };
    })
    .immediate();
  if (result.wake) store.notify(result.projectId);
  return toView(requireTicket(db, result.id));
}

export const BULK_ACTIONS = ['move', 'priority', 'close'] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];
/** Most tickets one bulk action takes (a page shows at most 100 rows; a board at most 50 cards a column). */
export const BULK_LIMIT = 500;

export interface BulkInput {
  keys: unknown;
  action: unknown;
  column?: unknown;
  priority?: unknown;
  actor: string;
}

export interface BulkResult {
  action: BulkAction;
  /** the tickets the action changed, in the order given */
  changed: string[];
  /** the tickets already as asked (in that column, at that priority): left alone, no history row */
  unchanged: string[];
}

/**
 * One action on many tickets in one transaction: move them to a column, set their priority, or
 * close them, with the same writes and history rows as the single-ticket functions above. Every
 * ticket is checked first; if any is missing, closed, in an archived project, or (for a move) in a
 * project without that column, the whole batch is refused with every reason and nothing changes.
 */
export function bulkUpdate(store: Store, input: BulkInput): BulkResult {
  const { db } = store;
  if (!BULK_ACTIONS.includes(input.action as BulkAction)) throw new UserError(`action must be one of ${BULK_ACTIONS.join(', ')}`, 'action');
  const action = input.action as BulkAction;
  const keys = input.keys;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string' && typeof k !== 'number')) {
    throw new UserError('keys must be a list of ticket keys such as pd-42', 'keys');
  }
  if (keys.length === 0) throw new UserError('select at least one ticket', 'keys');
  if (keys.length > BULK_LIMIT) throw new UserError(`at most ${BULK_LIMIT} tickets at once`, 'keys');
  let column: string | undefined;
  let priority: Priority | undefined;
  if (action === 'move') {
    if (typeof input.column !== 'string' || !input.column.trim()) throw new UserError('column is required to move tickets', 'column');
    column = input.column.trim();
  }
  if (action === 'priority') {
    if (input.priority === undefined || input.priority === null || input.priority === '') {
      throw new UserError('priority is required', 'priority');
    }
    priority = checkPriority(input.priority);
  }
  const result = db
    .transaction(() => {
      const problems: string[] = [];
      let archivedProject = false;
      let wrongColumn = false;
      const seen = new Set<number>();
      const found: { ticket: Ticket & { abbreviation: string }; key: string; target?: Column }[] = [];
      const columnsOf = new Map<number, Column[]>();
      for (const ref of keys as (string | number)[]) {
        const ticket = findTicket(db, ref);
        if (!ticket) {
          problems.push(`${String(ref).slice(0, 40)} does not exist`);
          continue;
        }
        if (seen.has(ticket.id)) continue;
        seen.add(ticket.id);
        const key = `${ticket.abbreviation}-${ticket.number}`;
        const project = db.prepare(`SELECT status FROM projects WHERE id = ?`).pluck().get(ticket.project_id) as string;
        if (project === 'archived') {
          archivedProject = true;
          problems.push(`${key} is in the archived project ${ticket.abbreviation}`);
          continue;
        }
        if (ticket.archived_at !== null) {
          problems.push(`${key} is closed`);
          continue;
        }
        let target: Column | undefined;
        if (column !== undefined) {
          if (!columnsOf.has(ticket.project_id)) columnsOf.set(ticket.project_id, getColumns(db, ticket.project_id));
          const columns = columnsOf.get(ticket.project_id)!;
          target = columns.find((c) => c.column_id === column);
          if (!target) {
            wrongColumn = true;
            problems.push(`${key}'s project has no column "${column}" (its columns are ${columns.map((c) => c.column_id).join(', ')})`);
            continue;
          }
        }
        found.push({ ticket, key, target });
      }
      if (problems.length) {
        const message = `nothing was changed: ${problems.join('; ')}`;
        throw archivedProject ? new ConflictError(message, 'keys') : new UserError(message, wrongColumn ? 'column' : 'keys');
      }
      const changed: string[] = [];
      const unchanged: string[] = [];
      const wake = new Set<number>();
      for (const { ticket, key, target } of found) {
        if (action === 'move') {
          if (ticket.column_id === target!.column_id) unchanged.push(key);
          else {
            if (writeMove(db, ticket, target!, input.actor, '')) wake.add(ticket.project_id);
            changed.push(key);
          }
        } else if (action === 'priority') {
          if (ticket.priority === priority) unchanged.push(key);
          else {
            db.prepare(`UPDATE tickets SET priority = ?, updated_at = ? WHERE id = ?`).run(priority, Date.now(), ticket.id);
            changed.push(key);
          }
        } else {
          writeClose(db, ticket, input.actor, '');
          changed.push(key);
        }
      }
      return { changed, unchanged, wake: [...wake] };
    })
    .immediate();
  for (const projectId of result.wake) store.notify(projectId);
  return { action, changed: result.changed, unchanged: result.unchanged };
}

export function addComment(store: Store, ref: string | number, type: string, body: unknown, author: string): Comment {
  const { db } = store;
  if (!(FREE_COMMENT_TYPES as readonly string[]).includes(type)) {
    throw new UserError(`comment type must be one of ${FREE_COMMENT_TYPES.join(', ')}`, 'type');
  }
  const text = checkText(body, 'body', LIMITS.comment, true);
  const ticket = requireTicket(db, ref);
  const id = db
    .transaction(() => {
      assertOpen(db, ticket.project_id);
      db.prepare(`UPDATE tickets SET updated_at = ? WHERE id = ?`).run(Date.now(), ticket.id);
      return insertComment(db, {
        ticket_id: ticket.id,
        type: type as CommentType,
        author,
        body: text,
        severity: null,
        title: null,
        from_column: null,
        to_column: null,
      });
    })
    .immediate();
  return db.prepare(`SELECT * FROM comments WHERE id = ?`).get(id) as Comment;
}

/** History written by the daemon itself (`system`, `merge`, `claim`, `complete` of a run). */
export function addSystemComment(
  db: Db,
  ticketId: number,
  type: 'system' | 'merge' | 'claim' | 'complete',
  body: string,
  author = 'system',
): void {
  insertComment(db, { ticket_id: ticketId, type, author, body, severity: null, title: null, from_column: null, to_column: null });
}

export function addFinding(store: Store, ref: string | number, severity: string, title: unknown, body: unknown, author: string): Comment {
  const { db } = store;
  if (!SEVERITIES.includes(severity as Severity)) throw new UserError(`severity must be one of ${SEVERITIES.join(', ')}`, 'severity');
  const t = checkText(title, 'title', LIMITS.title, true);
  const b = checkText(body, 'body', LIMITS.comment, false);
  const ticket = requireTicket(db, ref);
  const id = db
    .transaction(() => {
      assertOpen(db, ticket.project_id);
      db.prepare(`UPDATE tickets SET updated_at = ? WHERE id = ?`).run(Date.now(), ticket.id);
      return insertComment(db, {
        ticket_id: ticket.id,
        type: 'finding',
        author,
        body: b,
        severity: severity as Severity,
        title: t,
        from_column: null,
        to_column: null,
      });
    })
    .immediate();
  return db.prepare(`SELECT * FROM comments WHERE id = ?`).get(id) as Comment;
}

export function updateTicket(
  store: Store,
  ref: string | number,
  patch: { title?: unknown; body?: unknown; priority?: unknown; tags?: unknown },
): TicketView {
  const { db } = store;
  const ticket = requireTicket(db, ref);
  const title = patch.title === undefined ? ticket.title : checkText(patch.title, 'title', LIMITS.title, true).trim();
  const body = patch.body === undefined ? ticket.body : checkText(patch.body, 'body', LIMITS.body, false);
  const priority = patch.priority === undefined ? ticket.priority : checkPriority(patch.priority);
  const tags = patch.tags === undefined ? ticket.tags : JSON.stringify(checkTags(patch.tags));
  db.transaction(() => {
    assertOpen(db, ticket.project_id);
    db.prepare(`UPDATE tickets SET title = ?, body = ?, priority = ?, tags = ?, updated_at = ? WHERE id = ?`).run(
      title,
      body,
      priority,
      tags,
      Date.now(),
      ticket.id,
    );
  }).immediate();
  return toView(requireTicket(db, ticket.id));
}

export function getThread(db: Db, ticketId: number): Comment[] {
  return db.prepare(`SELECT * FROM comments WHERE ticket_id = ? ORDER BY id`).all(ticketId) as Comment[];
}

export interface TicketListFilter {
  project?: string | number;
  column?: string;
  limit?: number;
  offset?: number;
}

function listWhere(db: Db, filter: TicketListFilter): { where: string[]; args: (string | number)[] } {
  const where: string[] = ['t.archived_at IS NULL'];
  const args: (string | number)[] = [];
  const project = filter.project === undefined ? undefined : getProject(db, filter.project);
  if (project) {
    where.push('t.project_id = ?');
    args.push(project.id);
  }
  if (filter.column) {
    // an unknown column is a mistake to name, not an empty list (the same message as a move's)
    if (project) columnOf(getColumns(db, project.id), filter.column);
    else {
      const known = db.prepare(`SELECT DISTINCT column_id FROM project_columns ORDER BY column_id`).pluck().all() as string[];
      if (!known.includes(filter.column)) {
        throw new UserError(`unknown column "${filter.column}"; the projects' columns are ${known.join(', ')}`, 'column');
      }
    }
    where.push('t.column_id = ?');
    args.push(filter.column);
  }
  return { where, args };
}

/** How many tickets `listTickets` would page through. */
export function countTickets(db: Db, filter: TicketListFilter = {}): number {
  const { where, args } = listWhere(db, filter);
  return (db.prepare(`SELECT COUNT(*) AS n FROM tickets t WHERE ${where.join(' AND ')}`).get(...args) as { n: number }).n;
}

/** Lists tickets without their bodies, newest first. */
export function listTickets(db: Db, filter: TicketListFilter = {}): TicketView[] {
  const { where, args } = listWhere(db, filter);
  const limit = Math.min(Math.max(filter.limit ?? 200, 1), 1000);
  const rows = db
    .prepare(
      `SELECT t.id, t.project_id, t.number, t.title, '' AS body, t.column_id, t.priority, t.tags, t.created_by, t.claimed_by_run, t.claimed_at,
              t.branch, t.worktree_path, t.created_at, t.updated_at, t.column_entered_at, t.archived_at, p.abbreviation
       FROM tickets t JOIN projects p ON p.id = t.project_id WHERE ${where.join(' AND ')} ORDER BY t.updated_at DESC, t.id DESC LIMIT ? OFFSET ?`,
    )
    .all(...args, limit, Math.max(filter.offset ?? 0, 0)) as (Ticket & { abbreviation: string })[];
  return rows.map(toView);
}

export interface InboxItem extends TicketView {
  project_name: string;
  /** who made the last move into human: the person (`human`), the daemon (`system`, `merge`) or an agent (`<type>:<run>`) */
  parked_by: string | null;
  reason: string | null;
  /** the first non-empty line of `reason`, for one-line rows */
  note: string;
  reason_type: string | null;
  reason_author: string | null;
}

/**
 * The inbox's two lists of tickets in `human`: `needs` holds what an agent or the daemon put there
 * (a question, a give-up note, a merge conflict, a limit, a failure) and is what the badge counts;
 * `backlog` holds what the person filed or moved there themselves. `parked_by` (kept by a trigger on
 * every move into human, lib/db/migrations.ts) tells them apart.
 */
export const INBOX_TABS = ['needs', 'backlog'] as const;
export type InboxTab = (typeof INBOX_TABS)[number];

export interface InboxFilter {
  tab?: InboxTab;
  project?: string | number;
  priority?: string;
  limit?: number;
  offset?: number;
}

// the same expressions as the tickets_inbox_order index, so both lists walk it in their order
const BACKLOG_EXPR = `(t.parked_by IS 'human')`;
const RANKS: Record<Priority, number> = { urgent: 0, high: 1, normal: 2, low: 3 };

/** The WHERE of one inbox list over `tickets t`, answered from the index alone (no table rows read). */
function inboxWhere(db: Db, filter: InboxFilter): { sql: string; args: (string | number)[] } {
  const tab = filter.tab ?? 'needs';
  if (!INBOX_TABS.includes(tab)) throw new UserError(`tab must be one of ${INBOX_TABS.join(', ')}`, 'tab');
  const where = [
    `t.column_id = 'human'`,
    't.archived_at IS NULL',
    `${BACKLOG_EXPR} = ?`,
    `t.project_id NOT IN (SELECT id FROM projects WHERE status = 'archived')`,
  ];
  const args: (string | number)[] = [tab === 'backlog' ? 1 : 0];
  if (filter.project !== undefined && filter.project !== '') {
    where.push('t.project_id = ?');
    args.push(getProject(db, filter.project).id);
  }
  if (filter.priority !== undefined && filter.priority !== '') {
    where.push(`${PRIORITY_RANK} = ?`);
    args.push(RANKS[checkPriority(filter.priority)]);
  }
  return { sql: where.join(' AND '), args };
}

/**
 * One list of the inbox, most urgent first, then the one waiting longest, with the last
 * block/system/merge note or move note (a creation is a move from nowhere and is no reason).
 * The page's ids come from the index first, so a deep page reads only its own rows.
 */
export function inbox(db: Db, filter: InboxFilter = {}): InboxItem[] {
  const { sql, args } = inboxWhere(db, filter);
  const rows = db
    .prepare(
      `WITH page AS (
         SELECT t.id, ROW_NUMBER() OVER (ORDER BY ${PRIORITY_RANK}, t.column_entered_at, t.id) AS n
         FROM tickets t INDEXED BY tickets_inbox_order WHERE ${sql}
         ORDER BY ${PRIORITY_RANK}, t.column_entered_at, t.id LIMIT ? OFFSET ?)
       SELECT t.id, t.project_id, t.number, t.title, '' AS body, t.column_id, t.priority, t.tags, t.created_by, t.claimed_by_run, t.claimed_at,
              t.branch, t.worktree_path, t.created_at, t.updated_at, t.column_entered_at, t.archived_at, t.parked_by,
              p.abbreviation, p.name AS project_name, c.body AS reason, c.type AS reason_type, c.author AS reason_author
       FROM page
       JOIN tickets t ON t.id = page.id
       JOIN projects p ON p.id = t.project_id
       LEFT JOIN comments c ON c.id = (
         SELECT id FROM comments WHERE ticket_id = t.id AND type IN ('block', 'system', 'merge', 'move') AND (type != 'move' OR (body != '' AND from_column IS NOT NULL))
         ORDER BY id DESC LIMIT 1)
       ORDER BY page.n`,
    )
    .all(...args, Math.min(Math.max(filter.limit ?? 200, 1), 1000), Math.max(filter.offset ?? 0, 0)) as (Ticket & {
    abbreviation: string;
    project_name: string;
    parked_by: string | null;
    reason: string | null;
    reason_type: string | null;
    reason_author: string | null;
  })[];
  return rows.map((r) => ({
    ...toView(r),
    project_name: r.project_name,
    parked_by: r.parked_by,
    reason: r.reason,
    note:
      (r.reason ?? '')
        .split('\n')
        .map((l) => l.trim())
        .find(Boolean) ?? '',
    reason_type: r.reason_type,
    reason_author: r.reason_author,
  }));
}

/** How many tickets one list of the inbox holds; with no filter, the `needs` count is the header badge. */
export function inboxCount(db: Db, filter: InboxFilter = {}): number {
  const { sql, args } = inboxWhere(db, filter);
  return (db.prepare(`SELECT COUNT(*) AS n FROM tickets t INDEXED BY tickets_inbox_order WHERE ${sql}`).get(...args) as { n: number }).n;
}

export interface BoardColumn extends Column {
  count: number;
  tickets: TicketView[];
  truncated: boolean;
}

/** Cards a board shows per column (newest first); the rest are a click away on the column's list. Keeps a board of 10,000 tickets small (BENCHMARKS.md). */
export const BOARD_COLUMN_LIMIT = 50;

/**
 * The SQL condition for a board's filter box: the text within the title (ASCII letters in any case), the ticket's
 * number (`42`, `#42` or `pd-42`), or its priority. Empty text filters nothing.
 */
function cardFilter(text: string): { sql: string; args: (string | number)[] } {
  const t = text.trim().toLowerCase();
  if (!t) return { sql: '', args: [] };
  const number = /^(?:[a-z][a-z0-9]*-|#)?(\d+)$/.exec(t);
  const like = `%${t.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return { sql: ` AND (t.title LIKE ? ESCAPE '\\' OR t.number = ? OR t.priority = ?)`, args: [like, number ? Number(number[1]) : -1, t] };
}

/**
 * A project's board: every column with its count and cards (no bodies); `done` shows the newest
 * `doneLimit`. With `filter`, only the matching cards, and the columns count only those.
 */
export function board(
  db: Db,
  projectRef: string | number,
  doneLimit: number,
  perColumnLimit = BOARD_COLUMN_LIMIT,
  filter = '',
): BoardColumn[] {
  const project = getProject(db, projectRef);
  const f = cardFilter(filter);
  const counts = new Map(
    (
      db
        .prepare(`SELECT column_id, COUNT(*) AS n FROM tickets t WHERE project_id = ? AND archived_at IS NULL${f.sql} GROUP BY column_id`)
        .all(project.id, ...f.args) as { column_id: string; n: number }[]
    ).map((r) => [r.column_id, r.n]),
  );
  const cards = db.prepare(
    `SELECT t.id, t.project_id, t.number, t.title, '' AS body, t.column_id, t.priority, t.tags, t.created_by, t.claimed_by_run, t.claimed_at,
            t.branch, t.worktree_path, t.created_at, t.updated_at, t.column_entered_at, t.archived_at, ? AS abbreviation
     FROM tickets t WHERE t.project_id = ? AND t.column_id = ? AND t.archived_at IS NULL${f.sql}
     ORDER BY t.updated_at DESC, t.id DESC LIMIT ?`,
  );
  return getColumns(db, project.id).map((col) => {
    const count = counts.get(col.column_id) ?? 0;
    const limit = col.column_id === DONE ? doneLimit : perColumnLimit;
    const rows = cards.all(project.abbreviation, project.id, col.column_id, ...f.args, limit) as (Ticket & { abbreviation: string })[];
    const tickets = rows.map(toView);
    return { ...col, count, tickets, truncated: count > tickets.length };
  });
}

export interface MergeRecord {
  merged_at: number | null;
  merge_commit: string | null;
}

/** When and by which commit the ticket's branch was last merged into the main branch. */
export function getMergeRecord(db: Db, ticketId: number): MergeRecord {
  const row = db.prepare(`SELECT merged_at, merge_commit FROM tickets WHERE id = ?`).get(ticketId) as MergeRecord | undefined;
  if (!row) throw new NotFoundError('ticket', ticketId);
  return row;
}

/**
 * Records the ticket's branch and worktree. A branch created afresh (first run, or a ticket
 * reopened after its branch was merged and deleted) starts unmerged.
 */
export function recordWorkspace(db: Db, ticketId: number, ws: { branch: string; worktreePath: string; freshBranch: boolean }): void {
  const fresh = ws.freshBranch ? 1 : 0;
  db.prepare(
    `UPDATE tickets SET branch = ?, worktree_path = ?, updated_at = ?,
       merged_at = CASE WHEN ? THEN NULL ELSE merged_at END, merge_commit = CASE WHEN ? THEN NULL ELSE merge_commit END
     WHERE id = ?`,
  ).run(ws.branch, ws.worktreePath, Date.now(), fresh, fresh, ticketId);
}

/**
 * Records the ticket's branch without a worktree here (its agents ran on a runner, lib/remoteBranch.ts).
 * A branch new here starts unmerged, as recordWorkspace's fresh branch does.
 */
export function recordBranch(db: Db, ticketId: number, branch: string, freshBranch: boolean): void {
  const fresh = freshBranch ? 1 : 0;
  db.prepare(
    `UPDATE tickets SET branch = ?, updated_at = ?,
       merged_at = CASE WHEN ? THEN NULL ELSE merged_at END, merge_commit = CASE WHEN ? THEN NULL ELSE merge_commit END
     WHERE id = ?`,
  ).run(branch, Date.now(), fresh, fresh, ticketId);
}

/** Forgets the ticket's worktree folder once it is removed; the branch name stays as history. */
export function clearWorktree(db: Db, ticketId: number): void {
  db.prepare(`UPDATE tickets SET worktree_path = NULL, updated_at = ? WHERE id = ?`).run(Date.now(), ticketId);
}

/** Marks the ticket merged (by `commit`, or null when there was nothing to merge) and writes the `merge` comment, in one transaction. */
export function recordMerge(db: Db, ticketId: number, commit: string | null, comment: string, author: string): void {
  db.transaction(() => {
    const now = Date.now();
    db.prepare(`UPDATE tickets SET merged_at = ?, merge_commit = ?, updated_at = ? WHERE id = ?`).run(now, commit, now, ticketId);
    addSystemComment(db, ticketId, 'merge', comment, author);
  }).immediate();
}

/** The project's tickets that have a worktree folder recorded. */
export function ticketsWithWorktrees(db: Db, projectId: number): Ticket[] {
  return db.prepare(`SELECT * FROM tickets WHERE project_id = ? AND worktree_path IS NOT NULL`).all(projectId) as Ticket[];
}

/** Done tickets whose branch still waits to be merged, with when they entered done (part of the merge job's key). */
export function mergeCandidates(db: Db, projectId: number): { id: number; column_entered_at: number; priority: Priority }[] {
  return db
    .prepare(
      `SELECT id, column_entered_at, priority FROM tickets INDEXED BY tickets_unmerged
       WHERE project_id = ? AND column_id = 'done' AND branch IS NOT NULL AND merged_at IS NULL AND archived_at IS NULL
         -- a run on a runner still holding the ticket: its branch is fetched back when it ends, then the merge
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = claimed_by_run AND r.runner_id IS NOT NULL)
       ORDER BY column_entered_at, id`,
    )
    .all(projectId) as { id: number; column_entered_at: number; priority: Priority }[];
}
