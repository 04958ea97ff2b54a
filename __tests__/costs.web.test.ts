// The costs page, GET /api/costs and `dispatch costs` on a real daemon whose runs table holds runs
// of known costs on known days (some without a cost), and the budget banner and project budget
// form in the pages, once in headless Chromium. Every figure is checked against the runs inserted.
import fs from 'node:fs';
import path from 'node:path';
import { localDate, localDayStart } from '../lib/costs.js';
import { browserPages } from './helpers/browser.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { getPage, insertRun, postForm, token } from './helpers/web.js';

const NAME = 'Acme <b>&"x"';
const ESCAPED = 'Acme &lt;b&gt;&amp;&quot;x&quot;';

let d: RunningDaemon;
const now = Date.now();
const today = new Date(localDayStart(now));
/** An instant on the local day `daysAgo` days back: today's first seconds (always past), else noon. */
const on = (daysAgo: number) =>
  daysAgo === 0 ? localDayStart(now) + 1000 : new Date(today.getFullYear(), today.getMonth(), today.getDate() - daysAgo, 12).getTime();

beforeAll(async () => {
  d = await startTestDaemon({ config: { budgets: { daily_usd: 1 } } });
  for (const [dir, body] of [
    ['acme', { type: 'software-dev', abbreviation: 'acme', name: NAME }],
    ['bb', { type: 'research', abbreviation: 'bb' }],
  ] as const) {
    fs.mkdirSync(path.join(d.projectsRoot, dir), { recursive: true });
    expect((await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, dir), ...body })).status).toBe(201);
    expect((await d.api('POST', '/api/tickets', { project: dir, title: 'costly', column: 'human' })).status).toBe(201);
  }
  const runs = [
    { id: 'r-today-1', ticketKey: 'acme-1', agent: 'coding-agent', costUsd: 0.75, tokensIn: 1000, tokensOut: 100, createdAt: on(0) },
    { id: 'r-today-2', ticketKey: 'acme-1', agent: 'code-reviewer', costUsd: null, tokensIn: 200, tokensOut: 20, createdAt: on(0) },
    { id: 'r-today-3', ticketKey: 'bb-1', agent: 'researcher', costUsd: 0.5, tokensIn: 300, tokensOut: 30, createdAt: on(0) },
    { id: 'r-3-days', ticketKey: 'acme-1', agent: 'coding-agent', costUsd: 2.25, tokensIn: 4000, tokensOut: 400, createdAt: on(3) },
    { id: 'r-10-days', ticketKey: 'bb-1', agent: 'researcher', costUsd: null, createdAt: on(10) },
    { id: 'r-45-days', ticketKey: 'bb-1', agent: 'researcher', costUsd: 9, createdAt: on(45) },
  ];
  for (const r of runs) insertRun(d, { ...r, status: 'success', transcriptPath: null });
});
afterAll(() => d?.stop());

