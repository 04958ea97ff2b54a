// Daily budgets and the costs report at the function level, on a real SQLite file: the reservation
// refuses a new run once today's recorded cost reaches a budget (global or the project's own), the
// day turns at local midnight (`now` is passed in, so no test waits for a clock), a held-back project
// is not woken when a slot frees, and the report adds up runs of known costs, runs without one included.
import { budgetStatus, parseBudget, setProjectBudget } from '../lib/budget.js';
import { costReport, localDate, localDayStart, nextLocalMidnight } from '../lib/costs.js';
import { markWaitingProjectsDue, recordScan, getHeartbeat } from '../lib/heartbeats.js';
import { finalizeRun, reserveRun, type Caps } from '../lib/runs.js';
import { createTicket } from '../lib/tickets.js';
import { makeTestHome, type TestHome } from './helpers/home.js';

const HOUR = 3_600_000;
const caps = (dailyBudgetUsd = 0): Caps => ({ global: 100, perProject: 100, parallelCoding: true, perTicket: 100, dailyBudgetUsd });

/** A ticket waiting for the researcher of a research project. */
const waiting = (h: TestHome, project: string) =>
  createTicket(h.store, { project, title: 'find out', column: 'researcher', createdBy: 'human' }).id;

const reserve = (h: TestHome, ticketId: number, dailyBudgetUsd = 0, now?: number) =>
  reserveRun(h.store, { ticketId, columnId: 'researcher', agentTypeId: 'researcher', model: 'haiku', caps: caps(dailyBudgetUsd), now });

/** Runs an agent for a new ticket of `project` through the real reservation and finalize, recording `costUsd`. */
function spend(h: TestHome, project: string, costUsd: number | null, extra: { tokensIn?: number; tokensOut?: number } = {}): string {
  const r = reserve(h, waiting(h, project));
  if (r.kind !== 'reserved') throw new Error(`not reserved: ${r.kind}`);
  finalizeRun(
    h.store,
    r.run.id,
    { status: 'success', exitCode: 0, error: null, costUsd, tokensIn: extra.tokensIn, tokensOut: extra.tokensOut },
    { circuitBreakerMaxRuns: 100, maxRetries: 2 },
  );
  return r.run.id;
}

