// When a run slot frees, only the projects that can use it are woken: at most one per free global
// slot, most urgent then oldest waiting ticket first, never a project at its own cap or held back
// by the serial rule (a wake of every waiting project cost one scan each; BENCHMARKS.md). The serial
// rule itself: in a project whose agents work in its folder, one agent that edits the working tree
// at a time, whichever agent types have that flag.
import { createAgentType, updateAgentType } from '../lib/agentTypes.js';
import { markWaitingProjectsDue } from '../lib/heartbeats.js';
import { setProjectColumns, setProjectParallelCoding } from '../lib/projects.js';
import { reserveRun } from '../lib/runs.js';
import { createTicket } from '../lib/tickets.js';
import { makeTestHome, type TestHome } from './helpers/home.js';

const pushDueOut = (h: TestHome) => h.db.prepare(`UPDATE heartbeats SET next_check_at = ?`).run(Date.now() + 3_600_000);
const dueIds = (h: TestHome) =>
  (
    h.db.prepare(`SELECT project_id FROM heartbeats WHERE next_check_at <= ? ORDER BY project_id`).all(Date.now()) as {
      project_id: number;
    }[]
  ).map((r) => r.project_id);
const reserve = (h: TestHome, ticketId: number, columnId: string, agentTypeId: string, parallelCoding = true) =>
  reserveRun(h.store, {
    ticketId,
    columnId,
    agentTypeId,
    model: 'opus',
    caps: { global: 100, perProject: 100, parallelCoding, perTicket: 100 },
  });

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

  test('the serial rule follows the agent type\'s "edits the working tree" flag and the project\'s own parallel coding', () => {
    const a = h.addProject('aa', 'software-dev', 'aa').id;
    createAgentType(h.db, h.paths.prompts, 'fixer', {
      name: 'Fixer',
      model: 'sonnet',
      allowed_tools: ['Bash(ticket:*)', 'Read'],
      edits_working_tree: true,
    });
    setProjectColumns(h.store, 'aa', [
      { column_id: 'human' },
      { column_id: 'fixer' },
      { column_id: 'coding-agent' },
      { column_id: 'code-reviewer' },
      { column_id: 'done' },
    ]);
    const file = (title: string, column: string) => createTicket(h.store, { project: 'aa', title, column, createdBy: 'human' });
    const [f1, f2] = [file('fix one', 'fixer'), file('fix two', 'fixer')];
    const [c1, c2] = [file('code one', 'coding-agent'), file('code two', 'coding-agent')];
    const review = file('review', 'code-reviewer');
    const off = false; // the global default, for a project without its own setting

    // a custom type with the flag on is serialized, and holds back the coding agent (flag on too)
    expect(reserve(h, f1.id, 'fixer', 'fixer', off).kind).toBe('reserved');
    expect(reserve(h, f2.id, 'fixer', 'fixer', off).kind).toBe('serial');
    expect(reserve(h, c1.id, 'coding-agent', 'coding-agent', off).kind).toBe('serial');
    // the reviewer does not edit files: it runs beside them
    expect(reserve(h, review.id, 'code-reviewer', 'code-reviewer', off).kind).toBe('reserved');
    pushDueOut(h);
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 10, parallelCoding: off })).toEqual([]);

    // the coding agent with the flag off is not serialized, two of them at once
    updateAgentType(h.db, 'coding-agent', { edits_working_tree: false });
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 10, parallelCoding: off })).toEqual([a]);
    expect(reserve(h, c1.id, 'coding-agent', 'coding-agent', off).kind).toBe('reserved');
    expect(reserve(h, c2.id, 'coding-agent', 'coding-agent', off).kind).toBe('reserved');
    expect(reserve(h, f2.id, 'fixer', 'fixer', off).kind).toBe('serial');

    // the project's own setting wins over the global default: on, each ticket has its worktree
    setProjectParallelCoding(h.store, 'aa', true);
    pushDueOut(h);
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 10, parallelCoding: off })).toEqual([a]);
    expect(reserve(h, f2.id, 'fixer', 'fixer', off).kind).toBe('reserved');
  });

  test('a project set to work in its folder is serialized even when the global default is on', () => {
    h.addProject('aa', 'software-dev', 'aa');
    const [c1, c2] = ['one', 'two'].map((title) =>
      createTicket(h.store, { project: 'aa', title, column: 'coding-agent', createdBy: 'human' }),
    );
    setProjectParallelCoding(h.store, 'aa', false);
    expect(reserve(h, c1.id, 'coding-agent', 'coding-agent', true).kind).toBe('reserved');
    expect(reserve(h, c2.id, 'coding-agent', 'coding-agent', true).kind).toBe('serial');
    pushDueOut(h);
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 10, parallelCoding: true })).toEqual([]);
    // a folder found not to be a repository works in place whatever the setting
    setProjectParallelCoding(h.store, 'aa', null);
    const caps = { global: 100, perProject: 100, parallelCoding: true, perTicket: 100 };
    expect(
      reserveRun(h.store, { ticketId: c2.id, columnId: 'coding-agent', agentTypeId: 'coding-agent', model: 'opus', caps, inFolder: true })
        .kind,
    ).toBe('serial');
    expect(reserve(h, c2.id, 'coding-agent', 'coding-agent', true).kind).toBe('reserved');
  });
});
