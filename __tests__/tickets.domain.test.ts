import path from 'node:path';
import { spawn } from 'node:child_process';
import { addComment, addFinding, board, createTicket, getThread, inbox, inboxCount, moveTicket, requireTicket } from '../lib/tickets.js';
import { discoverProjects, getColumns, setProjectColumns } from '../lib/projects.js';
import { getHeartbeat } from '../lib/heartbeats.js';
import { UserError } from '../lib/errors.js';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { repoRoot } from './helpers/daemon.js';
import fs from 'node:fs';

let h: TestHome;
beforeEach(() => {
  h = makeTestHome();
});
afterEach(() => h.cleanup());

describe('tickets', () => {
  test('tickets are numbered per project and never reuse a number', () => {
    const a = h.addProject('alpha', 'software-dev', 'al');
    const b = h.addProject('beta', 'personal', 'be');
    const t1 = createTicket(h.store, { project: 'al', title: 'one', createdBy: 'human' });
    const t2 = createTicket(h.store, { project: a.id, title: 'two', createdBy: 'human' });
    const t3 = createTicket(h.store, { project: b.abbreviation!, title: 'three', createdBy: 'human' });
    expect([t1.key, t2.key, t3.key]).toEqual(['al-1', 'al-2', 'be-1']);
  });

  test('a move is validated against the workflow and written to history; entering an agent column wakes the project', () => {
    const p = h.addProject('alpha', 'software-dev', 'al');
    const t = createTicket(h.store, { project: 'al', title: 'x', createdBy: 'human' });
    h.woken.length = 0;
    const seqBefore = getHeartbeat(h.db, p.id)!.wake_seq;
    expect(() => moveTicket(h.store, t.key, 'writer', { actor: 'human' })).toThrow(/unknown column "writer"/);
    expect(() => moveTicket(h.store, t.key, 'human', { actor: 'human' })).toThrow(/already in "human"/);
    const r = moveTicket(h.store, t.key, 'coding-agent', { actor: 'human', comment: 'please do' });
    expect(r).toMatchObject({ from: 'human', to: 'coding-agent' });
    expect(h.woken).toEqual([p.id]);
    expect(getHeartbeat(h.db, p.id)!.wake_seq).toBe(seqBefore + 1);
    const moves = getThread(h.db, t.id).filter((c) => c.type === 'move');
    expect(moves.map((m) => [m.from_column, m.to_column, m.body])).toEqual([
      [null, 'human', 'created'],
      ['human', 'coding-agent', 'please do'],
    ]);
  });

  test('comments of every free type, findings with severities, and bad input refused with the field', () => {
    h.addProject('alpha', 'software-dev', 'al');
    const t = createTicket(h.store, { project: 'al', title: 'x', createdBy: 'human' });
    for (const type of ['comment', 'journal', 'block', 'complete']) addComment(h.store, t.key, type, `a ${type}`, 'human');
    addFinding(h.store, t.key, 'critical', 'SQL injection', 'in login', 'code-reviewer:r1');
    const thread = getThread(h.db, t.id);
    expect(thread.map((c) => c.type)).toEqual(['move', 'comment', 'journal', 'block', 'complete', 'finding']);
    expect(thread.at(-1)).toMatchObject({ severity: 'critical', title: 'SQL injection', author: 'code-reviewer:r1' });
    const refusal = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return { message: (err as UserError).message, field: (err as UserError).field };
      }
      throw new Error('expected a refusal');
    };
    expect(refusal(() => addComment(h.store, t.key, 'move', 'x', 'h')).field).toBe('type');
    expect(refusal(() => addFinding(h.store, t.key, 'severe', 'x', '', 'h')).field).toBe('severity');
    expect(refusal(() => createTicket(h.store, { project: 'al', title: '  ', createdBy: 'h' })).field).toBe('title');
    expect(refusal(() => createTicket(h.store, { project: 'al', title: 'x', priority: 'asap', createdBy: 'h' })).field).toBe('priority');
    expect(refusal(() => createTicket(h.store, { project: 'al', title: 'x', column: 'nope', createdBy: 'h' })).field).toBe('column');
    expect(refusal(() => createTicket(h.store, { project: 'nope', title: 'x', createdBy: 'h' })).message).toMatch(/project not found/);
  });

  test('SQL-looking and HTML-looking text is stored verbatim', () => {
    h.addProject('alpha', 'software-dev', 'al');
    const evil = `'); DROP TABLE tickets; -- <script>alert(1)</script> \u0000\u202e`;
    const t = createTicket(h.store, { project: 'al', title: evil, body: evil, createdBy: 'human' });
    addComment(h.store, t.key, 'comment', evil, 'human');
    expect(requireTicket(h.db, t.key)).toMatchObject({ title: evil.trim(), body: evil });
    expect(getThread(h.db, t.id).at(-1)!.body).toBe(evil);
  });

  test('inbox: what an agent parked in human (with the reason) apart from what the person filed there; board caps done', () => {
    h.addProject('alpha', 'software-dev', 'al');
    h.addProject('beta', 'content', 'be');
    const a = createTicket(h.store, { project: 'al', title: 'a', column: 'coding-agent', createdBy: 'human' });
    createTicket(h.store, { project: 'be', title: 'b', createdBy: 'human' });
    addComment(h.store, a.key, 'block', 'Which currency?', 'coding-agent:r1');
    moveTicket(h.store, a.key, 'human', { actor: 'coding-agent:r1' });
    const items = inbox(h.db);
    expect(items.map((i) => i.key)).toEqual(['al-1']);
    expect(items[0]).toMatchObject({ parked_by: 'coding-agent:r1', reason: 'Which currency?', reason_type: 'block' });
    expect(inbox(h.db, { tab: 'backlog' }).map((i) => [i.key, i.parked_by])).toEqual([['be-1', 'human']]);
    expect([inboxCount(h.db), inboxCount(h.db, { tab: 'backlog' })]).toEqual([1, 1]);
    for (let i = 0; i < 5; i++) createTicket(h.store, { project: 'al', title: `d${i}`, column: 'done', createdBy: 'human' });
    const done = board(h.db, 'al', 3).find((c) => c.column_id === 'done')!;
    expect(done).toMatchObject({ count: 5, truncated: true });
    expect(done.tickets).toHaveLength(3);
    expect(done.tickets.every((t) => t.body === '')).toBe(true);
  });

  test('removing a column that holds tickets moves them to human with a system comment', () => {
    h.addProject('alpha', 'software-dev', 'al');
    const t = createTicket(h.store, { project: 'al', title: 'x', column: 'security-reviewer', createdBy: 'human' });
    setProjectColumns(h.store, 'al', [{ column_id: 'human' }, { column_id: 'coding-agent' }, { column_id: 'done' }]);
    expect(getColumns(h.db, requireTicket(h.db, t.key).project_id).map((c) => c.column_id)).toEqual(['human', 'coding-agent', 'done']);
    expect(requireTicket(h.db, t.key).column_id).toBe('human');
    expect(getThread(h.db, t.id).at(-1)).toMatchObject({ type: 'system', from_column: 'security-reviewer' });
    expect(() => setProjectColumns(h.store, 'al', [{ column_id: 'coding-agent' }, { column_id: 'done' }])).toThrow(/starts with "human"/);
    expect(() => setProjectColumns(h.store, 'al', [{ column_id: 'human' }, { column_id: 'robot' }, { column_id: 'done' }])).toThrow(
      /unknown agent type "robot"/,
    );
  });

  test('discovery: new folders unregistered, vanished ones missing, returning ones restored', () => {
    fs.mkdirSync(path.join(h.projectsRoot, 'one'));
    fs.mkdirSync(path.join(h.projectsRoot, '.hidden'));
    expect(discoverProjects(h.db, h.projectsRoot).added).toEqual([path.join(h.projectsRoot, 'one')]);
    const p = h.addProject('two', 'personal', 'tw');
    createTicket(h.store, { project: 'tw', title: 'keep me', createdBy: 'human' });
    fs.rmSync(path.join(h.projectsRoot, 'two'), { recursive: true });
    expect(discoverProjects(h.db, h.projectsRoot).missing).toEqual([p.path]);
    expect(h.db.prepare('SELECT status FROM projects WHERE id = ?').pluck().get(p.id)).toBe('missing');
    fs.mkdirSync(path.join(h.projectsRoot, 'two'));
    expect(discoverProjects(h.db, h.projectsRoot).returned).toEqual([p.path]);
    expect(h.db.prepare('SELECT status FROM projects WHERE id = ?').pluck().get(p.id)).toBe('active');
    expect(h.db.prepare('SELECT COUNT(*) FROM tickets WHERE project_id = ?').pluck().get(p.id)).toBe(1);
  });

  test('two processes filing tickets at once get distinct consecutive numbers', async () => {
    h.addProject('alpha', 'personal', 'al');
    const script = `
      import { openDb } from '${path.join(repoRoot, 'dist/lib/db/connection.js')}';
      import { createStore } from '${path.join(repoRoot, 'dist/lib/store.js')}';
      import { createTicket } from '${path.join(repoRoot, 'dist/lib/tickets.js')}';
      const store = createStore(openDb(process.argv[1]));
      for (let i = 0; i < 100; i++) createTicket(store, { project: 'al', title: 'p' + process.pid + '-' + i, createdBy: 'bench' });`;
    const run = () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, h.paths.db], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr.on('data', (d) => (err += d));
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(err))));
      });
    await Promise.all([run(), run()]);
    const numbers = h.db.prepare('SELECT number FROM tickets ORDER BY number').pluck().all();
    expect(numbers).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });
});