const liveRuns = (h: TestHome) =>
  (h.db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running')`).get() as { n: number }).n;

describe('local days', () => {
  test('a day starts at local midnight and the next one 23 to 25 hours later, for any instant', () => {
    const base = new Date(2026, 0, 1, 0, 0, 0, 0).getTime();
    for (let i = 0; i < 400; i++) {
      const now = base + i * 22.7 * HOUR; // walks through a whole year, daylight-saving changes included
      const start = localDayStart(now);
      const next = nextLocalMidnight(now);
      expect(start).toBeLessThanOrEqual(now);
      expect(next).toBeGreaterThan(now);
      expect(next - start).toBeGreaterThanOrEqual(23 * HOUR);
      expect(next - start).toBeLessThanOrEqual(25 * HOUR);
      expect(localDate(start)).toBe(localDate(now));
      expect(localDate(next)).not.toBe(localDate(now));
      expect(localDayStart(next)).toBe(next);
    }
  });
});

describe('daily budgets in the reservation', () => {
  let h: TestHome;
  beforeEach(() => (h = makeTestHome()));
  afterEach(() => h.cleanup());

  test('the global budget stops new runs once today’s recorded cost reaches it; a run without a cost counts as 0', () => {
    h.addProject('aa', 'research', 'aa');
    spend(h, 'aa', 0.6);
    spend(h, 'aa', null);
    expect(budgetStatus(h.db, 1, Date.now()).spent_today_usd).toBe(0.6);
    spend(h, 'aa', 0.4); // reserved under the budget: 0.6 < 1
    const next = waiting(h, 'aa');
    const refused = reserve(h, next, 1);
    expect(refused).toEqual({ kind: 'budget', scope: 'global' });
    // nothing was written: no run, no claim
    expect(liveRuns(h)).toBe(0);
    expect(h.db.prepare(`SELECT claimed_by_run FROM tickets WHERE id = ?`).get(next)).toEqual({ claimed_by_run: null });
    const status = budgetStatus(h.db, 1, Date.now());
    expect(status.reached.map((b) => b.message)).toEqual([
      'Daily budget reached: $1.00 of $1.00 spent today; new runs resume at midnight or when you raise the budget',
    ]);
    // raised: it starts; no budget at all (0): it starts
    expect(reserve(h, next, 1.5).kind).toBe('reserved');
    expect(reserve(h, waiting(h, 'aa'), 0).kind).toBe('reserved');
  });

  test('a project’s own budget holds back only that project, and setting it marks the project due', () => {
    const aa = h.addProject('aa', 'research', 'aa');
    const bb = h.addProject('bb', 'research', 'bb');
    setProjectBudget(h.store, aa.id, 0.5);
    expect(h.woken).toContain(aa.id);
    spend(h, 'aa', 0.5);
    spend(h, 'bb', 3);
    const a2 = waiting(h, 'aa');
    waiting(h, 'bb');
    expect(reserve(h, a2)).toEqual({ kind: 'budget', scope: 'project' });
    expect(reserve(h, waiting(h, 'bb')).kind).toBe('reserved');
    const status = budgetStatus(h.db, 0, Date.now());
    expect(status.global).toBeNull();
    expect(status.spent_today_usd).toBe(3.5);
    expect(status.reached.map((b) => b.message)).toEqual([
      'Daily budget of aa (aa) reached: $0.50 of $0.50 spent today; its new runs resume at midnight or when you raise its budget',
    ]);

    // a freed slot wakes bb, never the held-back aa; with the global budget used up, nobody
    h.db.prepare(`UPDATE heartbeats SET next_check_at = ?`).run(Date.now() + HOUR);
    h.db.prepare(`UPDATE runs SET status = 'success', ended_at = ? WHERE status = 'queued'`).run(Date.now());
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 10, parallelCoding: true })).toEqual([bb.id]);
    expect(markWaitingProjectsDue(h.db, { global: 10, perProject: 10, parallelCoding: true, dailyBudgetUsd: 3 })).toEqual([]);

    // cleared (null): aa starts again
    setProjectBudget(h.store, aa.id, null);
    expect(reserve(h, a2).kind).toBe('reserved');
  });

  test('at local midnight the day’s spend starts from 0: a held-back ticket can start, and a held-back scan looks again then', () => {
    const aa = h.addProject('aa', 'research', 'aa');
    spend(h, 'aa', 2);
    const now = Date.now();
    const midnight = nextLocalMidnight(now);
    const next = waiting(h, 'aa');
    expect(reserve(h, next, 1, now).kind).toBe('budget');
    expect(reserve(h, next, 1, midnight - 1).kind).toBe('budget');
    expect(budgetStatus(h.db, 1, now)).toMatchObject({
      resumes_at: midnight,
      spent_today_usd: 2,
      reached: [{ scope: 'global', limit_usd: 1, spent_usd: 2 }],
    });
    expect(budgetStatus(h.db, 1, midnight)).toMatchObject({ spent_today_usd: 0, reached: [] });
    const r = reserve(h, next, 1, midnight);
    expect(r.kind).toBe('reserved');
    expect(r.kind === 'reserved' && r.run.created_at).toBe(midnight);

    // the scan that found only held-back tickets: backed off, but its next check is no later than midnight
    const backoff = { base_interval_seconds: 86_400, max_interval_seconds: 7 * 86_400, backoff_multiplier: 2 };
    const seq = getHeartbeat(h.db, aa.id)!.wake_seq;
    expect(recordScan(h.db, aa.id, seq, false, backoff, now, midnight)).toMatchObject({ next_check_at: midnight, empty_streak: 1 });
    // and one due sooner than midnight keeps its own time
    expect(recordScan(h.db, aa.id, seq, true, { ...backoff, base_interval_seconds: 60 }, now, midnight)).toMatchObject({
      next_check_at: Math.min(now + 60_000, midnight),
    });
  });
});

