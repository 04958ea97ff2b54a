// Agent runs: one spawn of an agent for a ticket. The row is the durable record the runtime
// writes at claim, spawn and finalize; history pages and the CLI read it.
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

export function listRunsForTicket(db: Db, ticketId: number): Run[] {
  return db.prepare(`SELECT * FROM runs WHERE ticket_id = ? ORDER BY created_at, id`).all(ticketId) as Run[];
}
