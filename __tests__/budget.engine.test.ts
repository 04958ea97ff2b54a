// Daily budgets through the real daemon and the fake agent, which reports a scripted cost in its
// result line: once today's recorded cost reaches the global budget a waiting ticket does not start
// (its scan is held back and looks again by midnight), a running one finishes, the banner and
// `dispatch daemon status` say so, and raising the budget starts the ticket at once. A project's own
// budget, set with `dispatch projects set`, holds back only that project.
import { comments, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { getPage } from './helpers/web.js';

const DONE_COSTING = (usd: number) => ({
  researcher: [
    { do: 'cost', usd },
    { do: 'move', to: 'done' },
  ],
});

/** The project's wake sequence right now: a scan enqueued at this sequence or later saw every ticket filed before. */
const wakeSeq = (d: EngineDaemon, projectId: number): number =>
  (d.db().prepare(`SELECT wake_seq FROM heartbeats WHERE project_id = ?`).get(projectId) as { wake_seq: number }).wake_seq;

/** Waits until a scan of the project that started at `seq` or later has completed (and recorded its heartbeat). */
function scanCompleted(d: EngineDaemon, projectId: number, seq: number): Promise<unknown> {
  return waitFor(`a scan of project ${projectId} from wake ${seq}`, () =>
    d
      .db()
      .prepare(
        `SELECT 1 FROM job_events WHERE queue = 'scan' AND outcome = 'completed'
           AND json_extract(payload, '$.projectId') = ? AND json_extract(payload, '$.wakeSeq') >= ?`,
      )
      .get(projectId, seq),
  );
}

async function settled(d: EngineDaemon, key: string): Promise<void> {
  await waitFor(`${key} done`, () => d.ticketRow(key).column_id === 'done');
  await waitFor(`${key} runs finalized`, () => d.runs(key).length > 0 && d.runs(key).every((r) => r.status === 'success'));
}

describe('the global daily budget', () => {
  let d: EngineDaemon;
  beforeAll(async () => {
    d = await startEngineDaemon({ config: { budgets: { daily_usd: 1 } } });
  });
  afterAll(() => d.stop());

  test('reached: a waiting ticket does not start, the banner and daemon status give the figures; raised: it starts at once', async () => {
    const p = await d.project('lab', 'research', 'lab');
    const slow = await d.ticket(
      'lab',
      'researcher',
      {
        researcher: [
          { do: 'sleep', ms: 3000 },
          { do: 'cost', usd: 0.05 },
          { do: 'move', to: 'done' },
        ],
      },
      'slow question',
    );
    await waitFor('the slow run started', () => d.runs(slow.key).length === 1);
    const first = await d.ticket('lab', 'researcher', DONE_COSTING(1.25), 'costly question');
    await settled(d, first.key);
    expect(d.runs(first.key).map((r) => r.cost_usd)).toEqual([1.25]);

    const second = await d.ticket('lab', 'researcher', DONE_COSTING(0.1), 'next question');
    const seq = wakeSeq(d, p.id);
    await scanCompleted(d, p.id, seq);
    expect(d.runs(second.key)).toEqual([]);
    expect(d.ticketRow(second.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    // a run already going when the budget was reached is left to finish
    await settled(d, slow.key);
    expect(d.runs(slow.key).map((r) => [r.status, r.cost_usd])).toEqual([['success', 0.05]]);
    expect(d.runs(second.key)).toEqual([]);

    const costs = await d.api('GET', '/api/costs?days=1');
    expect(costs.status).toBe(200);
    const budget = costs.body.budget;
    expect(budget).toMatchObject({ spent_today_usd: 1.3, global: { limit_usd: 1, spent_usd: 1.3, reached: true } });
    const message = 'Daily budget reached: $1.30 of $1.00 spent today; new runs resume at midnight or when you raise the budget';
    expect(budget.reached.map((b: { message: string }) => b.message)).toEqual([message]);
    // the held-back scan backed off, but looks again by midnight at the latest
    const hb = (await d.api('GET', '/api/projects/lab')).body.heartbeat;
    expect(hb.empty_streak).toBeGreaterThanOrEqual(1);
    expect(hb.next_check_at).toBeLessThanOrEqual(budget.resumes_at);

    for (const path of ['/inbox', '/projects', '/costs', `/tickets/${second.key}`]) {
      const page = await getPage(d, path);
      expect(page.status).toBe(200);
      expect(page.html).toContain(`${message}.`);
    }
    const status = d.cli(['daemon', 'status']);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain('budget: $1.30 of $1.00 spent today');
    expect(status.stdout).toContain(message);

    const raised = await d.api('PATCH', '/api/config', { budgets: { daily_usd: 5 } });
    expect(raised.status).toBe(200);
    await settled(d, second.key);
    expect((await getPage(d, '/inbox')).html).not.toContain('Daily budget reached');
    expect(d.cli(['daemon', 'status']).stdout).toContain('budget: $1.40 of $5.00 spent today');
  });
});

describe('a project’s own daily budget', () => {
  let d: EngineDaemon;
  beforeAll(async () => {
    d = await startEngineDaemon();
  });
  afterAll(() => d.stop());

  test('holds back only that project; set and removed with dispatch projects set', async () => {
    const aa = await d.project('aa', 'research', 'aa');
    await d.project('bb', 'research', 'bb');
    const set = d.cli(['projects', 'set', 'aa', '--budget', '0.5']);
    expect(set).toMatchObject({ status: 0, stdout: 'aa: daily budget $0.50\n' });
    expect(
      JSON.parse(d.cli(['projects', 'list', '--json']).stdout).find((p: { abbreviation: string }) => p.abbreviation === 'aa')
        .daily_budget_usd,
    ).toBe(0.5);

    const a1 = await d.ticket('aa', 'researcher', DONE_COSTING(0.75));
    await settled(d, a1.key);
    const a2 = await d.ticket('aa', 'researcher', DONE_COSTING(0.01));
    const seq = wakeSeq(d, aa.id);
    const b1 = await d.ticket('bb', 'researcher', DONE_COSTING(2));
    await settled(d, b1.key); // bb has no budget of its own and the global one is not set
    await scanCompleted(d, aa.id, seq);
    expect(d.runs(a2.key)).toEqual([]);

    const message =
      'Daily budget of aa (aa) reached: $0.75 of $0.50 spent today; its new runs resume at midnight or when you raise its budget';
    const board = await getPage(d, '/projects/aa');
    expect(board.html).toContain(`${message}.`);
    expect(board.html).toContain('Daily budget: $0.7500 of $0.5000 spent today');
    expect(d.cli(['daemon', 'status']).stdout).toContain(message);

    // bad budgets: one line, exit 1, nothing changed
    for (const bad of [['--budget', 'abc'], ['--budget=-3']]) {
      const r = d.cli(['projects', 'set', 'aa', ...bad]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^dispatch: daily_budget_usd must be a number of dollars[^\n]*\n$/);
    }
    expect(d.cli(['projects', 'set', 'zz', '--budget', '1'])).toMatchObject({ status: 1, stderr: 'dispatch: project not found: zz\n' });
    expect(d.cli(['projects', 'set', 'aa']).status).toBe(1);
    expect(d.runs(a2.key)).toEqual([]);

    const removed = d.cli(['projects', 'set', 'aa', '--budget', 'none']);
    expect(removed).toMatchObject({ status: 0, stdout: 'aa: daily budget removed (the global budgets.daily_usd still applies)\n' });
    await settled(d, a2.key);
    expect(comments(d, a2.key).some((c) => c.type === 'claim')).toBe(true);
  });
});