describe('costs report', () => {
  let h: TestHome;
  beforeEach(() => (h = makeTestHome()));
  afterEach(() => h.cleanup());

  test('spend per local day, per project and per agent type, with tokens, run counts and runs without a cost', () => {
    const aa = h.addProject('aa', 'research', 'aa');
    const bb = h.addProject('bb', 'research', 'bb');
    const now = Date.now();
    const today = new Date(localDayStart(now));
    const noon = (daysAgo: number) => new Date(today.getFullYear(), today.getMonth(), today.getDate() - daysAgo, 12).getTime();
    const endAt = (id: string, at: number, agent = 'researcher') =>
      h.db.prepare(`UPDATE runs SET ended_at = ?, agent_type_id = ? WHERE id = ?`).run(at, agent, id);
    endAt(spend(h, 'aa', 1.25, { tokensIn: 1000, tokensOut: 100 }), localDayStart(now)); // the first instant of today
    endAt(spend(h, 'bb', null, { tokensIn: 10, tokensOut: 1 }), noon(0), 'writer');
    endAt(spend(h, 'aa', 0.5, { tokensIn: 500, tokensOut: 50 }), localDayStart(now) - 1); // the last instant of yesterday
    endAt(spend(h, 'bb', 2, { tokensIn: 2000, tokensOut: 200 }), noon(5));
    endAt(spend(h, 'bb', null), noon(5), 'writer');
    endAt(spend(h, 'aa', 100), noon(40)); // outside 30 days

    const r = costReport(h.db, { days: 30, now });
    expect(r.by_day).toHaveLength(30);
    expect(r.by_day[29]!.date).toBe(localDate(now));
    expect(r.by_day[29]).toMatchObject({ cost_usd: 1.25, runs: 2, unpriced_runs: 1, tokens_in: 1010, tokens_out: 101 });
    expect(r.by_day[28]).toMatchObject({ date: localDate(noon(1)), cost_usd: 0.5, runs: 1, unpriced_runs: 0 });
    expect(r.by_day[24]).toMatchObject({
      date: localDate(noon(5)),
      cost_usd: 2,
      runs: 2,
      unpriced_runs: 1,
      tokens_in: 2000,
      tokens_out: 200,
    });
    expect(r.by_day.filter((d) => d.runs === 0)).toHaveLength(27);
    expect(r.totals).toEqual({ cost_usd: 3.75, runs: 5, unpriced_runs: 2, tokens_in: 3510, tokens_out: 351 });
    expect(r.by_project).toEqual([
      { project_id: bb.id, abbreviation: 'bb', name: 'bb', cost_usd: 2, runs: 3, unpriced_runs: 2, tokens_in: 2010, tokens_out: 201 },
      { project_id: aa.id, abbreviation: 'aa', name: 'aa', cost_usd: 1.75, runs: 2, unpriced_runs: 0, tokens_in: 1500, tokens_out: 150 },
    ]);
    expect(r.by_agent_type).toEqual([
      { agent_type_id: 'researcher', cost_usd: 3.75, runs: 3, unpriced_runs: 0, tokens_in: 3500, tokens_out: 350 },
      { agent_type_id: 'writer', cost_usd: 0, runs: 2, unpriced_runs: 2, tokens_in: 10, tokens_out: 1 },
    ]);

    const one = costReport(h.db, { days: 60, projectId: aa.id, now });
    expect(one.project).toEqual({ id: aa.id, abbreviation: 'aa', name: 'aa' });
    expect(one.totals).toMatchObject({ cost_usd: 101.75, runs: 3 });
    expect(costReport(h.db, { days: 1, now }).totals).toMatchObject({ cost_usd: 1.25, runs: 2, unpriced_runs: 1 });
  });

  test('budget amounts: dollars from 0 up, 0 or none for no budget, anything else refused with the field named', () => {
    expect(parseBudget(5)).toBe(5);
    expect(parseBudget('2.50')).toBe(2.5);
    expect(parseBudget('$3')).toBe(3);
    for (const none of [0, '0', '', 'none', null]) expect(parseBudget(none)).toBeNull();
    for (const bad of [-1, '-1', 'abc', true, Number.NaN, Infinity, '1e3', 2_000_000, {}])
      expect(() => parseBudget(bad)).toThrow(/daily_budget_usd must be a number of dollars/);
  });
});
