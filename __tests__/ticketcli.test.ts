// Every ticket.cjs command through a real child process against a real database.
import http from 'node:http';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createTicket, getThread, requireTicket } from '../lib/tickets.js';
import { getHeartbeat } from '../lib/heartbeats.js';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { repoRoot, ticketBin } from './helpers/daemon.js';

let h: TestHome;
let projectId: number;
beforeEach(() => {
  h = makeTestHome();
  projectId = h.addProject('alpha', 'software-dev', 'pd').id;
  h.addProject('other', 'personal', 'ot');
  createTicket(h.store, { project: 'pd', title: 'Add payment collection', body: 'to the invoice flow', column: 'coding-agent', createdBy: 'human' });
  createTicket(h.store, { project: 'ot', title: 'not yours', createdBy: 'human' });
});
afterEach(() => h.cleanup());

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, DISPATCH_DB_PATH: h.paths.db, DISPATCH_PROJECT_ID: String(projectId), DISPATCH_AUTHOR: 'coding-agent:run-1', ...extra };
}

function ticket(args: string[], extra: NodeJS.ProcessEnv = {}, input?: string) {
  const r = spawnSync(process.execPath, [ticketBin, ...args], { env: env(extra), encoding: 'utf8', input });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: r.status === 0 && /^[[{]/.test(r.stdout) ? JSON.parse(r.stdout) : null };
}

describe('ticket.cjs', () => {
  test('read and thread, by key and by numeric id', () => {
    const r = ticket(['read', 'pd-1']);
    expect(r.status).toBe(0);
    expect(r.json.ticket).toMatchObject({ key: 'pd-1', title: 'Add payment collection', body: 'to the invoice flow', column: 'coding-agent' });
    expect(r.json.comments[0]).toMatchObject({ type: 'move', to_column: 'coding-agent' });
    const id = requireTicket(h.db, 'pd-1').id;
    expect(ticket(['read', String(id)]).json.ticket.key).toBe('pd-1');
    expect(ticket(['thread', 'PD-1']).json).toHaveLength(1);
  });

  test('comment, finding, move, claim and release write history', () => {
    expect(ticket(['comment', 'pd-1', 'journal', 'started', 'work']).json).toMatchObject({ ok: true, type: 'journal' });
    expect(ticket(['finding', 'pd-1', 'high', 'Missing CSRF check', 'POST /pay has none']).json).toMatchObject({ severity: 'high' });
    expect(ticket(['claim', 'pd-1', 'run-9']).json).toMatchObject({ claimed_by_run: 'run-9' });
    expect(ticket(['claim', 'pd-1', 'run-10']).stderr).toMatch(/already claimed by run-9/);
    expect(ticket(['release', 'pd-1']).json).toMatchObject({ claimed_by_run: null });
    const seq = getHeartbeat(h.db, projectId)!.wake_seq;
    expect(ticket(['move', 'pd-1', 'code-reviewer', 'ready for review']).json).toMatchObject({ from: 'coding-agent', to: 'code-reviewer' });
    expect(getHeartbeat(h.db, projectId)!.wake_seq).toBe(seq + 1);
    const thread = getThread(h.db, requireTicket(h.db, 'pd-1').id);
    expect(thread.map((c) => c.type)).toEqual(['move', 'journal', 'finding', 'claim', 'move']);
    expect(thread[1]).toMatchObject({ body: 'started work', author: 'coding-agent:run-1' });
    expect(thread[2]).toMatchObject({ severity: 'high', title: 'Missing CSRF check', body: 'POST /pay has none' });
    expect(thread[4]).toMatchObject({ from_column: 'coding-agent', to_column: 'code-reviewer', body: 'ready for review' });
  });

  test('a body of "-" is read from stdin', () => {
    const long = 'line one\nline two\n'.repeat(1000);
    expect(ticket(['comment', 'pd-1', 'complete', '-'], {}, long).status).toBe(0);
    expect(getThread(h.db, requireTicket(h.db, 'pd-1').id).at(-1)!.body).toBe(long);
  });

  test.each([
    [['read', 'ot-1'], /belongs to another project/],
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
    const before = h.db.prepare('SELECT COUNT(*) FROM comments').pluck().get();
    const r = ticket(args as string[]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(h.db.prepare('SELECT COUNT(*) FROM comments').pluck().get()).toBe(before);
  });

  test('missing or wrong environment is refused', () => {
    expect(ticket(['read', 'pd-1'], { DISPATCH_PROJECT_ID: '' }).stderr).toMatch(/DISPATCH_PROJECT_ID is not set/);
    expect(ticket(['read', 'pd-1'], { DISPATCH_PROJECT_ID: 'zz' }).stderr).toMatch(/names no project: zz/);
    const r = ticket(['read', 'pd-1'], { DISPATCH_DB_PATH: path.join(h.root, 'nope.db') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot open database/);
  });

  test('SQL-looking input is stored verbatim', () => {
    const evil = `x'); DELETE FROM tickets; --`;
    expect(ticket(['comment', 'pd-1', 'comment', evil]).status).toBe(0);
    expect(ticket(['finding', 'pd-1', 'low', evil, evil]).status).toBe(0);
    const thread = getThread(h.db, requireTicket(h.db, 'pd-1').id);
    expect(thread.at(-2)!.body).toBe(evil);
    expect(thread.at(-1)).toMatchObject({ title: evil, body: evil });
    expect(h.db.prepare('SELECT COUNT(*) FROM tickets').pluck().get()).toBe(2);
  });

  test('--help prints usage; no command is an error', () => {
    const help = ticket(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/move <ticket-id> <column> \[comment\]/);
    expect(ticket([]).status).toBe(1);
  });

  test('a move pings the daemon to wake the project; a dead daemon does not fail the move', async () => {
    const hits: string[] = [];
    const server = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url} ${req.headers.host}`);
      res.writeHead(202, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const result = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [ticketBin, 'move', 'pd-1', 'code-reviewer'], { env: env({ DISPATCH_PORT: String(port) }), stdio: 'ignore' });
      child.on('exit', resolve);
    });
    server.close();
    expect(result).toBe(0);
    expect(hits).toEqual([`POST /api/projects/${projectId}/wake 127.0.0.1:${port}`]);
    expect(ticket(['move', 'pd-1', 'human'], { DISPATCH_PORT: String(port) }).status).toBe(0);
  });

  test("the run holding the claim moving its ticket on does not wake the project (its end will); into done it does", async () => {
    const hits: string[] = [];
    const server = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.writeHead(202, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = String((server.address() as AddressInfo).port);
    const move = (to: string, runId: string) =>
      new Promise<number | null>((resolve) => {
        spawn(process.execPath, [ticketBin, 'move', 'pd-1', to], { env: env({ DISPATCH_PORT: port, DISPATCH_RUN_ID: runId }), stdio: 'ignore' }).on('exit', resolve);
      });
    try {
      expect(ticket(['claim', 'pd-1', 'run-7']).status).toBe(0);
      const seq = getHeartbeat(h.db, projectId)!.wake_seq;
      expect(await move('code-reviewer', 'run-7')).toBe(0);
      expect(getHeartbeat(h.db, projectId)!.wake_seq).toBe(seq);
      expect(hits).toEqual([]);
      // someone else (another run id) moving a claimed ticket still wakes the project
      expect(await move('security-reviewer', 'run-8')).toBe(0);
      expect(getHeartbeat(h.db, projectId)!.wake_seq).toBe(seq + 1);
      expect(await move('done', 'run-7')).toBe(0);
      expect(getHeartbeat(h.db, projectId)!.wake_seq).toBe(seq + 2);
      expect(hits).toEqual([`POST /api/projects/${projectId}/wake`, `POST /api/projects/${projectId}/wake`]);
    } finally {
      server.close();
    }
  });

  test('the agents\' `ticket` launcher runs ticket.cjs', () => {
    const r = spawnSync('ticket', ['read', 'pd-1'], { env: { ...env(), PATH: `${path.join(repoRoot, 'bin', 'agent-path')}:${process.env.PATH}` }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).ticket.key).toBe('pd-1');
  });
});
