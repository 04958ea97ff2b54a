// The ticket rules that bin/ticket.cjs (run by agents, plain CommonJS) and the daemon (lib/, through
// the typed lib/ticketRules.ts) must agree on: one copy, required by both. Dependency-free, so
// ticket.cjs stays fast to start. Not compiled: the sources and the build in dist/ both load this file.
'use strict';

const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

/** A ticket's key: the project's abbreviation and the ticket's number, `pd-42`. */
const TICKET_KEY = /^([a-z][a-z0-9]{0,9})-(\d+)$/i;

/** The most characters a field may hold, and the most tags a ticket may carry. */
const LIMITS = Object.freeze({ title: 500, body: 200000, comment: 200000, tag: 50, tags: 20 });

/** Comment types anyone (agent or person) may write directly; the others are written by moves, claims, merges. */
const FREE_COMMENT_TYPES = Object.freeze(['comment', 'journal', 'block', 'complete']);
const SEVERITIES = Object.freeze(['critical', 'high', 'medium', 'low']);

/** The first column of every board (a person's) and its last (where a ticket's branch is merged). */
const HUMAN = 'human';
const DONE = 'done';

/** A run in one of these states is live: it holds its ticket's claim and a slot under the caps. */
const LIVE_RUN_STATUSES = Object.freeze(['queued', 'running']);

/** Marks a project due now (parameters: now, project id); written in the transaction of the change that made the work. */
const MARK_DUE_SQL = 'UPDATE heartbeats SET next_check_at = ?, empty_streak = 0, wake_seq = wake_seq + 1 WHERE project_id = ?';

/**
 * Does a move make the project due? A move into done does (the merge has work now). A move into an
 * agent column does when a person makes it; an agent run's move does not: the run holds the claim
 * until it ends, so a scan now could not start the next agent, and the run's end wakes the project.
 */
function wakesOnMove(move) {
  if (move.to === DONE) return true;
  return move.toAgentColumn && !move.byRun;
}

/** The data home: DISPATCH_HOME, or ~/Development/.tasks. */
function resolveHome(env) {
  const fromEnv = ((env || process.env).DISPATCH_HOME || '').trim();
  if (fromEnv) return path.resolve(fromEnv);
  return path.join(os.homedir(), 'Development', '.tasks');
}

/** The form a run secret is stored in (the database keeps only this hash). */
function hashRunSecret(secret) {
  return crypto.createHash('sha256').update(secret, 'utf8').digest('hex');
}

module.exports = {
  TICKET_KEY,
  LIMITS,
  FREE_COMMENT_TYPES,
  SEVERITIES,
  HUMAN,
  DONE,
  LIVE_RUN_STATUSES,
  MARK_DUE_SQL,
  wakesOnMove,
  resolveHome,
  hashRunSecret,
};
