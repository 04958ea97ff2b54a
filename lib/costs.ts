// What agent runs cost, from the runs table: each run's recorded `cost_usd` (the `total_cost_usd` of
// its final result line) counted on the local day the run ended. A run that recorded no cost counts
// as 0 and is reported as unpriced, never guessed. Also whether a daily budget is used up, which
// reserveRun and the waiting-project query ask inside their transactions. Every function takes
// `now`, so "today" and midnight are decided by the caller (tests pass any instant; the daemon its clock).
import type { Db } from './db/connection.js';

/** Local midnight at or before `now`. */
export function localDayStart(now: number): number {
  const d = new Date(now);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** The next local midnight after `now` (23, 24 or 25 hours after the day's start). */
export function nextLocalMidnight(now: number): number {
  const d = new Date(now);
  d.setHours(24, 0, 0, 0);
  return d.getTime();
}

/** `YYYY-MM-DD` of the local day `ms` falls on. */
export function localDate(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** Dollars as pages and the CLI show a cost: cents from $1 up (and for 0), four decimals below. */
export function formatUsd(v: number): string {
  return `$${v.toFixed(v !== 0 && Math.abs(v) < 1 ? 4 : 2)}`;
}

/** Cost sums are rounded to a millionth of a dollar, so $5 of runs never reads as $4.999999999. */
const round6 = (v: number): number => Math.round(v * 1e6) / 1e6;

/** Recorded cost of the runs that ended in [from, to), of one project or of all. */
export function spentBetween(db: Db, from: number, to: number, projectId: number | null = null): number {
  const row = db
    .prepare(
      `SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM runs
       WHERE ended_at >= @from AND ended_at < @to AND (@project IS NULL OR project_id = @project)`,
    )
    .get({ from, to, project: projectId }) as { spent: number };
  return round6(row.spent);
}

export type BudgetScope = 'global' | 'project';

/**
 * Which daily budget, if any, stops a new run of this project now: the global one
 * (`budgets.daily_usd`, 0 = none) when today's cost of all runs has reached it, else the project's
 * own (NULL or 0 = none) when its runs' cost today has.
 */
export function budgetBlock(
  db: Db,
  projectId: number,
  projectBudgetUsd: number | null,
  globalDailyUsd: number,
  now: number,
): BudgetScope | null {
  const from = localDayStart(now);
  const to = nextLocalMidnight(now);
  if (globalDailyUsd > 0 && spentBetween(db, from, to) >= globalDailyUsd) return 'global';
  if (projectBudgetUsd !== null && projectBudgetUsd > 0 && spentBetween(db, from, to, projectId) >= projectBudgetUsd) return 'project';
  return null;
}

/** Projects whose budget stops new runs now: 'all' when the global budget is used up. */
export function budgetBlockedProjects(db: Db, globalDailyUsd: number, now: number): 'all' | number[] {
  const from = localDayStart(now);
  const to = nextLocalMidnight(now);
  if (globalDailyUsd > 0 && spentBetween(db, from, to) >= globalDailyUsd) return 'all';
  return (
    db
      .prepare(
        `SELECT p.id FROM projects p WHERE p.daily_budget_usd > 0 AND p.daily_budget_usd <=
           (SELECT ROUND(COALESCE(SUM(r.cost_usd), 0), 6) FROM runs r WHERE r.ended_at >= ? AND r.ended_at < ? AND r.project_id = p.id)`,
      )
      .all(from, to) as { id: number }[]
  ).map((r) => r.id);
}

export interface CostFigures {
  cost_usd: number;
  /** runs that ended in the period */
  runs: number;
  /** of those, how many recorded no cost (counted as 0) */
  unpriced_runs: number;
  tokens_in: number;
  tokens_out: number;
}

export interface CostReport {
  days: number;
  /** start of the oldest day and end of today (local midnights) */
  from: number;
  to: number;
  project: { id: number; abbreviation: string | null; name: string } | null;
  totals: CostFigures;
  /** every day of the period, oldest first, empty days included */
  by_day: (CostFigures & { date: string; start: number })[];
  /** most expensive first */
  by_project: (CostFigures & { project_id: number; abbreviation: string | null; name: string })[];
  by_agent_type: (CostFigures & { agent_type_id: string })[];
}

export const MAX_REPORT_DAYS = 366;

type Row = CostFigures & { day: number; project_id: number; agent_type_id: string };

const zero = (): CostFigures => ({ cost_usd: 0, runs: 0, unpriced_runs: 0, tokens_in: 0, tokens_out: 0 });

function add(into: CostFigures, row: CostFigures): void {
  into.cost_usd = round6(into.cost_usd + row.cost_usd);
  into.runs += row.runs;
  into.unpriced_runs += row.unpriced_runs;
  into.tokens_in += row.tokens_in;
  into.tokens_out += row.tokens_out;
}

/**
 * Spend per local day for the last `days` days (today included), per project and per agent type,
 * optionally for one project. Day boundaries are computed here (so daylight-saving days have their
 * real length) and handed to one grouped query that reads today's window through the runs index.
 */
export function costReport(db: Db, opts: { days: number; projectId?: number | null; now: number }): CostReport {
  const days = Math.min(Math.max(Math.trunc(opts.days), 1), MAX_REPORT_DAYS);
  const today = new Date(localDayStart(opts.now));
  const bounds: [number, number][] = [];
  for (let i = days - 1; i >= 0; i--) {
    const start = new Date(today.getFullYear(), today.getMonth(), today.getDate() - i).getTime();
    bounds.push([start, new Date(today.getFullYear(), today.getMonth(), today.getDate() - i + 1).getTime()]);
  }
  const projectId = opts.projectId ?? null;
  const rows = db
    .prepare(
      `WITH days(i, start, stop) AS (SELECT key, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(@bounds))
       SELECT d.i AS day, r.project_id, r.agent_type_id, COUNT(*) AS runs, SUM(r.cost_usd IS NULL) AS unpriced_runs,
         COALESCE(SUM(r.cost_usd), 0) AS cost_usd, COALESCE(SUM(r.tokens_in), 0) AS tokens_in, COALESCE(SUM(r.tokens_out), 0) AS tokens_out
       FROM days d JOIN runs r ON r.ended_at >= d.start AND r.ended_at < d.stop
       WHERE (@project IS NULL OR r.project_id = @project)
       GROUP BY d.i, r.project_id, r.agent_type_id`,
    )
    .all({ bounds: JSON.stringify(bounds), project: projectId }) as Row[];

  const byDay = bounds.map(([start]) => ({ date: localDate(start), start, ...zero() }));
  const byProject = new Map<number, CostFigures>();
  const byAgent = new Map<string, CostFigures>();
  const totals = zero();
  for (const r of rows) {
    const { day, project_id: projectOf, agent_type_id: agent, ...figures } = r;
    add(byDay[day]!, figures);
    add(byProject.get(projectOf) ?? byProject.set(projectOf, zero()).get(projectOf)!, figures);
    add(byAgent.get(agent) ?? byAgent.set(agent, zero()).get(agent)!, figures);
    add(totals, figures);
  }
  const ids = [...byProject.keys(), ...(projectId === null ? [] : [projectId])];
  const projectNames = db.prepare(`SELECT id, abbreviation, name FROM projects WHERE id IN (SELECT value FROM json_each(?))`);
  const named = projectNames.all(JSON.stringify(ids)) as { id: number; abbreviation: string | null; name: string }[];
  const projects = new Map(named.map((p) => [p.id, p]));
  const expensiveFirst = (a: CostFigures, b: CostFigures) => b.cost_usd - a.cost_usd || b.runs - a.runs;
  return {
    days,
    from: bounds[0]![0],
    to: bounds[bounds.length - 1]![1],
    project: projectId === null ? null : (projects.get(projectId) ?? null),
    totals,
    by_day: byDay,
    by_project: [...byProject]
      .map(([id, f]) => {
        const p = projects.get(id);
        return { project_id: id, abbreviation: p?.abbreviation ?? null, name: p?.name ?? `project ${id}`, ...f };
      })
      .sort((a, b) => expensiveFirst(a, b) || a.name.localeCompare(b.name)),
    by_agent_type: [...byAgent]
      .map(([id, f]) => ({ agent_type_id: id, ...f }))
      .sort((a, b) => expensiveFirst(a, b) || a.agent_type_id.localeCompare(b.agent_type_id)),
  };
}
