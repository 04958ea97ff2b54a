// The global agent pause: one switch, stored in the database (daemon_state) so a restart keeps it.
// While it is on, reserveRun refuses every new run; whether runs already going are stopped is
// decided when it is turned on (lib/pausing.ts).
import type { Db } from './db/connection.js';

const KEY = 'agents_paused';

export interface GlobalPause {
  /** when the pause was turned on (ms since the epoch) */
  since: number;
}

export function getGlobalPause(db: Db): GlobalPause | null {
  const row = db.prepare(`SELECT updated_at FROM daemon_state WHERE key = ?`).get(KEY) as { updated_at: number } | undefined;
  return row ? { since: row.updated_at } : null;
}

/** Turns the pause on (an earlier `since` is kept) or off; returns the new state. */
export function setGlobalPause(db: Db, on: boolean): GlobalPause | null {
  if (on) db.prepare(`INSERT OR IGNORE INTO daemon_state (key, value, updated_at) VALUES (?, '{}', ?)`).run(KEY, Date.now());
  else db.prepare(`DELETE FROM daemon_state WHERE key = ?`).run(KEY);
  return getGlobalPause(db);
}

/** The check reserveRun makes inside its transaction. */
export function agentsPaused(db: Db): boolean {
  return db.prepare(`SELECT 1 FROM daemon_state WHERE key = ?`).get(KEY) !== undefined;
}
