// /api/costs?days=30&project=pd: spend per local day, per project and per agent type for the last
// `days` days (today included), with tokens and run counts, and the daily budgets with today's
// figures (what the banner and `dispatch daemon status` show).
import { Router } from 'express';
import { budgetStatus } from '../../../lib/budget.js';
import { costReport, MAX_REPORT_DAYS } from '../../../lib/costs.js';
import { UserError } from '../../../lib/errors.js';
import { getProject } from '../../../lib/projects.js';
import type { AppContext } from '../../context.js';

export const DEFAULT_REPORT_DAYS = 30;

/** `?days=` as a whole number of days from 1 to MAX_REPORT_DAYS (30 when absent). */
export function reportDays(value: unknown): number {
  if (value === undefined || value === '') return DEFAULT_REPORT_DAYS;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_REPORT_DAYS) {
    throw new UserError(`days must be a whole number from 1 to ${MAX_REPORT_DAYS}`, 'days');
  }
  return n;
}

/** `?project=` as a project (abbreviation, id or name), or null for all. */
export function reportProject(ctx: AppContext, value: unknown): number | null {
  if (value === undefined || value === '') return null;
  if (typeof value !== 'string') throw new UserError('project must be one project', 'project');
  return getProject(ctx.store.db, value).id;
}

export function costsApi(ctx: AppContext): Router {
  const r = Router();
  r.get('/', (req, res) => {
    const days = reportDays(req.query.days);
    const projectId = reportProject(ctx, req.query.project);
    const now = Date.now();
    const budget = budgetStatus(ctx.store.db, ctx.config.get().budgets.daily_usd, now);
    res.json({ ...costReport(ctx.store.db, { days, projectId, now }), budget });
  });
  return r;
}
