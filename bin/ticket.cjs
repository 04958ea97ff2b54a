#!/usr/bin/env node
// ticket.cjs: the agents' interface to their ticket (SPEC 3). Plain CommonJS on purpose: it
// starts fast, needs nothing but better-sqlite3, and uses parameterized statements only. Every
// write is one IMMEDIATE transaction that also appends the history row. It refuses tickets of
// other projects (scope = DISPATCH_PROJECT_ID). JSON on stdout; one-line error on stderr, exit 1.
'use strict';

const path = require('node:path');
const os = require('node:os');

const USAGE = `usage: ticket.cjs <command> [args]

  read <ticket-id>                             the ticket with its comments
  thread <ticket-id>                           the comments only
  comment <ticket-id> <type> <body>            type: comment, journal, block, complete
  move <ticket-id> <column> [comment]          column: one of the project's workflow columns
  claim <ticket-id> <run-id>                   claim the ticket for a run (the daemon does this)
  release <ticket-id>                          release a claim
  finding <ticket-id> <severity> <title> <body>  severity: critical, high, medium, low

A ticket id is the project key and number (pd-42) or the numeric id. A body of "-" is read
from standard input.

environment:
  DISPATCH_PROJECT_ID   required: the project whose tickets this process may touch (id or key)
  DISPATCH_DB_PATH      the database (default: $DISPATCH_HOME/tasks.db or ~/Development/.tasks/tasks.db)
  DISPATCH_AUTHOR       written as the author of history rows (default: agent-type:run-id)
  DISPATCH_PORT         the daemon's port, pinged after a move that gives it work now: into done,
                        or into an agent column (unless DISPATCH_RUN_ID holds the ticket's claim:
                        then the run's end wakes the project)`;

const FREE_TYPES = ['comment', 'journal', 'block', 'complete'];
const SEVERITIES = ['critical', 'high', 'medium', 'low'];
const MAX_TEXT = 200000;
const MAX_TITLE = 500;

class Failure extends Error {}
const fail = (msg) => {
  throw new Failure(msg);
};

function text(value, name, max, required) {
  if (value === undefined) {
    if (required) fail(`missing <${name}>`);
    return '';
  }
  if (value === '-') value = require('node:fs').readFileSync(0, 'utf8');
  if (required && !value.trim()) fail(`<${name}> must not be empty`);
  if (value.length > max) fail(`<${name}> is longer than ${max} characters`);
  return value;
}

function openDb() {
  const file =
    process.env.DISPATCH_DB_PATH ||
    path.join(process.env.DISPATCH_HOME || path.join(os.homedir(), 'Development', '.tasks'), 'tasks.db');
  let Database;
  try {
    Database = require('better-sqlite3');
  } catch (err) {
    fail(`cannot load better-sqlite3: ${err.message}`);
  }
  let db;
  try {
    db = new Database(file, { fileMustExist: true });
  } catch (err) {
    fail(`cannot open database ${file}: ${err.message}`);
  }
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  return db;
}

function scopeProject(db) {
  const scope = (process.env.DISPATCH_PROJECT_ID || '').trim();
  if (!scope) fail('DISPATCH_PROJECT_ID is not set: ticket.cjs only works on the tickets of one project');
  const project = /^\d+$/.test(scope)
    ? db.prepare('SELECT id, abbreviation FROM projects WHERE id = ?').get(Number(scope))
    : db.prepare('SELECT id, abbreviation FROM projects WHERE abbreviation = ?').get(scope.toLowerCase());
  if (!project) fail(`DISPATCH_PROJECT_ID names no project: ${scope}`);
  return project;
}

function findTicket(db, project, ref) {
  if (ref === undefined) fail('missing <ticket-id>');
  let row;
  const key = /^([a-z][a-z0-9]{0,9})-(\d+)$/i.exec(ref);
  if (/^\d+$/.test(ref)) {
    row = db.prepare('SELECT t.*, p.abbreviation FROM tickets t JOIN projects p ON p.id = t.project_id WHERE t.id = ?').get(Number(ref));
  } else if (key) {
    row = db
      .prepare('SELECT t.*, p.abbreviation FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = ? AND t.number = ?')
      .get(key[1].toLowerCase(), Number(key[2]));
  } else {
    fail(`not a ticket id: ${ref} (expected something like ${project.abbreviation || 'pd'}-42)`);
  }
  if (!row) fail(`ticket not found: ${ref}`);
  if (row.project_id !== project.id) fail(`ticket ${ref} belongs to another project; this process may only touch ${project.abbreviation} tickets`);
  return row;
}

