// /costs: spend per day for the last `days` days (default 30) as a server-rendered SVG bar chart
// and a table, per project and per agent type, with tokens and run counts, and today's figures
// against the daily budgets. No script needed: the filter is a GET form, the chart plain SVG
// whose text goes through the template's escaping like every other value.
import { Router } from 'express';
import { budgetStatus } from '../../../lib/budget.js';
import { costReport, formatUsd as money, type CostReport } from '../../../lib/costs.js';
import { listProjects } from '../../../lib/projects.js';
import { reportDays, reportProject } from '../api/costs.js';
import type { AppContext } from '../../context.js';

const DAY_OPTIONS = [7, 30, 90, 365];

export interface DayChart {
  width: number;
  height: number;
  plot: { left: number; top: number; width: number; height: number };
  bars: { x: number; y: number; width: number; height: number; label: string }[];
  xLabels: { x: number; text: string }[];
  yTicks: { y: number; text: string }[];
  max: number;
}

const unpriced = (n: number): string => (n ? ` (${n} without a cost)` : '');

/** The smallest of 1, 2, 2.5, 5 × 10^k at or above v: the chart's top line. */
function niceCeiling(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((c) => c >= v - 1e-12)!;
}

/** Bar geometry for the spend per day: one bar per day, oldest on the left, a label on every bar. */
export function dayChart(byDay: CostReport['by_day']): DayChart {
  const width = 720;
  const height = 240;
  const plot = { left: 56, top: 12, width: width - 56 - 8, height: height - 12 - 32 };
  const max = niceCeiling(Math.max(0, ...byDay.map((d) => d.cost_usd)));
  const step = plot.width / Math.max(1, byDay.length);
  const barWidth = Math.max(1, step * 0.7);
  const every = Math.ceil(byDay.length / 8);
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    width,
    height,
    plot,
    max,
    bars: byDay.map((d, i) => {
      const h = (d.cost_usd / max) * plot.height;
      return {
        x: round(plot.left + i * step + (step - barWidth) / 2),
        y: round(plot.top + plot.height - h),
        width: round(barWidth),
        height: round(h),
        label: `${d.date}: ${money(d.cost_usd)}, ${d.runs} ${d.runs === 1 ? 'run' : 'runs'}${unpriced(d.unpriced_runs)}`,
      };
    }),
    // today (the last bar) always has its date; then every `every` days back from it
    xLabels: byDay
      .map((d, i) => ({ i, x: round(plot.left + i * step + step / 2), text: byDay.length > 1 ? d.date.slice(5) : d.date }))
      .filter(({ i }) => (byDay.length - 1 - i) % every === 0)
      .map(({ x, text }) => ({ x, text })),
    yTicks: [0, 0.5, 1].map((f) => ({ y: round(plot.top + plot.height - f * plot.height), text: money(max * f) })),
  };
}

export function costPages(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;

  r.get('/costs', (req, res) => {
    const days = reportDays(req.query.days);
    const projectId = reportProject(ctx, req.query.project);
    const now = Date.now();
    const report = costReport(db, { days, projectId, now });
    const budget = budgetStatus(db, ctx.config.get().budgets.daily_usd, now);
    const peak = report.by_day.reduce((a, d) => (d.cost_usd > a.cost_usd ? d : a), report.by_day[0]!);
    res.render('costs/index.njk', {
      title: 'Costs',
      section: 'costs',
      days,
      dayOptions: DAY_OPTIONS.includes(days) ? DAY_OPTIONS : [...DAY_OPTIONS, days].sort((a, b) => a - b),
      projects: listProjects(db)
        .filter((p) => p.status !== 'unregistered')
        .map((p) => ({ abbreviation: p.abbreviation, name: p.name })),
      project: report.project,
      report,
      newestFirst: [...report.by_day].reverse(),
      chart: dayChart(report.by_day),
      peak: peak.cost_usd > 0 ? { date: peak.date, cost: money(peak.cost_usd) } : null,
      totalText: money(report.totals.cost_usd),
      budget,
    });
  });

  return r;
}
