// Daily budgets as the user sees and sets them: `budgets.daily_usd` in the config for everything,
// and a project's own `daily_budget_usd`. When today's recorded cost reaches a budget, reserveRun
// starts no new run under it (lib/costs.ts budgetBlock) while running ones finish; a blocked scan
// schedules the project's next check for the next local midnight, and raising a budget wakes the
// waiting projects at once. This module gives the figures for the banner, the CLI and the API.
import { NotFoundError, UserError } from './errors.js';
import { markDue } from './heartbeats.js';
import { localDayStart, nextLocalMidnight, spentBetween } from './costs.js';
import { recordNotification } from './notifications.js';
import type { Db } from './db/connection.js';
import type { Store } from './store.js';

export interface BudgetFigure {
  scope: 'global' | 'project';
  project: { id: number; abbreviation: string | null; name: string } | null;
  limit_usd: number;
  spent_usd: number;
  reached: boolean;
  /** what to tell the user when the budget is reached (budgetMessage), else null */
  message: string | null;
}

export interface BudgetStatus {
  day_start: number;
  /** when the day's spend starts again from 0: the next local midnight */
  resumes_at: number;
  spent_today_usd: number;
  /** null when budgets.daily_usd is 0 (no global budget) */
  global: BudgetFigure | null;
  /** every registered project with a budget of its own */
  projects: BudgetFigure[];
  /** the budgets used up now: global first, then projects */
  reached: BudgetFigure[];
}

export function budgetStatus(db: Db, globalDailyUsd: number, now: number): BudgetStatus {
  const from = localDayStart(now);
  const to = nextLocalMidnight(now);
  const spent = spentBetween(db, from, to);
  const figure = (f: Omit<BudgetFigure, 'reached' | 'message'>): BudgetFigure => {
    const reached = f.spent_usd >= f.limit_usd;
    return { ...f, reached, message: reached ? budgetMessage(f) : null };
  };
  const global = globalDailyUsd > 0 ? figure({ scope: 'global', project: null, limit_usd: globalDailyUsd, spent_usd: spent }) : null;
  const projects = (
    db
      .prepare(
        `SELECT p.id, p.abbreviation, p.name, p.daily_budget_usd AS limit_usd,
           (SELECT ROUND(COALESCE(SUM(r.cost_usd), 0), 6) FROM runs r
            WHERE r.ended_at >= ? AND r.ended_at < ? AND r.project_id = p.id) AS spent_usd
         FROM projects p WHERE p.daily_budget_usd > 0 AND p.status != 'unregistered' ORDER BY p.name`,
      )
      .all(from, to) as { id: number; abbreviation: string | null; name: string; limit_usd: number; spent_usd: number }[]
  ).map(({ id, abbreviation, name, ...f }) => figure({ scope: 'project', project: { id, abbreviation, name }, ...f }));
  return {
    day_start: from,
    resumes_at: to,
    spent_today_usd: spent,
    global,
    projects,
    reached: [...(global?.reached ? [global] : []), ...projects.filter((p) => p.reached)],
  };
}

/** One notification per budget reached per day (the daemon stops starting runs under it until midnight). */
export function noteBudgetsReached(db: Db, globalDailyUsd: number, now: number): void {
  const status = budgetStatus(db, globalDailyUsd, now);
  for (const f of status.reached) {
    const scope = f.project ? `project:${f.project.id}` : 'global';
    recordNotification(db, {
      kind: 'paused',
      title: f.project ? `Agents of ${f.project.abbreviation ?? f.project.name} paused: daily budget` : 'Agents paused: daily budget',
      body: f.message ?? '',
      dedupeKey: `budget:${scope}:${status.day_start}`,
      projectId: f.project?.id ?? null,
      at: now,
    });
  }
}

export const usd = (v: number): string => `$${v.toFixed(2)}`;

/** The sentence the banner, `dispatch daemon status` and the API give for a used-up budget. */
export function budgetMessage(f: Pick<BudgetFigure, 'scope' | 'project' | 'limit_usd' | 'spent_usd'>): string {
  const figures = `${usd(f.spent_usd)} of ${usd(f.limit_usd)} spent today`;
  if (f.scope === 'global') {
    return `Daily budget reached: ${figures}; new runs resume at midnight or when you raise the budget`;
  }
  const who = f.project!.abbreviation ? `${f.project!.name} (${f.project!.abbreviation})` : f.project!.name;
  return `Daily budget of ${who} reached: ${figures}; its new runs resume at midnight or when you raise its budget`;
}

export const MAX_BUDGET_USD = 1_000_000;

/**
 * A budget from the API, a form or the CLI: a non-negative number of dollars; 0, empty, null or
 * "none" mean no budget (null).
 */
export function parseBudget(value: unknown, field = 'daily_budget_usd'): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') {
    const text = value.trim().replace(/^\$/, '');
    if (text === '' || text.toLowerCase() === 'none') return null;
    if (!/^\d+(\.\d+)?$/.test(text)) throw new UserError(`${field} must be a number of dollars (0 or "none" for no budget)`, field);
    value = Number(text);
  }
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_BUDGET_USD) {
    throw new UserError(`${field} must be a number of dollars from 0 to ${MAX_BUDGET_USD} (0 for no budget)`, field);
  }
  return value === 0 ? null : value;
}

/**
 * Sets (or with null clears) a project's daily budget. The project is marked due in the same
 * transaction, so a raised budget starts its waiting tickets at once.
 */
export function setProjectBudget(store: Store, projectId: number, usd: number | null, now = Date.now()): void {
  const { db } = store;
  db.transaction(() => {
    const project = db.prepare(`SELECT status FROM projects WHERE id = ?`).get(projectId) as { status: string } | undefined;
    if (!project) throw new NotFoundError('project', projectId);
    if (project.status === 'unregistered') throw new UserError('register the project first', 'daily_budget_usd');
    db.prepare(`UPDATE projects SET daily_budget_usd = ?, updated_at = ? WHERE id = ?`).run(usd, now, projectId);
    markDue(db, projectId, now);
  }).immediate();
  store.notify(projectId);
}
