// Agent runs: one spawn of an agent for a ticket. The row is the durable record the runtime
// writes at claim, spawn and finalize; history pages and the CLI read it. A transcript path is
// only ever taken from a run row and must resolve inside the runs folder, so no request can
// point the server at another file.
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError, UserError } from './errors.js';
import type { Db } from './db/connection.js';

export const RUN_STATUS = {
  queued: 'queued',
  running: 'running',
  success: 'success',
  failed: 'failed',
  timeout: 'timeout',
  crashed: 'crashed',
  killed: 'killed',
} as const;
export type RunStatus = (typeof RUN_STATUS)[keyof typeof RUN_STATUS];
export const LIVE_STATUSES: readonly RunStatus[] = [RUN_STATUS.queued, RUN_STATUS.running];
export const RUN_STATUSES: readonly RunStatus[] = Object.values(RUN_STATUS);

export interface Run {
  id: string;
  ticket_id: number;
  project_id: number;
  agent_type_id: string;
  model: string;
  column_id: string;
  job_id: string | null;
  attempt: number;
  status: RunStatus;
  pid: number | null;
  proc_start: string | null;
  exit_code: number | null;
  error: string | null;
  transcript_path: string | null;
  cwd: string | null;
  result_text: string | null;
  tokens_in: number | null;
  tokens_out: number | null;
  cost_usd: number | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
}

/** A run with the human-readable key and title of its ticket. */
export interface RunListItem extends Run {
  ticket_key: string;
  ticket_title: string;
}

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

export function listRunsForTicket(db: Db, ticketId: number): Run[] {
  return db.prepare(`SELECT * FROM runs WHERE ticket_id = ? ORDER BY created_at, id`).all(ticketId) as Run[];
}

/** Recent runs across projects, newest first; ask for one more than a page to know if there is a next one. */
export function listRuns(db: Db, filter: { status?: RunStatus; limit: number; offset: number }): RunListItem[] {
  if (filter.status !== undefined && !RUN_STATUSES.includes(filter.status)) throw new UserError(`status must be one of ${RUN_STATUSES.join(', ')}`, 'status');
  return db
    .prepare(
      `SELECT r.*, p.abbreviation || '-' || t.number AS ticket_key, t.title AS ticket_title
       FROM runs r JOIN tickets t ON t.id = r.ticket_id JOIN projects p ON p.id = t.project_id
       WHERE (@status IS NULL OR r.status = @status)
       ORDER BY r.created_at DESC, r.id DESC LIMIT @limit OFFSET @offset`,
    )
    .all({ status: filter.status ?? null, limit: filter.limit, offset: filter.offset }) as RunListItem[];
}

export function getRun(db: Db, id: string): RunListItem {
  const row = RUN_ID.test(id)
    ? (db
        .prepare(
          `SELECT r.*, p.abbreviation || '-' || t.number AS ticket_key, t.title AS ticket_title
           FROM runs r JOIN tickets t ON t.id = r.ticket_id JOIN projects p ON p.id = t.project_id WHERE r.id = ?`,
        )
        .get(id) as RunListItem | undefined)
    : undefined;
  if (!row) throw new NotFoundError('run', id);
  return row;
}

/**
 * The run's transcript file, or null when it has none yet. Throws when the recorded path (or the
 * file it links to) lies outside `runsDir`.
 */
export function transcriptFile(runsDir: string, run: Pick<Run, 'id' | 'transcript_path'>): string | null {
  if (!run.transcript_path) return null;
  const root = path.resolve(runsDir);
  const inside = (p: string, base: string) => {
    const rel = path.relative(base, p);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  const file = path.resolve(root, run.transcript_path);
  if (!inside(file, root)) throw new UserError(`run ${run.id}: transcript path is outside the runs folder`, 'transcript_path');
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return null;
  }
  if (!inside(real, fs.realpathSync(root))) throw new UserError(`run ${run.id}: transcript path is outside the runs folder`, 'transcript_path');
  return real;
}