const view = (t) => ({
  id: t.id,
  key: `${t.abbreviation}-${t.number}`,
  project_id: t.project_id,
  title: t.title,
  body: t.body,
  column: t.column_id,
  priority: t.priority,
  tags: JSON.parse(t.tags || '[]'),
  created_by: t.created_by,
  claimed_by_run: t.claimed_by_run,
  branch: t.branch,
  created_at: new Date(t.created_at).toISOString(),
  updated_at: new Date(t.updated_at).toISOString(),
});

const thread = (db, id) =>
  db
    .prepare('SELECT id, type, author, body, severity, title, from_column, to_column, created_at FROM comments WHERE ticket_id = ? ORDER BY id')
    .all(id)
    .map((c) => ({ ...c, created_at: new Date(c.created_at).toISOString() }));

function author() {
  if (process.env.DISPATCH_AUTHOR) return process.env.DISPATCH_AUTHOR;
  if (process.env.DISPATCH_AGENT_TYPE) return `${process.env.DISPATCH_AGENT_TYPE}:${process.env.DISPATCH_RUN_ID || 'manual'}`;
  return 'ticket.cjs';
}

function addComment(db, ticketId, c) {
  const now = Date.now();
  db.prepare('UPDATE tickets SET updated_at = ? WHERE id = ?').run(now, ticketId);
  return db
    .prepare(
      `INSERT INTO comments (ticket_id, type, author, body, severity, title, from_column, to_column, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(ticketId, c.type, author(), c.body || '', c.severity || null, c.title || null, c.from || null, c.to || null, now).lastInsertRowid;
}

/** Best effort: tell the daemon to look at the project now. Never fails the command. */
function ping(projectId) {
  const port = Number(process.env.DISPATCH_PORT);
  if (!Number.isInteger(port) || port <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const http = require('node:http');
    // no keep-alive: an open socket would hold this process (and the agent waiting on it) for seconds
    const headers = { 'content-type': 'application/json', 'content-length': 2, connection: 'close' };
    if (process.env.DISPATCH_API_TOKEN) headers.authorization = `Bearer ${process.env.DISPATCH_API_TOKEN}`;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/api/projects/${projectId}/wake`, headers, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', resolve);
    req.on('timeout', () => {
      req.destroy();
      resolve();
    });
    req.end('{}');
  });
}

