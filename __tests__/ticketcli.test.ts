// Every ticket.cjs command through a real child process against a real database. Runs are
// reserved and given their secret by the same functions the daemon uses; the test then plays the
// agent, so what ticket.cjs allows is decided by the run the secret proves and nothing else.
import http from 'node:http';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createTicket, getThread, moveTicket, requireTicket } from '../lib/tickets.js';
import { getHeartbeat } from '../lib/heartbeats.js';
import { finalizeRun } from '../lib/runs.js';
import { makeTestHome, startRun, type TestHome } from './helpers/home.js';
import { repoRoot, ticketBin } from './helpers/daemon.js';

let h: TestHome;
let projectId: number;
let secret: string;
let author: string;
let runId: string;
beforeEach(() => {
  h = makeTestHome();
  projectId = h.addProject('alpha', 'software-dev', 'pd').id;
  h.addProject('other', 'personal', 'ot');
  createTicket(h.store, {
    project: 'pd',
    title: 'Add payment collection',
    body: 'to the invoice flow',
    column: 'coding-agent',
    createdBy: 'human',
  });
  createTicket(h.store, { project: 'pd', title: "Someone else's ticket", column: 'human', createdBy: 'human' });
  createTicket(h.store, { project: 'ot', title: 'not yours', createdBy: 'human' });
  ({
    secret,
    author,
    run: { id: runId },
  } = startRun(h, 'pd-1'));
});
afterEach(() => h.cleanup());

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, DISPATCH_DB_PATH: h.paths.db, DISPATCH_RUN_SECRET: secret, ...extra };
}

