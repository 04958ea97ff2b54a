#!/usr/bin/env node
// ticket.cjs: the agents' interface to their ticket. Plain CommonJS on purpose: it starts fast,
// needs nothing but better-sqlite3, and uses parameterized statements only.
//
// Who may do what comes from the run the caller proves, never from free environment variables:
// DISPATCH_RUN_SECRET is a random secret the daemon gives each agent process (the database keeps
// only its SHA-256, as lib/runs.ts hashRunSecret). The run fixes the project (its tickets may be
// read), the one ticket it may change, and the author of every history row (`<agent-type>:<run-id>`).
// It may change that ticket only while the run is live, holds the ticket's claim, and nobody has
// moved the ticket since the run claimed it: a person's move (or the run's own) ends its rights.
// Without a secret, ticket.cjs only reads (project from DISPATCH_PROJECT_ID), for a person or a
// script; people change tickets with `dispatch ticket ...` or the web UI, through the daemon.
// Every write is one IMMEDIATE transaction that re-checks those rights and appends the history
// row. JSON on stdout; a one-line error on stderr and exit 1.
//
// On a runner's machine (docs/RUNNERS.md) there is no database: DISPATCH_API_URL names the daemon,
// and the command line (with standard input, for a body of "-") is sent to its /api/agent/ticket,
// which runs this same tool there under the same secret; its output and exit code are passed on.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
// the rules the daemon applies too (key pattern, limits, types, wake rule, home, secret hash): one copy
const rules = require('../lib/shared/ticketRules.cjs');

const USAGE = `usage: ticket.cjs <command> [args]

  read <ticket-id>                             the ticket with its comments
  thread <ticket-id>                           the comments only
  comment <ticket-id> <type> <body>            type: comment, journal, block, complete
  move <ticket-id> <column> [comment]          column: one of the project's workflow columns
  finding <ticket-id> <severity> <title> <body>  severity: critical, high, medium, low

A ticket id is the project key and number (pd-42) or the numeric id. A body of "-" is read
from standard input.

An agent run reads the tickets of its project and changes only its own ticket: comment,
finding and move work while the run is live, holds the ticket's claim, and the ticket has not
been moved since the run started (so move last). Claims belong to the daemon.

environment:
  DISPATCH_RUN_SECRET   the agent run's secret, set by the daemon for each agent; it decides the
                        project, the ticket that may be changed and the author of history rows
  DISPATCH_API_URL      set on a runner's machine: the daemon's address; the command is sent to its
                        /api/agent/ticket with the run secret instead of opening a database
  DISPATCH_PROJECT_ID   without a run secret: the project whose tickets may be read (id or key);
                        writing needs a run (people use \`dispatch ticket comment|move\`)
  DISPATCH_DB_PATH      the database (default: $DISPATCH_HOME/tasks.db or ~/Development/.tasks/tasks.db)
  DISPATCH_PORT         the daemon's port, pinged after a move into done (the merge starts at once)
  DISPATCH_API_TOKEN    sent with that ping when the daemon's API needs a token`;

const { FREE_COMMENT_TYPES: FREE_TYPES, SEVERITIES, LIVE_RUN_STATUSES: LIVE, LIMITS } = rules;
const READS = ['read', 'thread'];
const WRITES = ['comment', 'move', 'finding'];

class Failure extends Error {}
const fail = (msg) => {
  throw new Failure(msg);
};

function text(value, name, max, required) {
  if (value === undefined) {
    if (required) fail(`missing <${name}>`);
    return '';
  }
  if (value === '-') value = fs.readFileSync(0, 'utf8');
  if (required && !value.trim()) fail(`<${name}> must not be empty`);
  if (value.length > max) fail(`<${name}> is longer than ${max} characters`);
  return value;
}

