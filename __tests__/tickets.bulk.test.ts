// Bulk actions on a real SQLite home: one transaction for the whole batch, all or nothing, the same
// history rows and wakes as single moves, and a person's bulk move or close stops an agent's rights
// on its ticket exactly as a single move does (ticket.cjs refuses the running agent afterwards).
import { spawnSync } from 'node:child_process';
import {
  bulkUpdate,
  closeTicket,
  countTickets,
  createTicket,
  getThread,
  inbox,
  moveTicket,
  reopenTicket,
  requireTicket,
} from '../lib/tickets.js';
import { liveRunChecks } from '../lib/runs.js';
import { pauseProject, archiveProject } from '../lib/pausing.js';
import { getHeartbeat } from '../lib/heartbeats.js';
import { ConflictError, UserError } from '../lib/errors.js';
import { makeTestHome, startRun, type TestHome } from './helpers/home.js';
import { ticketBin } from './helpers/daemon.js';

let h: TestHome;
beforeEach(() => {
  h = makeTestHome();
  h.addProject('alpha', 'software-dev', 'al');
  h.addProject('notes', 'personal', 'nt');
});
afterEach(() => h.cleanup());

const file = (project: string, title: string, extra: { column?: string; priority?: string } = {}) =>
  createTicket(h.store, { project, title, createdBy: 'human', ...extra }).key;

/** Everything a batch could change: each ticket's row and the history table. */
function snapshot() {
  return {
    tickets: h.db.prepare(`SELECT id, column_id, priority, archived_at, updated_at, column_entered_at FROM tickets ORDER BY id`).all(),
    comments: h.db.prepare(`SELECT COUNT(*) FROM comments`).pluck().get(),
  };
}