function ticket(args: string[], extra: NodeJS.ProcessEnv = {}, input?: string) {
  const e = env(extra);
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  const r = spawnSync(process.execPath, [ticketBin, ...args], { env: e, encoding: 'utf8', input });
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    json: r.status === 0 && /^[[{]/.test(r.stdout) ? JSON.parse(r.stdout) : null,
  };
}

const file = (title: string, column: string) => createTicket(h.store, { project: 'pd', title, column, createdBy: 'human' }).key;
const count = () => h.db.prepare('SELECT COUNT(*) FROM comments').pluck().get() as number;

/** A refusal: exit 1, nothing on stdout, one line on stderr matching `message`, no history written. */
function refused(args: string[], message: RegExp, extra: NodeJS.ProcessEnv = {}) {
  const before = count();
  const r = ticket(args, extra);
  expect([r.status, r.stdout, r.stderr]).toEqual([1, '', expect.stringMatching(message)]);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(count()).toBe(before);
}

describe('ticket.cjs', () => {
  test('a live run of an archived project cannot write: the archive check sits inside each write', () => {
    h.db.prepare(`UPDATE projects SET status = 'archived' WHERE id = ?`).run(projectId);
    for (const args of [
      ['comment', 'pd-1', 'journal', 'still here'],
      ['move', 'pd-1', 'done'],
      ['finding', 'pd-1', 'high', 'late', 'body'],
    ]) {
      refused(args, /^ticket: project pd is archived: its tickets cannot be changed\n$/);
    }
    expect(ticket(['read', 'pd-1']).status).toBe(0);
  });

  test('read and thread, by key and by numeric id; other tickets of the project can be read', () => {
    const r = ticket(['read', 'pd-1']);
    expect(r.status).toBe(0);
    expect(r.json.ticket).toMatchObject({
      key: 'pd-1',
      title: 'Add payment collection',
      body: 'to the invoice flow',
      column: 'coding-agent',
      claimed_by_run: runId,
    });
    expect(r.json.comments.map((c: { type: string }) => c.type)).toEqual(['move', 'claim']);
    const id = requireTicket(h.db, 'pd-1').id;
    expect(ticket(['read', String(id)]).json.ticket.key).toBe('pd-1');
    expect(ticket(['thread', 'PD-1']).json).toHaveLength(2);
    expect(ticket(['read', 'pd-2']).json.ticket.title).toBe("Someone else's ticket");
  });

  test('comment, finding and move write history as the proven run, whatever the environment claims', () => {
    const forged = {
      DISPATCH_AUTHOR: 'human',
      DISPATCH_PROJECT_ID: 'ot',
      DISPATCH_RUN_ID: 'run-forged',
      DISPATCH_AGENT_TYPE: 'security-reviewer',
    };
    expect(ticket(['comment', 'pd-1', 'journal', 'started', 'work'], forged).json).toMatchObject({ ok: true, type: 'journal' });
    expect(ticket(['finding', 'pd-1', 'high', 'Missing CSRF check', 'POST /pay has none'], forged).json).toMatchObject({
      severity: 'high',
    });
    const seq = getHeartbeat(h.db, projectId)!.wake_seq;
    expect(ticket(['move', 'pd-1', 'code-reviewer', 'ready for review'], forged).json).toMatchObject({
      from: 'coding-agent',
      to: 'code-reviewer',
    });
    // into an agent column by the run holding the claim: its end wakes the project, not this move
    expect(getHeartbeat(h.db, projectId)!.wake_seq).toBe(seq);
    const thread = getThread(h.db, requireTicket(h.db, 'pd-1').id);
    expect(thread.map((c) => c.type)).toEqual(['move', 'claim', 'journal', 'finding', 'move']);
    expect(thread.slice(2).map((c) => c.author)).toEqual([author, author, author]);
    expect(author).toMatch(/^coding-agent:/);
    expect(thread[2]).toMatchObject({ body: 'started work' });
    expect(thread[3]).toMatchObject({ severity: 'high', title: 'Missing CSRF check', body: 'POST /pay has none' });
    expect(thread[4]).toMatchObject({ from_column: 'coding-agent', to_column: 'code-reviewer', body: 'ready for review' });
    // its own move ends its rights: move last
    refused(['comment', 'pd-1', 'comment', 'one more thing'], /pd-1 was moved to "code-reviewer" by this run since run \S+ started/);
    refused(['move', 'pd-1', 'coding-agent'], /may no longer change it/);
    expect(ticket(['read', 'pd-1']).json.ticket.column).toBe('code-reviewer');
  });

  test('a body of "-" is read from stdin', () => {
    const long = 'line one\nline two\n'.repeat(1000);
    expect(ticket(['comment', 'pd-1', 'complete', '-'], {}, long).status).toBe(0);
    expect(getThread(h.db, requireTicket(h.db, 'pd-1').id).at(-1)!.body).toBe(long);
  });

  test.each([
    [['read', 'ot-1'], /belongs to another project; this process may only read pd tickets/],
    [['comment', 'ot-1', 'comment', 'x'], /belongs to another project/],
    [['move', 'pd-2', 'done'], /run \S+ may change only its own ticket pd-1, not pd-2/],
    [['comment', 'pd-2', 'comment', 'x'], /may change only its own ticket pd-1/],
    [['finding', 'pd-2', 'high', 'x', 'y'], /may change only its own ticket pd-1/],
    [['claim', 'pd-1', 'bogus-run'], /unknown command "claim"/],
    [['release', 'pd-1'], /unknown command "release"/],
    [['move', 'pd-1', 'writer'], /unknown column "writer"; this project's columns are human, coding-agent/],
    [['move', 'pd-1', 'coding-agent'], /already in "coding-agent"/],
    [['finding', 'pd-1', 'severe', 'x', 'y'], /severity must be one of critical, high, medium, low/],
    [['comment', 'pd-1', 'move', 'x'], /comment type must be one of comment, journal, block, complete/],
    [['comment', 'pd-1', 'comment'], /missing <body>/],
    [['read', 'pd-99'], /ticket not found: pd-99/],
    [['read', '../etc'], /not a ticket id/],
    [['explode', 'pd-1'], /unknown command "explode"/],
    [['read'], /missing <ticket-id>/],
  ])('refuses %j with a one-line error and exit 1', (args, message) => {
    refused(args as string[], message as RegExp);
  });

  test('the environment cannot widen the scope: another project, another run, a forged or ended secret', () => {
    refused(['move', 'ot-1', 'done'], /belongs to another project/, { DISPATCH_PROJECT_ID: 'ot' });
    refused(['read', 'ot-1'], /belongs to another project/, { DISPATCH_PROJECT_ID: 'ot' });
    refused(['comment', 'pd-1', 'comment', 'x'], /not the secret of any agent run/, { DISPATCH_RUN_SECRET: 'forged' });
    refused(['read', 'pd-1'], /not the secret of any agent run/, { DISPATCH_RUN_SECRET: secret.slice(1) });
    refused(['read', 'pd-1'], /DISPATCH_RUN_SECRET is empty/, { DISPATCH_RUN_SECRET: '' });
    // a second run's secret proves that run, not the first one
    const other = startRun(h, file('review me', 'code-reviewer'));
    refused(['comment', 'pd-1', 'comment', 'x'], /may change only its own ticket pd-3, not pd-1/, { DISPATCH_RUN_SECRET: other.secret });
    // once the run has ended its secret is worth nothing, reads included
    finalizeRun(h.store, runId, { status: 'success', exitCode: 0, error: null }, { circuitBreakerMaxRuns: 3, maxRetries: 0 });
    refused(['read', 'pd-1'], /run \S+ has ended \(success\); its secret no longer works/);
    refused(['comment', 'pd-1', 'comment', 'late'], /has ended/);
  });

  test("a person's move ends the run's rights, also when the ticket comes back to the run's column", () => {
    moveTicket(h.store, 'pd-1', 'human', { actor: 'human', comment: 'I will take this one' });
    refused(['move', 'pd-1', 'code-reviewer'], /pd-1 was moved to "human" by human since run \S+ started; the run may no longer change it/);
    refused(['comment', 'pd-1', 'comment', 'but I was working on it'], /was moved to "human" by human/);
    moveTicket(h.store, 'pd-1', 'coding-agent', { actor: 'human' });
    refused(['move', 'pd-1', 'code-reviewer'], /was moved to "coding-agent" by human/);
    expect(requireTicket(h.db, 'pd-1').column_id).toBe('coding-agent');
    expect(ticket(['read', 'pd-1']).status).toBe(0); // reading stays fine while the run is live
  });

  test('a run that no longer holds the claim may not change the ticket', () => {
    h.db.prepare(`UPDATE tickets SET claimed_by_run = NULL WHERE claimed_by_run = ?`).run(runId);
    refused(['move', 'pd-1', 'done'], /run \S+ no longer holds the claim on pd-1/);
    expect(requireTicket(h.db, 'pd-1').column_id).toBe('coding-agent');
  });

  test("without a run secret: reads of DISPATCH_PROJECT_ID's project only, and no writes", () => {
    const person = { DISPATCH_RUN_SECRET: undefined, DISPATCH_PROJECT_ID: 'pd' };
    expect(ticket(['read', 'pd-2'], person).json.ticket.key).toBe('pd-2');
    expect(ticket(['thread', 'pd-1'], person).json).toHaveLength(2);
    refused(['read', 'ot-1'], /belongs to another project/, person);
    refused(
      ['comment', 'pd-2', 'comment', 'x'],
      /comment needs an agent run's DISPATCH_RUN_SECRET; to change a ticket yourself use `dispatch ticket comment/,
      person,
    );
    refused(['move', 'pd-2', 'done'], /move needs an agent run's DISPATCH_RUN_SECRET; .*dispatch ticket move/, person);
    refused(['finding', 'pd-2', 'low', 't', 'b'], /finding needs an agent run's DISPATCH_RUN_SECRET/, person);
    refused(['read', 'pd-1'], /DISPATCH_PROJECT_ID is not set/, { DISPATCH_RUN_SECRET: undefined });
    refused(['read', 'pd-1'], /names no project: zz/, { DISPATCH_RUN_SECRET: undefined, DISPATCH_PROJECT_ID: 'zz' });
    refused(['read', 'pd-1'], /cannot open database/, { DISPATCH_DB_PATH: path.join(h.root, 'nope.db') });
  });

  test('SQL-looking input is stored verbatim', () => {
    const evil = `x'); DELETE FROM tickets; --`;
    expect(ticket(['comment', 'pd-1', 'comment', evil]).status).toBe(0);
    expect(ticket(['finding', 'pd-1', 'low', evil, evil]).status).toBe(0);
    const thread = getThread(h.db, requireTicket(h.db, 'pd-1').id);
    expect(thread.at(-2)!.body).toBe(evil);
    expect(thread.at(-1)).toMatchObject({ title: evil, body: evil });
    expect(h.db.prepare('SELECT COUNT(*) FROM tickets').pluck().get()).toBe(3);
  });

  test('--help prints usage without claim or release; no command is an error', () => {
    const help = ticket(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/move <ticket-id> <column> \[comment\]/);
    expect(help.stdout).toMatch(/DISPATCH_RUN_SECRET/);
    expect(help.stdout).not.toMatch(/claim <ticket-id>|release <ticket-id>|DISPATCH_AUTHOR/);
    expect(ticket([]).status).toBe(1);
  });

  test('a move into done pings the daemon (with DISPATCH_API_TOKEN); into an agent column or human it does not; a dead daemon does not fail it', async () => {
    const hits: string[] = [];
    const server = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'}`);
      res.writeHead(202, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = String((server.address() as AddressInfo).port);
    const move = (key: string, to: string, runSecret: string) =>
      new Promise<number | null>((resolve) => {
        spawn(process.execPath, [ticketBin, 'move', key, to], {
          env: env({ DISPATCH_PORT: port, DISPATCH_RUN_SECRET: runSecret, DISPATCH_API_TOKEN: 'tok' }),
          stdio: 'ignore',
        }).on('exit', resolve);
      });
    try {
      const seq = getHeartbeat(h.db, projectId)!.wake_seq;
      expect(await move('pd-1', 'code-reviewer', secret)).toBe(0);
      const second = startRun(h, file('second', 'code-reviewer'));
      const third = startRun(h, file('third', 'security-reviewer'));
      const afterFiling = getHeartbeat(h.db, projectId)!.wake_seq;
      expect(afterFiling).toBe(seq + 2); // the two tickets filed into agent columns, not the move
      expect(await move('pd-3', 'human', second.secret)).toBe(0);
      expect(hits).toEqual([]);
      expect(await move('pd-4', 'done', third.secret)).toBe(0);
      expect(getHeartbeat(h.db, projectId)!.wake_seq).toBe(afterFiling + 1);
      expect(hits).toEqual([`POST /api/projects/${projectId}/wake Bearer tok`]);
    } finally {
      server.close();
    }
    const dead = startRun(h, file('fifth', 'coding-agent'));
    expect(ticket(['move', 'pd-5', 'done'], { DISPATCH_PORT: port, DISPATCH_RUN_SECRET: dead.secret }).status).toBe(0);
  });

  test("the agents' `ticket` launcher runs ticket.cjs", () => {
    const r = spawnSync('ticket', ['read', 'pd-1'], {
      env: { ...env(), PATH: `${path.join(repoRoot, 'bin', 'agent-path')}:${process.env.PATH}` },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).ticket.key).toBe('pd-1');
  });
});