function openDb() {
  const file = process.env.DISPATCH_DB_PATH || path.join(rules.resolveHome(process.env), 'tasks.db');
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

const RUN_SQL = `SELECT r.id, r.ticket_id, r.project_id, r.agent_type_id, r.column_id, r.status, p.abbreviation,
  pt.number AS ticket_number FROM runs r JOIN projects p ON p.id = r.project_id JOIN tickets pt ON pt.id = r.ticket_id`;

/** The run whose secret the caller holds, or null without a secret. A secret that proves no live run is refused. */
function provenRun(db) {
  const secret = process.env.DISPATCH_RUN_SECRET;
  if (secret === undefined) return null;
  if (!secret) fail('DISPATCH_RUN_SECRET is empty');
  const run = db.prepare(`${RUN_SQL} WHERE r.secret_hash = ?`).get(rules.hashRunSecret(secret));
  if (!run) fail('DISPATCH_RUN_SECRET is not the secret of any agent run');
  if (!LIVE.includes(run.status)) fail(`run ${run.id} has ended (${run.status}); its secret no longer works`);
  return run;
}

/**
 * Without a secret: refused inside a live agent's process tree (Linux, from /proc), so an agent
 * cannot drop its secret to read as a person. An agent with an unrestricted shell runs as the
 * same user and can read the data folder anyway; this only keeps the tool from helping it.
 */
function refuseInsideAgent(db) {
  const pids = [];
  for (let pid = process.ppid; pid > 1 && pids.length < 64;) {
    pids.push(pid);
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      break;
    }
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  if (pids.length === 0) return;
  const run = db
    .prepare(`SELECT id FROM runs WHERE status IN (SELECT value FROM json_each(?)) AND pid IN (SELECT value FROM json_each(?))`)
    .get(JSON.stringify(LIVE), JSON.stringify(pids));
  if (run) fail(`this process runs inside agent run ${run.id}: it needs that run's DISPATCH_RUN_SECRET`);
}

function personProject(db) {
  const scope = (process.env.DISPATCH_PROJECT_ID || '').trim();
  if (!scope) fail('DISPATCH_PROJECT_ID is not set: without a run secret ticket.cjs reads the tickets of that one project');
  const project = /^\d+$/.test(scope)
    ? db.prepare('SELECT id, abbreviation FROM projects WHERE id = ?').get(Number(scope))
    : db.prepare('SELECT id, abbreviation FROM projects WHERE abbreviation = ?').get(scope.toLowerCase());
  if (!project) fail(`DISPATCH_PROJECT_ID names no project: ${scope}`);
  return project;
}

function findTicket(db, project, ref) {
  if (ref === undefined) fail('missing <ticket-id>');
  let row;
  const key = rules.TICKET_KEY.exec(ref);
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
  if (row.project_id !== project.id) {
    fail(`ticket ${ref} belongs to another project; this process may only read ${project.abbreviation} tickets`);
  }
  return row;
}

const keyOf = (t) => `${t.abbreviation}-${t.number}`;

/**
 * Inside the write transaction: the run may change this ticket now. It must be the run's own
 * ticket, the run still live and holding the claim, and no move since the run's claim comment.
 */
function checkRights(db, run, ticket) {
  const own = `${run.abbreviation}-${run.ticket_number}`;
  if (ticket.id !== run.ticket_id) fail(`run ${run.id} may change only its own ticket ${own}, not ${keyOf(ticket)}`);
  const now = db
    .prepare(
      `SELECT r.status, t.column_id, t.claimed_by_run, t.archived_at
              FROM runs r JOIN tickets t ON t.id = r.ticket_id WHERE r.id = ?`,
    )
    .get(run.id);
  if (!LIVE.includes(now.status)) fail(`run ${run.id} has ended (${now.status}); its secret no longer works`);
  if (now.claimed_by_run !== run.id) fail(`run ${run.id} no longer holds the claim on ${own}; it may not change it`);
  const author = `${run.agent_type_id}:${run.id}`;
  const moved = db
    .prepare(
      `SELECT author, to_column FROM comments WHERE ticket_id = @t AND type = 'move'
         AND id > (SELECT MIN(id) FROM comments WHERE ticket_id = @t AND type = 'claim' AND author = @author)
       ORDER BY id DESC LIMIT 1`,
    )
    .get({ t: ticket.id, author });
  if (moved || now.column_id !== run.column_id) {
    const to = moved ? moved.to_column : now.column_id;
    const by = moved ? (moved.author === author ? 'this run' : moved.author) : 'someone';
    fail(`${own} was moved to "${to}" by ${by} since run ${run.id} started; the run may no longer change it`);
  }
  if (now.archived_at !== null) fail(`${own} is archived`);
}

const view = (t) => ({
  id: t.id,
  key: keyOf(t),
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
    .prepare(
      'SELECT id, type, author, body, severity, title, from_column, to_column, created_at FROM comments WHERE ticket_id = ? ORDER BY id',
    )
    .all(id)
    .map((c) => ({ ...c, created_at: new Date(c.created_at).toISOString() }));

function addComment(db, ticketId, author, c) {
  const now = Date.now();
  db.prepare('UPDATE tickets SET updated_at = ? WHERE id = ?').run(now, ticketId);
  return db
    .prepare(
      `INSERT INTO comments (ticket_id, type, author, body, severity, title, from_column, to_column, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(ticketId, c.type, author, c.body || '', c.severity || null, c.title || null, c.from || null, c.to || null, now).lastInsertRowid;
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
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: `/api/projects/${projectId}/wake`, headers, agent: false, timeout: 1000 },
      (res) => {
        res.resume();
        res.on('end', resolve);
      },
    );
    req.on('error', resolve);
    req.on('timeout', () => {
      req.destroy();
      resolve();
    });
    req.end('{}');
  });
}

const RETRY_CODES = ['ECONNREFUSED', 'ECONNRESET', 'EAI_AGAIN'];

/** One POST of the command to the daemon; resolves with the answer's status and parsed body. */
function postTicket(base, secret, payload) {
  let url;
  try {
    url = new URL('api/agent/ticket', base.endsWith('/') ? base : `${base}/`);
  } catch {
    fail(`DISPATCH_API_URL is not a URL: ${base}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`DISPATCH_API_URL must be http or https: ${base}`);
  const data = Buffer.from(JSON.stringify(payload));
  const headers = {
    'content-type': 'application/json',
    'content-length': data.length,
    authorization: `Bearer ${secret}`,
    connection: 'close',
  };
  const lib = require(url.protocol === 'https:' ? 'node:https' : 'node:http');
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { method: 'POST', headers, agent: false, timeout: 120_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch {
          // not JSON: reported below with the status
        }
        resolve({ status: res.statusCode, body, text });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 120 s'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(data);
  });
}

/** The command run by the daemon (DISPATCH_API_URL): its output and exit code become ours. */
async function remote(base, argv) {
  const secret = process.env.DISPATCH_RUN_SECRET;
  if (!secret) fail('DISPATCH_RUN_SECRET is not set: through DISPATCH_API_URL only an agent run may use the ticket tool');
  const payload = { argv };
  if (argv.slice(1).includes('-')) payload.stdin = fs.readFileSync(0, 'utf8');
  let answer;
  for (let attempt = 1; ; attempt++) {
    try {
      answer = await postTicket(base, secret, payload);
      // 503: the daemon is busy with other agents' ticket commands; its turn comes soon
      if (answer.status !== 503 || attempt >= 5) break;
    } catch (err) {
      if (err instanceof Failure) throw err;
      // the daemon restarting: a few brief retries before giving up
      if (!RETRY_CODES.includes(err.code) || attempt >= 5) fail(`cannot reach the daemon at ${base}: ${err.code || err.message}`);
    }
    await new Promise((r) => setTimeout(r, 500 * attempt));
  }
  const body = answer.body;
  if (answer.status !== 200 || !body || typeof body.code !== 'number') {
    const why = body && typeof body.error === 'string' ? body.error : answer.text.slice(0, 200) || 'no answer';
    fail(`the daemon refused the command (HTTP ${answer.status}): ${why}`);
  }
  if (body.stdout) process.stdout.write(String(body.stdout));
  if (body.stderr) process.stderr.write(String(body.stderr));
  return body.code;
}

async function main(argv) {
  const [command, ...args] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command ? 0 : 1;
  }
  if (process.env.DISPATCH_API_URL) return remote(process.env.DISPATCH_API_URL, argv);
  const commands = [...READS, ...WRITES];
  if (!commands.includes(command)) fail(`unknown command "${command}"; commands: ${commands.join(', ')} (see --help)`);
  const db = openDb();
  const run = provenRun(db);
  if (!run) {
    refuseInsideAgent(db);
    if (WRITES.includes(command)) {
      const person = `dispatch ticket ${command === 'finding' ? 'comment' : command} ...`;
      fail(`${command} needs an agent run's DISPATCH_RUN_SECRET; to change a ticket yourself use \`${person}\` or the web UI`);
    }
  }
  const project = run ? { id: run.project_id, abbreviation: run.abbreviation } : personProject(db);
  const ticket = findTicket(db, project, args[0]);
  const author = run ? `${run.agent_type_id}:${run.id}` : null;
  const out = (value) => process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  // an archived project's tickets are read-only (its agents were stopped when it was archived), and a
  // run may write only what its rights allow; both checked inside the write transaction
  const write = (fn) =>
    db
      .transaction(() => {
        const p = db.prepare('SELECT status FROM projects WHERE id = ?').get(ticket.project_id);
        if (p && p.status === 'archived') fail(`project ${ticket.abbreviation} is archived: its tickets cannot be changed`);
        checkRights(db, run, ticket);
        return fn();
      })
      .immediate();
  if (run && WRITES.includes(command)) checkRights(db, run, ticket); // refused before a body is read from stdin; re-checked in the write

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
      const body = text(args.slice(2).join(' ') || undefined, 'body', LIMITS.comment, true);
      const id = write(() => addComment(db, ticket.id, author, { type, body }));
      out({ ok: true, ticket: keyOf(ticket), comment_id: Number(id), type });
      break;
    }
    case 'finding': {
      const severity = args[1];
      if (!severity) fail('missing <severity>');
      if (!SEVERITIES.includes(severity)) fail(`severity must be one of ${SEVERITIES.join(', ')} (got "${severity}")`);
      const title = text(args[2], 'title', LIMITS.title, true);
      const body = text(args.slice(3).join(' ') || undefined, 'body', LIMITS.comment, false);
      const id = write(() => addComment(db, ticket.id, author, { type: 'finding', severity, title, body }));
      out({ ok: true, ticket: keyOf(ticket), comment_id: Number(id), severity });
      break;
    }
    case 'move': {
      const to = args[1];
      if (!to) fail('missing <column>');
      const comment = text(args.slice(2).join(' ') || undefined, 'comment', LIMITS.comment, false);
      const moved = write(() => {
        const current = db.prepare('SELECT column_id FROM tickets WHERE id = ?').get(ticket.id);
        const columns = db
          .prepare('SELECT column_id, agent_type_id FROM project_columns WHERE project_id = ? ORDER BY position')
          .all(ticket.project_id);
        const ids = columns.map((c) => c.column_id);
        const target = columns.find((c) => c.column_id === to);
        if (!ids.includes(to)) fail(`unknown column "${to}"; this project's columns are ${ids.join(', ')}`);
        if (current.column_id === to) fail(`ticket ${keyOf(ticket)} is already in "${to}"`);
        const now = Date.now();
        db.prepare('UPDATE tickets SET column_id = ?, column_entered_at = ?, updated_at = ? WHERE id = ?').run(to, now, now, ticket.id);
        addComment(db, ticket.id, author, { type: 'move', body: comment, from: current.column_id, to });
        // into done: the merge has work now. Into an agent column: the run holds the claim until it
        // ends, so a scan now could not start the next agent; the run's end releases it and wakes the
        // project (lib/heartbeats.ts markWaitingProjectsDue).
        const wake = rules.wakesOnMove({ to, toAgentColumn: Boolean(target && target.agent_type_id), byRun: true });
        if (wake) db.prepare(rules.MARK_DUE_SQL).run(now, ticket.project_id);
        return { from: current.column_id, to, wake };
      });
      out({ ok: true, ticket: keyOf(ticket), from: moved.from, to: moved.to });
      db.close();
      if (moved.wake) await ping(ticket.project_id);
      return 0;
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
