// Versioned schema migrations, tracked in `PRAGMA user_version`. Each migration runs in its own
// IMMEDIATE transaction that re-reads the version first, so two processes starting at once (or a
// second run) never apply a migration twice. Migrations are append-only: never edit a shipped one.
import type { Db } from './connection.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE agent_types (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  model TEXT NOT NULL,
  allowed_tools TEXT NOT NULL DEFAULT '[]',
  permission_mode TEXT NOT NULL DEFAULT 'acceptEdits',
  timeout_minutes INTEGER NOT NULL DEFAULT 30,
  max_retries INTEGER NOT NULL DEFAULT 2,
  builtin INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE project_types (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  builtin INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

CREATE TABLE project_type_columns (
  project_type_id TEXT NOT NULL REFERENCES project_types(id) ON DELETE CASCADE,
  column_id TEXT NOT NULL,
  name TEXT NOT NULL,
  position INTEGER NOT NULL,
  agent_type_id TEXT REFERENCES agent_types(id),
  PRIMARY KEY (project_type_id, column_id)
);

CREATE TABLE projects (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  path TEXT NOT NULL UNIQUE,
  abbreviation TEXT UNIQUE,
  project_type_id TEXT REFERENCES project_types(id),
  status TEXT NOT NULL CHECK (status IN ('unregistered','active','dormant','missing','archived')),
  previous_status TEXT,
  main_branch TEXT,
  next_ticket_number INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE project_columns (
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  column_id TEXT NOT NULL,
  name TEXT NOT NULL,
  position INTEGER NOT NULL,
  agent_type_id TEXT REFERENCES agent_types(id),
  PRIMARY KEY (project_id, column_id)
);

CREATE TABLE tickets (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  number INTEGER NOT NULL,
  title TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '',
  column_id TEXT NOT NULL,
  priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low','normal','high','urgent')),
  tags TEXT NOT NULL DEFAULT '[]',
  created_by TEXT NOT NULL,
  claimed_by_run TEXT,
  claimed_at INTEGER,
  branch TEXT,
  worktree_path TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  column_entered_at INTEGER NOT NULL,
  archived_at INTEGER,
  UNIQUE (project_id, number)
);
CREATE INDEX tickets_board ON tickets (project_id, column_id, updated_at DESC);
CREATE INDEX tickets_by_column ON tickets (column_id, updated_at DESC);

CREATE TABLE comments (
  id INTEGER PRIMARY KEY,
  ticket_id INTEGER NOT NULL REFERENCES tickets(id),
  type TEXT NOT NULL CHECK (type IN ('comment','move','claim','complete','finding','journal','block','merge','system')),
  author TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '',
  severity TEXT CHECK (severity IS NULL OR severity IN ('critical','high','medium','low')),
  title TEXT,
  from_column TEXT,
  to_column TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX comments_by_ticket ON comments (ticket_id, id);
CREATE TRIGGER comments_no_update BEFORE UPDATE ON comments
  BEGIN SELECT RAISE(ABORT, 'ticket history is append-only'); END;
CREATE TRIGGER comments_no_delete BEFORE DELETE ON comments
  BEGIN SELECT RAISE(ABORT, 'ticket history is append-only'); END;

CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  ticket_id INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  agent_type_id TEXT NOT NULL,
  model TEXT NOT NULL,
  column_id TEXT NOT NULL,
  job_id TEXT,
  attempt INTEGER NOT NULL DEFAULT 1,
  status TEXT NOT NULL CHECK (status IN ('queued','running','success','failed','timeout','crashed','killed')),
  pid INTEGER,
  proc_start TEXT,
  exit_code INTEGER,
  error TEXT,
  transcript_path TEXT,
  cwd TEXT,
  result_text TEXT,
  tokens_in INTEGER,
  tokens_out INTEGER,
  cost_usd REAL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER
);
-- a ticket can never have two live runs: the database refuses the second claim
CREATE UNIQUE INDEX runs_one_live_per_ticket ON runs (ticket_id) WHERE status IN ('queued','running');
CREATE INDEX runs_live ON runs (status) WHERE status IN ('queued','running');
CREATE INDEX runs_by_ticket ON runs (ticket_id, created_at);
CREATE INDEX runs_recent ON runs (created_at DESC);

CREATE TABLE heartbeats (
  project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
  interval_seconds INTEGER NOT NULL,
  empty_streak INTEGER NOT NULL DEFAULT 0,
  next_check_at INTEGER NOT NULL,
  last_check_at INTEGER,
  wake_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX heartbeats_due ON heartbeats (next_check_at);

CREATE TABLE job_events (
  id INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL,
  queue TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('running','completed','retry','failed','crashed','cancelled')),
  payload TEXT NOT NULL DEFAULT '{}',
  error TEXT,
  started_at INTEGER NOT NULL,
  ended_at INTEGER
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);
CREATE INDEX job_events_recent ON job_events (id DESC);
`,
  },
  // version 2 was never used
  {
    version: 3,
    name: 'ticket merge record',
    sql: `
ALTER TABLE tickets ADD COLUMN merged_at INTEGER;
ALTER TABLE tickets ADD COLUMN merge_commit TEXT;
`,
  },
  {
    version: 4,
    name: 'indexes for board counts, the inbox and the queue inspector',
    sql: `
-- the board's per-column counts read only this index, not 10,000 table rows
CREATE INDEX tickets_board_counts ON tickets (project_id, archived_at, column_id);
-- the inbox walks human tickets newest first and stops at its page size
CREATE INDEX tickets_inbox ON tickets (column_id, column_entered_at DESC, id DESC) WHERE archived_at IS NULL;
-- the queue inspector counts the last day's completed jobs; job_events grows with every job ever run
CREATE INDEX job_events_completed ON job_events (ended_at) WHERE outcome = 'completed';
`,
  },
  {
    version: 5,
    name: 'index of done tickets waiting for their merge',
    sql: `
-- every scan looks for them; without it, it read every done ticket of the project
CREATE INDEX tickets_unmerged ON tickets (project_id) WHERE column_id = 'done' AND branch IS NOT NULL AND merged_at IS NULL AND archived_at IS NULL;
`,
  },
  {
    version: 6,
    name: 'run secrets and the index of claimed tickets',
    sql: `
-- the SHA-256 of the secret the agent process got in its environment; ticket.cjs finds the run by it
ALTER TABLE runs ADD COLUMN secret_hash TEXT;
CREATE UNIQUE INDEX runs_by_secret ON runs (secret_hash) WHERE secret_hash IS NOT NULL;
-- every scan looks for claims whose run is not live; without it, it read every ticket of the project
CREATE INDEX tickets_claimed ON tickets (project_id) WHERE claimed_by_run IS NOT NULL;
`,
  },
  {
    version: 7,
    name: 'full-text search over tickets and their history',
    sql: `
-- One document per ticket that is not archived (rowid = ticket id): its title, its body and the
-- text of its history, so a search needs no look at archived rows. Words (unicode61, accents
-- folded) rather than trigrams: half the size, a third of the write cost, words of one or two
-- letters ("ui", "db") stay searchable, and a word's list of tickets is read as a stream that a
-- page of hits stops early. No stemmer: porter would stem a prefix too ("pay*" would look for
-- "pai"). A prefix is asked for ("pay*"); the index of 3-letter prefixes keeps a short one from
-- merging the lists of every word it begins.
CREATE VIRTUAL TABLE ticket_search USING fts5(title, body, history, tokenize = 'unicode61 remove_diacritics 2', prefix = '3');
-- What the index holds for each ticket, exactly: the backfill and a ticket coming back from the
-- archive read it, and the tests compare the index with it. History rows are appended in id order,
-- each after a newline; claims and the creation marker say nothing worth finding.
CREATE VIEW ticket_search_source AS
SELECT t.id, t.title, t.body,
  coalesce((SELECT group_concat(char(10) || coalesce(c.title || char(10), '') || c.body, '' ORDER BY c.id) FROM comments c
            WHERE c.ticket_id = t.id AND c.type != 'claim' AND NOT (c.type = 'move' AND c.from_column IS NULL)
              AND (c.body != '' OR c.title IS NOT NULL)), '') AS history
FROM tickets t WHERE t.archived_at IS NULL;

CREATE TRIGGER ticket_search_insert AFTER INSERT ON tickets WHEN new.archived_at IS NULL BEGIN
  INSERT INTO ticket_search (rowid, title, body, history) VALUES (new.id, new.title, new.body, '');
END;
-- tickets change often (column, claim, times); only a new title or body is indexed again
CREATE TRIGGER ticket_search_update AFTER UPDATE OF title, body ON tickets
  WHEN old.title IS NOT new.title OR old.body IS NOT new.body BEGIN
  UPDATE ticket_search SET title = new.title, body = new.body WHERE rowid = new.id;
END;
CREATE TRIGGER ticket_search_archive AFTER UPDATE OF archived_at ON tickets
  WHEN old.archived_at IS NULL AND new.archived_at IS NOT NULL BEGIN
  DELETE FROM ticket_search WHERE rowid = new.id;
END;
CREATE TRIGGER ticket_search_unarchive AFTER UPDATE OF archived_at ON tickets
  WHEN old.archived_at IS NOT NULL AND new.archived_at IS NULL BEGIN
  INSERT INTO ticket_search (rowid, title, body, history) SELECT id, title, body, history FROM ticket_search_source WHERE id = new.id;
END;
CREATE TRIGGER ticket_search_delete AFTER DELETE ON tickets BEGIN
  DELETE FROM ticket_search WHERE rowid = old.id;
END;
-- history is append-only, so a new row is appended to its ticket's document
CREATE TRIGGER ticket_search_history AFTER INSERT ON comments
  WHEN new.type != 'claim' AND NOT (new.type = 'move' AND new.from_column IS NULL) AND (new.body != '' OR new.title IS NOT NULL) BEGIN
  UPDATE ticket_search SET history = history || char(10) || coalesce(new.title || char(10), '') || new.body WHERE rowid = new.ticket_id;
END;

INSERT INTO ticket_search (rowid, title, body, history) SELECT id, title, body, history FROM ticket_search_source;
-- a search's column filter checks each match with one seek (column, id), never reading the ticket
-- row: its body comes before its column, so reading the column means reading the body
CREATE INDEX tickets_search_column ON tickets (column_id);
`,
  },
  {
    version: 8,
    name: 'daily budgets',
    sql: `
-- a project's own daily budget in USD; NULL means none (the global budgets.daily_usd still applies)
ALTER TABLE projects ADD COLUMN daily_budget_usd REAL;
-- every reservation sums the day's recorded cost: this index covers that sum and the costs page
CREATE INDEX runs_cost_by_end ON runs (ended_at, project_id, cost_usd) WHERE ended_at IS NOT NULL;
`,
  },
  {
    version: 9,
    name: 'daemon switches (the global agent pause)',
    sql: `
-- small named switches that must survive a restart; a row present means the switch is on
CREATE TABLE IF NOT EXISTS daemon_state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL DEFAULT '{}',
  updated_at INTEGER NOT NULL
);
`,
  },
  {
    version: 10,
    name: 'why a run failed',
    sql: `
-- usage_limit, rate_limited, auth, config or agent (lib/runCause.ts); NULL for a run that did not fail
ALTER TABLE runs ADD COLUMN cause TEXT;
CREATE INDEX runs_by_cause ON runs (cause, created_at) WHERE cause IS NOT NULL;
`,
  },
  {
    version: 11,
    name: 'per-project parallel coding and agent types that edit the working tree',
    sql: `
-- 1 = each ticket on its own branch and worktree, 0 = agents work in the project folder itself,
-- NULL = the global agents.parallel_coding
ALTER TABLE projects ADD COLUMN parallel_coding INTEGER CHECK (parallel_coding IS NULL OR parallel_coding IN (0, 1));
-- an agent type that changes files: in a project whose agents work in the folder itself, one such
-- run at a time per project
ALTER TABLE agent_types ADD COLUMN edits_working_tree INTEGER NOT NULL DEFAULT 0 CHECK (edits_working_tree IN (0, 1));
UPDATE agent_types SET edits_working_tree = 1
  WHERE builtin = 1 AND id IN ('coding-agent', 'writer', 'editor', 'sysadmin', 'deployer');
`,
  },
  {
    version: 12,
    name: 'who parked each ticket in human, and the inbox order',
    sql: `
-- The inbox splits human tickets by who put them there: the person's own (the backlog) or an agent
-- or the daemon (needs the person). Every move into human writes a history row with to_column =
-- 'human' (a move, or the system note of a removed column), whoever writes it (the daemon, ticket.cjs,
-- SQL by hand): this trigger keeps its author on the ticket in that same transaction.
ALTER TABLE tickets ADD COLUMN parked_by TEXT;
UPDATE tickets SET parked_by = COALESCE(
  (SELECT c.author FROM comments c WHERE c.ticket_id = tickets.id AND c.to_column = 'human' ORDER BY c.id DESC LIMIT 1), created_by)
WHERE column_id = 'human';
CREATE TRIGGER tickets_parked_by AFTER INSERT ON comments WHEN NEW.to_column = 'human'
BEGIN
  UPDATE tickets SET parked_by = NEW.author WHERE id = NEW.ticket_id;
END;
-- both inbox lists walk this in their order (priority, then oldest waiting) and stop at the page
-- size; a priority filter is a range of it; it holds the project, so counts and filters (the badge,
-- a 10,000-ticket backlog) never read the table's rows
DROP INDEX IF EXISTS tickets_inbox;
CREATE INDEX tickets_inbox_order ON tickets (
  column_id, (parked_by IS 'human'),
  (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END), column_entered_at, id, project_id
) WHERE archived_at IS NULL;
`,
  },
  {
    version: 13,
    name: 'notifications and the per-project mute',
    sql: `
-- 1 = this project's tickets send no notification (webhook, desktop, browser pop-up); the inbox still counts them
ALTER TABLE projects ADD COLUMN notifications_muted INTEGER NOT NULL DEFAULT 0 CHECK (notifications_muted IN (0, 1));
-- What the daemon tells the person about. A row is written in the same transaction as its cause:
-- this trigger writes one for every move into human by an agent or the daemon, whatever process
-- writes it (the daemon, ticket.cjs); the daemon writes those it causes itself (a pause). The
-- daemon fills in title and body from the committed ticket, then queues one delivery job per
-- channel and sets queued_at; the browser's poll reads the rows by id.
CREATE TABLE notifications (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('inbox', 'paused')),
  ticket_id INTEGER,
  project_id INTEGER,
  -- the move into human: its note is the one written with it or after it, before the next move
  comment_id INTEGER,
  author TEXT,
  -- one notification per event that may be reported again (a budget reached, once a day)
  dedupe_key TEXT UNIQUE,
  title TEXT,
  body TEXT,
  created_at INTEGER NOT NULL,
  queued_at INTEGER,
  -- what became of it: 'queued', 'muted', or 'none' (no channel set)
  outcome TEXT
);
CREATE INDEX notifications_unqueued ON notifications (id) WHERE queued_at IS NULL;
CREATE TRIGGER notifications_inbox AFTER INSERT ON comments WHEN NEW.to_column = 'human' AND NEW.author != 'human'
BEGIN
  INSERT INTO notifications (kind, ticket_id, project_id, comment_id, author, created_at)
    SELECT 'inbox', t.id, t.project_id, NEW.id, NEW.author, NEW.created_at FROM tickets t WHERE t.id = NEW.ticket_id;