describe('costs', () => {
  test('GET /api/costs: spend per day, project and agent type, runs without a cost counted as 0 and reported', async () => {
    const res = await d.api('GET', '/api/costs');
    expect(res.status).toBe(200);
    const c = res.body;
    expect(c.days).toBe(30);
    expect(c.by_day).toHaveLength(30);
    expect(c.by_day[29]).toMatchObject({
      date: localDate(now),
      cost_usd: 1.25,
      runs: 3,
      unpriced_runs: 1,
      tokens_in: 1500,
      tokens_out: 150,
    });
    expect(c.by_day[26]).toMatchObject({ date: localDate(on(3)), cost_usd: 2.25, runs: 1, unpriced_runs: 0 });
    expect(c.by_day[19]).toMatchObject({ date: localDate(on(10)), cost_usd: 0, runs: 1, unpriced_runs: 1 });
    expect(c.totals).toEqual({ cost_usd: 3.5, runs: 5, unpriced_runs: 2, tokens_in: 5500, tokens_out: 550 });
    expect(c.by_project.map((p: any) => [p.abbreviation, p.name, p.cost_usd, p.runs, p.unpriced_runs])).toEqual([
      ['acme', NAME, 3, 3, 1],
      ['bb', 'bb', 0.5, 2, 1],
    ]);
    expect(c.by_agent_type.map((a: any) => [a.agent_type_id, a.cost_usd, a.runs])).toEqual([
      ['coding-agent', 3, 2],
      ['researcher', 0.5, 2],
      ['code-reviewer', 0, 1],
    ]);
    expect(c.budget).toMatchObject({ spent_today_usd: 1.25, global: { limit_usd: 1, reached: true } });

    const bb = (await d.api('GET', '/api/costs?days=60&project=bb')).body;
    expect(bb.project).toMatchObject({ abbreviation: 'bb' });
    expect(bb.totals).toMatchObject({ cost_usd: 9.5, runs: 3, unpriced_runs: 1 });

    for (const bad of ['0', 'abc', '1000', '2.5', '-1']) {
      expect(await d.api('GET', `/api/costs?days=${bad}`)).toEqual({
        status: 400,
        body: { error: 'days must be a whole number from 1 to 366', field: 'days' },
      });
    }
    expect((await d.api('GET', '/api/costs?project=zz')).status).toBe(404);
  });

  test('the costs page: an escaped, labelled SVG chart of the days, tables per day, project and agent type', async () => {
    const page = await getPage(d, '/costs');
    expect(page.status).toBe(200);
    const svg = /<svg[\s\S]*?<\/svg>/.exec(page.html)![0];
    expect(svg).toContain('role="img"');
    expect(svg).toContain('<title id="chart-title">Spend per day, last 30 days</title>');
    expect(svg).toContain('$3.50 in total. Highest: $2.25 on ' + localDate(on(3)));
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(30);
    expect(svg).toContain(`<title>${localDate(now)}: $1.25, 3 runs (1 without a cost)</title>`);
    expect(svg).toContain(`<title>${localDate(on(10))}: $0.00, 1 run (1 without a cost)</title>`);
    // bars are to scale: the $2.25 day is the tallest, against a $2.50 top line
    const heights = [...svg.matchAll(/<rect class="bar"[^>]* height="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(Math.max(...heights)).toBe(heights[26]);
    expect(heights[26]! / heights[29]!).toBeCloseTo(2.25 / 1.25, 1);
    expect(svg).toContain('>$2.50</text>');
    expect(page.html).toMatch(/2 of them recorded no cost and count as \$0\./);
    expect(page.html).toContain(`<a href="/projects/acme">${ESCAPED}</a>`);
    expect(page.html).not.toContain(NAME);
    expect(page.html).toContain('<a href="/costs" aria-current="page">Costs</a>');

    const one = await getPage(d, '/costs?project=acme&days=7');
    expect(one.html).toContain(`<title id="chart-title">Spend per day for ${ESCAPED}, last 7 days</title>`);
    expect(one.html).not.toContain(NAME);
    expect(one.html.match(/<rect class="bar"/g)).toHaveLength(7);

    const bad = await getPage(d, '/costs?days=abc');
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('days must be a whole number from 1 to 366');
  });

  test('the project page sets a project budget; a refused amount is shown next to the form and nothing is saved', async () => {
    const csrf = await token(d);
    const saved = await postForm(d, '/projects/bb/budget', { _csrf: csrf, daily_budget_usd: '0.4' });
    expect(saved.status).toBe(303);
    expect(saved.location).toBe('/projects/bb?done=saved#budget');
    expect((await d.api('GET', '/api/projects/bb')).body.project.daily_budget_usd).toBe(0.4);
    const board = await getPage(d, '/projects/bb');
    expect(board.html).toContain('Daily budget of bb (bb) reached: $0.50 of $0.40 spent today');

    const refused = await postForm(d, '/projects/bb/budget', { _csrf: csrf, daily_budget_usd: 'lots' });
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('daily_budget_usd must be a number of dollars');
    expect(refused.html).toContain('value="lots"');
    expect((await d.api('GET', '/api/projects/bb')).body.project.daily_budget_usd).toBe(0.4);

    expect((await d.api('PATCH', '/api/projects/bb', { daily_budget_usd: 0 })).body.project.daily_budget_usd).toBeNull();
    expect(await d.api('PATCH', '/api/projects/bb', { daily_budget_usd: -2 })).toMatchObject({
      status: 400,
      body: { field: 'daily_budget_usd' },
    });
    expect((await getPage(d, '/settings')).html).toContain('id="f-budgets-daily_usd"');
  });

  test('dispatch costs prints the figures; --json is the API answer; bad input is one line and exit 1', () => {
    const json = d.cli(['costs', '--json']);
    expect(json.status).toBe(0);
    const c = JSON.parse(json.stdout);
    expect(c.totals).toEqual({ cost_usd: 3.5, runs: 5, unpriced_runs: 2, tokens_in: 5500, tokens_out: 550 });
    expect(c.by_day).toHaveLength(30);
    expect(JSON.parse(d.cli(['costs', '--days', '60', '--project', 'bb', '--json']).stdout).totals).toMatchObject({
      cost_usd: 9.5,
      runs: 3,
    });

    const text = d.cli(['costs', '--days', '7']);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain('last 7 days, all projects: $3.50 over 4 runs, 5,500 tokens in, 550 out');
    expect(text.stdout).toContain('1 of them recorded no cost and count as $0');
    expect(text.stdout).toContain('Daily budget reached: $1.25 of $1.00 spent today');
    expect(text.stdout).toMatch(new RegExp(`${localDate(now)}\\s+3\\s+\\$1\\.25\\s+1,500\\s+150\\s+1`));

    const bad = d.cli(['costs', '--days', '0']);
    expect(bad).toMatchObject({ status: 1, stderr: 'dispatch: days must be a whole number from 1 to 366\n' });
    expect(d.cli(['costs', '--project', 'zz']).stderr).toBe('dispatch: project not found: zz\n');
  });
});

describe('in a browser', () => {
  const browser = browserPages();

  test('the budget banner is on every page and links to the costs page, whose chart is an image with a name', async () => {
    const page = browser.page;
    for (const p of ['/inbox', '/runs', '/settings']) {
      await page.goto(`${d.url}${p}`);
      const banner = page.locator('[data-budget-banner]');
      await banner.waitFor();
      expect(await banner.innerText()).toContain(
        'Daily budget reached: $1.25 of $1.00 spent today; new runs resume at midnight or when you raise the budget.',
      );
    }
    await page.locator('[data-budget-banner]').getByRole('link', { name: 'Costs' }).click();
    await page.waitForURL(/\/costs$/);
    const chart = page.getByRole('img', { name: 'Spend per day, last 30 days' });
    expect(await chart.isVisible()).toBe(true);
    await page.getByLabel('Project', { exact: true }).selectOption('acme');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(/project=acme/);
    expect(await page.getByRole('img', { name: `Spend per day for ${NAME}, last 30 days` }).isVisible()).toBe(true);
    expect(await page.locator('h1').innerText()).toBe(`Costs · ${NAME}`);
  });
});
