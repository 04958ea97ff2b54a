// `dispatch costs [--days 30] [--project pd]`: what agent runs cost per day, project and agent type
// (GET /api/costs), and today's spend against the daily budgets.
import type { CommandModule } from 'yargs';
import type { BudgetStatus } from '../../lib/budget.js';
import { formatUsd as money, type CostFigures, type CostReport } from '../../lib/costs.js';
import { api } from './client.js';
import { printJson, printTable, say } from './output.js';

export type CostsAnswer = CostReport & { budget: BudgetStatus };

const count = (v: number): string => v.toLocaleString('en-US');
const figures = (f: CostFigures) => ({
  runs: count(f.runs),
  cost: money(f.cost_usd),
  'tokens in': count(f.tokens_in),
  'tokens out': count(f.tokens_out),
  'no cost': count(f.unpriced_runs),
});
const COLUMNS = ['runs', 'cost', 'tokens in', 'tokens out', 'no cost'];

/** Today's spend and budgets in a few lines (also printed by `dispatch daemon status`). */
export function budgetLines(b: BudgetStatus): string[] {
  const spent = money(b.spent_today_usd);
  const lines = [
    b.global ? `budget: ${spent} of ${money(b.global.limit_usd)} spent today` : `budget: ${spent} spent today (no daily budget)`,
  ];
  for (const p of b.projects.filter((f) => !f.reached)) {
    lines.push(`budget of ${p.project?.abbreviation ?? p.project?.name}: ${money(p.spent_usd)} of ${money(p.limit_usd)} spent today`);
  }
  for (const r of b.reached) lines.push(r.message!);
  return lines;
}

export const costsCommand: CommandModule<{ json: boolean }, { days: number; project: string | undefined; json: boolean }> = {
  command: 'costs',
  describe: 'what agent runs cost per day, project and agent type, and the daily budgets',
  builder: (y) =>
    y
      .option('days', { type: 'number', default: 30, requiresArg: true, describe: 'how many days back, today included (1 to 366)' })
      .option('project', { alias: 'p', type: 'string', describe: 'only this project (pd)' }),
  handler: async (argv) => {
    const q = new URLSearchParams({ days: String(argv.days) });
    if (argv.project) q.set('project', argv.project);
    const data = await api<CostsAnswer>('GET', `/api/costs?${q}`);
    if (argv.json) return printJson(data);
    const t = data.totals;
    const scope = data.project ? `${data.project.name} (${data.project.abbreviation})` : 'all projects';
    const tokens = `${count(t.tokens_in)} tokens in, ${count(t.tokens_out)} out`;
    say(`last ${data.days} days, ${scope}: ${money(t.cost_usd)} over ${count(t.runs)} runs, ${tokens}`);
    if (t.unpriced_runs) say(`${count(t.unpriced_runs)} of them recorded no cost and count as $0`);
    for (const line of budgetLines(data.budget)) say(line);
    if (t.runs === 0) return;
    say('');
    printTable(
      [...data.by_day]
        .reverse()
        .filter((d) => d.runs > 0)
        .map((d) => ({ day: d.date, ...figures(d) })),
      ['day', ...COLUMNS],
    );
    say('');
    printTable(
      data.by_project.map((p) => ({ project: p.abbreviation ?? p.name, ...figures(p) })),
      ['project', ...COLUMNS],
    );
    say('');
    printTable(
      data.by_agent_type.map((a) => ({ 'agent type': a.agent_type_id, ...figures(a) })),
      ['agent type', ...COLUMNS],
    );
  },
};