END;
`,
  },
  {
    version: 14,
    name: 'the merge queue: a check per project, check runs, worktree setup',
    sql: `
-- a shell command (run by sh -c in the ticket's worktree) that must pass before a branch lands on
-- main; NULL: branches merge as soon as their ticket is done, untested
ALTER TABLE projects ADD COLUMN check_command TEXT;
ALTER TABLE projects ADD COLUMN check_timeout_minutes INTEGER NOT NULL DEFAULT 30 CHECK (check_timeout_minutes BETWEEN 1 AND 1440);
-- run once in a ticket's new worktree (e.g. npm ci), after copy_files (a JSON list of paths
-- relative to the project folder, e.g. [".env"]) were copied in
ALTER TABLE projects ADD COLUMN setup_command TEXT;
ALTER TABLE projects ADD COLUMN copy_files TEXT NOT NULL DEFAULT '[]';
-- every run of a project's check on a ticket's branch with main merged in: tested_commit is the
-- exact commit checked, merge_commit the commit that then landed on main (NULL until it did)
CREATE TABLE check_runs (
  id INTEGER PRIMARY KEY,
  ticket_id INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  command TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'pass', 'fail', 'timeout', 'error')),
  exit_code INTEGER,
  note TEXT,
  pid INTEGER,
  cwd TEXT NOT NULL,
  output_path TEXT NOT NULL,
  tested_commit TEXT NOT NULL,
  main_commit TEXT NOT NULL,
  merge_commit TEXT,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  UNIQUE (ticket_id, attempt)
);
CREATE INDEX check_runs_by_project ON check_runs (project_id, started_at);
CREATE INDEX check_runs_running ON check_runs (status) WHERE status = 'running';
-- the built-in merge-resolver (seeded from this version on) changes files: it resolves conflicts
UPDATE agent_types SET edits_working_tree = 1 WHERE builtin = 1 AND id = 'merge-resolver';
`,
  },
  {
    version: 15,
    name: 'the agent CLI of each agent type and of each run',
    sql: `
