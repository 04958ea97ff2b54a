// Dispatch pauses per agent CLI (lib/clis/: a run's CLI), set by a run's cause (lib/runCause.ts) and
// kept in daemon_state, so a restart keeps them. A usage limit pauses until its reset time plus a
// margin and ends by itself (reserveRun compares times; the engine wakes waiting projects then). A
// login or setup problem pauses until it is cleared: a changed setting, the banner's Retry button,
// or `dispatch resume`. reserveRun checks the pause inside its transaction.
import type { Db } from './db/connection.js';
import type { RunCause } from './runCause.js';

const PREFIX = 'cli_pause:';

export interface CliPause {
  cli: string;
  cause: Extract<RunCause, 'usage_limit' | 'auth' | 'config'>;
  /** when dispatching resumes by itself (ms since the epoch); null until someone fixes the cause */
  until: number | null;
  /** usage_limit: the reset time the CLI named (ms since the epoch) */
  resetsAt?: number;
  /** usage_limit: the CLI's name for the limit (five_hour, seven_day, …) */
  limitType?: string;
  /** what to fix, in a user's words ("claude_binary /x not found") */
  fix?: string;
  /** the run that hit it */
  runId: string;
  since: number;
}

/** Sets (or replaces) a CLI's pause; inside the caller's transaction when there is one. */
export function setCliPause(db: Db, p: CliPause): void {
  db.prepare(
    `INSERT INTO daemon_state (key, value, updated_at) VALUES (?, ?, ?)
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
  ).run(PREFIX + p.cli, JSON.stringify(p), p.since);
}

const ROWS = `FROM daemon_state WHERE key >= '${PREFIX}' AND key < '${PREFIX}\uffff'`;

function parse(value: string): CliPause | null {
  try {
    const p = JSON.parse(value) as CliPause;
    return typeof p.cli === 'string' && typeof p.cause === 'string' ? p : null;
  } catch {
    return null;
  }
}

/** Pauses in force at `now` (a usage limit past its time is over even before its row is removed). */
export function activeCliPauses(db: Db, now = Date.now()): CliPause[] {
  const rows = db.prepare(`SELECT value ${ROWS} ORDER BY key`).all() as { value: string }[];
  return rows.map((r) => parse(r.value)).filter((p): p is CliPause => p !== null && (p.until === null || p.until > now));
}

export function cliPause(db: Db, cli: string, now = Date.now()): CliPause | null {
  return activeCliPauses(db, now).find((p) => p.cli === cli) ?? null;
}

/** Removes pauses: all, or those whose causes are listed, plus those whose time is over. Returns how many were in force. */
export function clearCliPauses(db: Db, opts: { causes?: readonly CliPause['cause'][]; now?: number } = {}): number {
  const now = opts.now ?? Date.now();
  const rows = db.prepare(`SELECT key, value ${ROWS}`).all() as { key: string; value: string }[];
  let cleared = 0;
  for (const r of rows) {
    const p = parse(r.value);
    const over = !p || (p.until !== null && p.until <= now);
    if (!over && opts.causes && !opts.causes.includes(p!.cause)) continue;
    db.prepare(`DELETE FROM daemon_state WHERE key = ?`).run(r.key);
    if (!over) cleared++;
  }
  return cleared;
}

/** The earliest time a pause in force ends by itself, or null. */
export function nextPauseEnd(db: Db, now = Date.now()): number | null {
  const ends = activeCliPauses(db, now)
    .map((p) => p.until)
    .filter((u): u is number => u !== null);
  return ends.length ? Math.min(...ends) : null;
}

const hhmm = (ms: number) => {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
};

/** One line for the banner and `dispatch daemon status`: "paused by a usage limit until 07:15 (five_hour)". */
export function describeCliPause(p: CliPause): string {
  if (p.cause === 'usage_limit') {
    return `${p.cli} paused by a usage limit until ${hhmm(p.resetsAt ?? p.until ?? Date.now())} (${p.limitType ?? 'unknown'})`;
  }
  const what = p.cause === 'auth' ? 'a login problem' : 'a setup problem';
  return `${p.cli} paused by ${what}: ${p.fix ?? 'see the last failed run'}`;
}

/** The pauses in force as the API, the banner and the CLI show them. */
export function cliPauseView(db: Db, now = Date.now()): (CliPause & { message: string; retryable: boolean })[] {
  return activeCliPauses(db, now).map((p) => ({ ...p, message: describeCliPause(p), retryable: p.until === null }));
}
