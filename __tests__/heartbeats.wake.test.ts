// When a run slot frees, only the projects that can use it are woken: at most one per free global
// slot, most urgent then oldest waiting ticket first, never a project at its own cap or held back
// by the serial coding rule (a wake of every waiting project cost one scan each; BENCHMARKS.md).
import { markWaitingProjectsDue } from '../lib/heartbeats.js';
import { reserveRun } from '../lib/runs.js';
import { createTicket } from '../lib/tickets.js';
import { makeTestHome, type TestHome } from './helpers/home.js';

const pushDueOut = (h: TestHome) => h.db.prepare(`UPDATE heartbeats SET next_check_at = ?`).run(Date.now() + 3_600_000);
const dueIds = (h: TestHome) =>
  (h.db.prepare(`SELECT project_id FROM heartbeats WHERE next_check_at <= ? ORDER BY project_id`).all(Date.now()) as { project_id: number }[]).map((r) => r.project_id);
const reserve = (h: TestHome, ticketId: number, columnId: string, agentTypeId: string, parallelCoding = true) =>
  reserveRun(h.store, { ticketId, columnId, agentTypeId, model: 'opus', caps: { global: 100, perProject: 100, parallelCoding, perTicket: 100 } });

describe('markWaitingProjectsDue', () => {
  let h: TestHome;
  beforeEach(() => (h = makeTestHome()));
  afterEach(() => h.cleanup());

  test('wakes at most one project per free global slot, most urgent then oldest first', () => {
    const ids = ['aa', 'bb', 'cc'].map((abbr) => h.addProject(abbr, 'software-dev', abbr).id);
    createTicket(h.store, { project: 'aa', title: 'old', column: 'coding-agent', createdBy: 'human' });
    createTicket(h.store, { project: 'bb', title: 'urgent', column: 'code-reviewer', priority: 'urgent', createdBy: 'human' });
    createTicket(h.store, { project: 'cc', title: 'new', column: 'coding-agent', createdBy: 'human' });
    const busy = createTicket(h.store, { project: 'cc', title: 'running', column: 'security-reviewer', createdBy: 'human' });
    expect(reserve(h, busy.id, 'security-reviewer', 'security-reviewer').kind).toBe('reserved');
    pushDueOut(h);

    const caps = { global: 3, perProject: 3, parallelCoding: true };
    expect(markWaitingProjectsDue(h.db, caps)).toEqual([ids[1], ids[0]]); // 1 live run: 2 free slots
    expect(dueIds(h)).toEqual([ids[0], ids[1]]);
    pushDueOut(h);
    expect(markWaitingProjectsDue(h.db, { ...caps, global: 1 })).toEqual([]); // no free slot
    expect(markWaitingProjectsDue(h.db, { ...caps, global: 10 })).toEqual([ids[1], ids[0], ids[2]]);
  });

  test('skips a project at its own cap and a coding ticket held back by the serial rule', () => {
    const [a, b] = ['aa', 'bb'].map((abbr) => h.addProject(abbr, 'software-dev', abbr).id);
    const coding = createTicket(h.store, { project: 'aa', title: 'coding now', column: 'coding-agent', createdBy: 'human' });
    createTicket(h.store, { project: 'aa', title: 'next coding', column: 'coding-agent', createdBy: 'human' });
    createTicket(h.store, { project: 'bb', title: 'waiting', column: 'coding-agent', createdBy: 'human' });
    expect(reserve(h, coding.id, 'coding-agent', 'coding-agent', false).kind).toBe('reserved');
    pushDueOut(h);

    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 1, parallelCoding: true })).toEqual([b]);
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 3, parallelCoding: false })).toEqual([b]);
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 3, parallelCoding: true })).toEqual([a, b]);
  });
});