-- which agent CLI runs the agent type (lib/clis/); a run keeps the CLI it was started with, since its
-- transcript is in that CLI's format and its pause belongs to that CLI even if the type changes later
ALTER TABLE agent_types ADD COLUMN cli TEXT NOT NULL DEFAULT 'claude' CHECK (cli IN ('claude', 'codex', 'gemini', 'opencode'));
ALTER TABLE runs ADD COLUMN cli TEXT NOT NULL DEFAULT 'claude';
`,
  },
  {
    version: 16,
    name: 'runners: agents on other machines',
    sql: `
-- A runner (a \`dispatch runner\` process) proves itself with a token shown once; only its SHA-256
-- is kept. slots: the most runs it may hold at once (the claim's transaction enforces it); host and
-- version: what its last hello said; revoked_at: its token no longer works.
CREATE TABLE runners (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  token_hash TEXT NOT NULL UNIQUE,
  slots INTEGER NOT NULL DEFAULT 2 CHECK (slots BETWEEN 1 AND 100),
  host TEXT,
  version TEXT,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER,
  revoked_at INTEGER
);
-- the runner that took the run (NULL: the run is this machine's); its agent's pid on that machine
-- (never in runs.pid, which names local processes); its last heartbeat; the transcript bytes held
ALTER TABLE runs ADD COLUMN runner_id INTEGER REFERENCES runners(id);
ALTER TABLE runs ADD COLUMN runner_pid INTEGER;
ALTER TABLE runs ADD COLUMN beat_at INTEGER;
ALTER TABLE runs ADD COLUMN transcript_bytes INTEGER;
CREATE INDEX runs_live_by_runner ON runs (runner_id) WHERE runner_id IS NOT NULL AND status IN ('queued','running');
-- where a project's agents run: on this machine, or on runners, which share its code through remote_url
ALTER TABLE projects ADD COLUMN remote_url TEXT;
ALTER TABLE projects ADD COLUMN runs_on TEXT NOT NULL DEFAULT 'local' CHECK (runs_on IN ('local', 'runners'));
`,
  },
];

export const LATEST_VERSION = Math.max(...migrations.map((m) => m.version));

/**
 * Applies every pending migration in version order, whatever their order in the list; returns the
 * versions applied (empty when up to date). Versions may have gaps (2 was never used): only the
 * order matters, since `user_version` records the highest one applied.
 */
export function migrate(db: Db, list: readonly Migration[] = migrations): number[] {
  const applied: number[] = [];
  for (const m of [...list].sort((a, b) => a.version - b.version)) {
    const ran = db
      .transaction(() => {
        const current = db.pragma('user_version', { simple: true }) as number;
        if (current >= m.version) return false;
        db.exec(m.sql);
        db.pragma(`user_version = ${m.version}`);
        return true;
      })
      .immediate();
    if (ran) applied.push(m.version);
  }
  return applied;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}