function refusal(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('bulkUpdate', () => {
  test('moves every selected ticket with one move row each, wakes the project once, and leaves those already there alone', () => {
    const keys = [file('al', 'one'), file('al', 'two'), file('al', 'three', { column: 'code-reviewer' })];
    const alpha = requireTicket(h.db, keys[0]!).project_id;
    const seq = getHeartbeat(h.db, alpha)!.wake_seq;
    h.woken.length = 0;
    const r = bulkUpdate(h.store, { keys, action: 'move', column: 'code-reviewer', actor: 'human' });
    expect(r).toEqual({ action: 'move', changed: ['al-1', 'al-2'], unchanged: ['al-3'] });
    for (const key of keys) expect(requireTicket(h.db, key).column_id).toBe('code-reviewer');
    for (const key of ['al-1', 'al-2']) {
      const moves = getThread(h.db, requireTicket(h.db, key).id).filter((c) => c.type === 'move');
      expect(moves.at(-1)).toMatchObject({ author: 'human', from_column: 'human', to_column: 'code-reviewer' });
    }
    expect(getThread(h.db, requireTicket(h.db, 'al-3').id).filter((c) => c.type === 'move')).toHaveLength(1);
    expect(h.woken).toEqual([alpha]);
    expect(getHeartbeat(h.db, alpha)!.wake_seq).toBeGreaterThan(seq);
  });

  test('sets the priority of tickets across projects, and closes them: off the board, the lists, the inbox', () => {
    const keys = [file('al', 'one'), file('nt', 'two', { priority: 'urgent' }), file('nt', 'three')];
    expect(bulkUpdate(h.store, { keys, action: 'priority', priority: 'urgent', actor: 'human' })).toEqual({
      action: 'priority',
      changed: ['al-1', 'nt-2'],
      unchanged: ['nt-1'],
    });
    expect(keys.map((k) => requireTicket(h.db, k).priority)).toEqual(['urgent', 'urgent', 'urgent']);
    expect(inbox(h.db, { tab: 'backlog' })).toHaveLength(3);

    const closed = bulkUpdate(h.store, { keys: ['al-1', 'nt-2'], action: 'close', actor: 'human' });
    expect(closed.changed).toEqual(['al-1', 'nt-2']);
    expect(requireTicket(h.db, 'al-1').archived_at).not.toBeNull();
    expect(getThread(h.db, requireTicket(h.db, 'al-1').id).at(-1)).toMatchObject({ type: 'system', author: 'human', body: 'Closed.' });
    expect(countTickets(h.db, { project: 'al' })).toBe(0);
    expect(inbox(h.db, { tab: 'backlog' }).map((t) => t.key)).toEqual(['nt-1']);
    // a closed ticket cannot be in a batch; reopening brings it back where it was
    const moveClosed = refusal(() => bulkUpdate(h.store, { keys: ['al-1'], action: 'move', column: 'done', actor: 'human' }));
    expect(moveClosed.message).toMatch(/al-1 is closed/);
    expect(reopenTicket(h.store, 'al-1', { actor: 'human' })).toMatchObject({ archived_at: null, column_id: 'human' });
    expect(countTickets(h.db, { project: 'al' })).toBe(1);
  });

  test('all or nothing: one missing ticket, a column another project lacks, or a closed ticket refuses the whole batch', () => {
    const keys = [file('al', 'one'), file('al', 'two'), file('nt', 'three')];
    closeTicket(h.store, file('al', 'gone'), { actor: 'human' });
    const before = snapshot();
    h.woken.length = 0;
    const withMissing = [...keys.slice(0, 2), 'al-99'];
    const missing = refusal(() => bulkUpdate(h.store, { keys: withMissing, action: 'move', column: 'done', actor: 'human' }));
    expect(missing.status).toBe(400);
    expect(missing.message).toBe('nothing was changed: al-99 does not exist');
    // personal boards have no coding-agent column: the alpha tickets do not move either
    const wrong = refusal(() => bulkUpdate(h.store, { keys, action: 'move', column: 'coding-agent', actor: 'human' }));
    expect(wrong.message).toBe('nothing was changed: nt-1\'s project has no column "coding-agent" (its columns are human, done)');
    expect(wrong.field).toBe('column');
    const withSeveral = [...keys, 'al-3', 'zz-1'];
    const several = refusal(() => bulkUpdate(h.store, { keys: withSeveral, action: 'priority', priority: 'high', actor: 'human' }));
    expect(several.message).toBe('nothing was changed: al-3 is closed; zz-1 does not exist');
    expect(snapshot()).toEqual(before);
    expect(h.woken).toEqual([]);
  });

  test('a write that fails part way through the batch rolls back the tickets already written', () => {
    const keys = [file('al', 'one'), file('al', 'two'), file('al', 'three')];
    // the database refuses the last ticket's update, after the first two were written in the same transaction
    h.db.exec(`CREATE TEMP TRIGGER refuse_third BEFORE UPDATE ON tickets WHEN old.id = ${requireTicket(h.db, keys[2]!).id}
               BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    const before = snapshot();
    h.woken.length = 0;
    for (const input of [
      { keys, action: 'move', column: 'done', actor: 'human' },
      { keys, action: 'priority', priority: 'low', actor: 'human' },
      { keys, action: 'close', actor: 'human' },
    ]) {
      expect(() => bulkUpdate(h.store, input)).toThrow('refused by the test');
      expect(snapshot()).toEqual(before);
    }
    expect(h.woken).toEqual([]);
  });

  test('bad requests are refused with the field at fault', () => {
    const key = file('al', 'one');
    const cases: [Parameters<typeof bulkUpdate>[1], string, string][] = [
      [{ keys: [key], action: 'delete', actor: 'human' }, 'action must be one of move, priority, close', 'action'],
      [{ keys: key, action: 'close', actor: 'human' }, 'keys must be a list of ticket keys such as pd-42', 'keys'],
      [{ keys: [{}], action: 'close', actor: 'human' }, 'keys must be a list of ticket keys such as pd-42', 'keys'],
      [{ keys: [], action: 'close', actor: 'human' }, 'select at least one ticket', 'keys'],
      [{ keys: Array(501).fill(key), action: 'close', actor: 'human' }, 'at most 500 tickets at once', 'keys'],
      [{ keys: [key], action: 'move', actor: 'human' }, 'column is required to move tickets', 'column'],
      [
        { keys: [key], action: 'priority', priority: 'asap', actor: 'human' },
        'priority must be one of low, normal, high, urgent',
        'priority',
      ],
      [{ keys: [key], action: 'priority', actor: 'human' }, 'priority is required', 'priority'],
    ];
    const before = snapshot();
    for (const [input, message, field] of cases) {
      const err = refusal(() => bulkUpdate(h.store, input));
      expect([err.message, err.field]).toEqual([message, field]);
    }
    expect(snapshot()).toEqual(before);
  });

  test('a ticket of an archived project refuses the batch with 409', async () => {
    const keys = [file('al', 'one'), file('nt', 'two')];
    await archiveProject(h.store, { killRun: async () => false }, requireTicket(h.db, 'nt-1').project_id);
    const before = snapshot();
    const err = refusal(() => bulkUpdate(h.store, { keys, action: 'close', actor: 'human' }));
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toBe('nothing was changed: nt-1 is in the archived project nt');
    expect(snapshot()).toEqual(before);
  });

  test("the person's bulk move and close win over running agents as a single move does", () => {
    const moved = file('al', 'moved by the person', { column: 'coding-agent' });
    const closed = file('al', 'closed by the person', { column: 'coding-agent' });
    const runs = [startRun(h, moved), startRun(h, closed)];
    expect(
      liveRunChecks(
        h.db,
        runs.map((r) => r.run.id),
      ).map((c) => c.off_column),
    ).toEqual([0, 0]);
    bulkUpdate(h.store, { keys: [moved], action: 'move', column: 'human', actor: 'human' });
    bulkUpdate(h.store, { keys: [closed], action: 'close', actor: 'human' });
    // the runtime's watch stops runs whose ticket is off their column, naming who moved it
    const checks = liveRunChecks(
      h.db,
      runs.map((r) => r.run.id),
    );
    expect(checks.map((c) => [c.off_column, c.ticket_column])).toEqual([
      [1, 'human'],
      [1, 'coding-agent'],
    ]);
    expect(checks.map((c) => c.closed)).toEqual([0, 1]);
    expect(checks[0]!.moved_by).toBe('human');
    // and the agents may no longer change their tickets
    for (const [i, key] of [moved, closed].entries()) {
      const env = { PATH: process.env.PATH, DISPATCH_DB_PATH: h.paths.db, DISPATCH_RUN_SECRET: runs[i]!.secret };
      const r = spawnSync(process.execPath, [ticketBin, 'move', key, 'code-reviewer'], { env, encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(i === 0 ? /was moved to "human" by human/ : /is archived/);
    }
    expect(requireTicket(h.db, moved).column_id).toBe('human');
    // a single move of the same kind answers the same way
    const single = file('al', 'single', { column: 'coding-agent' });
    const run = startRun(h, single);
    moveTicket(h.store, single, 'human', { actor: 'human' });
    expect(liveRunChecks(h.db, [run.run.id])[0]).toMatchObject({ off_column: 1, moved_by: 'human' });
  });

  test('a pause does not stop a batch: the tickets of a paused project still move', async () => {
    const key = file('al', 'one');
    await pauseProject(h.store, { killRun: async () => false }, requireTicket(h.db, key).project_id, { stopRunning: false });
    expect(bulkUpdate(h.store, { keys: [key], action: 'move', column: 'done', actor: 'human' }).changed).toEqual([key]);
  });
});