async function main(argv) {
  const [command, ...args] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command ? 0 : 1;
  }
  const commands = ['read', 'thread', 'comment', 'move', 'claim', 'release', 'finding'];
  if (!commands.includes(command)) fail(`unknown command "${command}"; commands: ${commands.join(', ')} (see --help)`);
  const db = openDb();
  const project = scopeProject(db);
  const ticket = findTicket(db, project, args[0]);
  const out = (value) => process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  // an archived project's tickets are read-only: its agents were stopped when it was archived
  const write = (fn) =>
    db
      .transaction(() => {
        const p = db.prepare('SELECT status FROM projects WHERE id = ?').get(ticket.project_id);
        if (p && p.status === 'archived') fail(`project ${ticket.abbreviation} is archived: its tickets cannot be changed`);
        return fn();
      })
      .immediate();

  switch (command) {
    case 'read':
      out({ ticket: view(ticket), comments: thread(db, ticket.id) });
      break;
    case 'thread':
      out(thread(db, ticket.id));
      break;
    case 'comment': {
      const type = args[1];
      if (!type) fail('missing <type>');
      if (!FREE_TYPES.includes(type)) fail(`comment type must be one of ${FREE_TYPES.join(', ')} (got "${type}")`);
      const body = text(args.slice(2).join(' ') || undefined, 'body', MAX_TEXT, true);
      const id = write(() => addComment(db, ticket.id, { type, body }));
      out({ ok: true, ticket: `${ticket.abbreviation}-${ticket.number}`, comment_id: Number(id), type });
      break;
    }
    case 'finding': {
      const severity = args[1];
      if (!severity) fail('missing <severity>');
      if (!SEVERITIES.includes(severity)) fail(`severity must be one of ${SEVERITIES.join(', ')} (got "${severity}")`);
      const title = text(args[2], 'title', MAX_TITLE, true);
      const body = text(args.slice(3).join(' ') || undefined, 'body', MAX_TEXT, false);
      const id = write(() => addComment(db, ticket.id, { type: 'finding', severity, title, body }));
      out({ ok: true, ticket: `${ticket.abbreviation}-${ticket.number}`, comment_id: Number(id), severity });
      break;
    }
    case 'move': {
      const to = args[1];
      if (!to) fail('missing <column>');
      const comment = text(args.slice(2).join(' ') || undefined, 'comment', MAX_TEXT, false);
      const moved = write(() => {
        const current = db.prepare('SELECT column_id FROM tickets WHERE id = ?').get(ticket.id);
        const columns = db.prepare('SELECT column_id, agent_type_id FROM project_columns WHERE project_id = ? ORDER BY position').all(ticket.project_id);
        const target = columns.find((c) => c.column_id === to);
        if (!target) fail(`unknown column "${to}"; this project's columns are ${columns.map((c) => c.column_id).join(', ')}`);
        if (current.column_id === to) fail(`ticket ${ticket.abbreviation}-${ticket.number} is already in "${to}"`);
        const now = Date.now();
        db.prepare('UPDATE tickets SET column_id = ?, column_entered_at = ?, updated_at = ? WHERE id = ?').run(to, now, now, ticket.id);
        addComment(db, ticket.id, { type: 'move', body: comment, from: current.column_id, to });
        // an agent column (or done: a merge) has work for the daemon, so the project is due now.
        // Not when the run holding the ticket's claim moves it on to an agent column: the claim
        // lasts until that run ends, so a scan now could not start the next agent; the run's end
        // releases it and wakes the project then (lib/heartbeats.ts markWaitingProjectsDue).
        const ownRun = ticket.claimed_by_run !== null && ticket.claimed_by_run === process.env.DISPATCH_RUN_ID;
        const wake = to === 'done' || (Boolean(target.agent_type_id) && !ownRun);
        if (wake) db.prepare('UPDATE heartbeats SET next_check_at = ?, empty_streak = 0, wake_seq = wake_seq + 1 WHERE project_id = ?').run(now, ticket.project_id);
        return { from: current.column_id, to, wake };
      });
      out({ ok: true, ticket: `${ticket.abbreviation}-${ticket.number}`, from: moved.from, to: moved.to });
      db.close();
      if (moved.wake) await ping(ticket.project_id);
      return 0;
    }
    case 'claim': {
      const runId = args[1];
      if (!runId) fail('missing <run-id>');
      write(() => {
        const r = db.prepare('UPDATE tickets SET claimed_by_run = ?, claimed_at = ? WHERE id = ? AND claimed_by_run IS NULL').run(runId, Date.now(), ticket.id);
        if (r.changes === 0) fail(`ticket ${ticket.abbreviation}-${ticket.number} is already claimed by ${ticket.claimed_by_run}`);
        addComment(db, ticket.id, { type: 'claim', body: `claimed by ${runId}` });
      });
      out({ ok: true, ticket: `${ticket.abbreviation}-${ticket.number}`, claimed_by_run: runId });
      break;
    }
    case 'release': {
      write(() => {
        db.prepare('UPDATE tickets SET claimed_by_run = NULL, claimed_at = NULL WHERE id = ?').run(ticket.id);
      });
      out({ ok: true, ticket: `${ticket.abbreviation}-${ticket.number}`, claimed_by_run: null });
      break;
    }
  }
  db.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    const message = err instanceof Failure ? err.message : `unexpected error: ${err && err.message ? err.message : err}`;
    process.stderr.write(`ticket: ${message.replace(/\s+/g, ' ')}\n`);
    process.exitCode = 1;
  },
);
