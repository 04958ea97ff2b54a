// Bulk actions through the real daemon: POST /api/tickets/bulk (JSON answers, 4xx refusals that
// change nothing, another origin refused), the bulk bar's plain form post from board, list, inbox
// and search pages, closing and reopening one ticket, and in headless Chromium a shift-click range
// moved with JavaScript on, a priority set with it off, and the bar within a 390 px screen.
import fs from 'node:fs';
import path from 'node:path';
import { browserPages } from './helpers/browser.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { csrfOf, getPage, postForm, rawRequest } from './helpers/web.js';

const browser = browserPages();
let d: RunningDaemon;

async function project(name: string, abbreviation: string, type: string): Promise<void> {
  fs.mkdirSync(path.join(d.projectsRoot, name), { recursive: true });
  expect((await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, name), type, abbreviation })).status).toBe(201);
}

async function file(project: string, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await d.api('POST', '/api/tickets', { project, title, ...extra });
  expect(r.status).toBe(201);
  return r.body.ticket.key;
}

async function ticket(key: string): Promise<{ column_id: string; priority: string; archived_at: number | null }> {
  const r = await d.api('GET', `/api/tickets/${key}`);
  expect(r.status).toBe(200);
  return r.body.ticket;
}

/** Every ticket's column, priority and closed state, and the number of history rows: what a refused batch must leave alone. */
async function state(keys: string[]) {
  const out: unknown[] = [];
  for (const key of keys) {
    const r = await d.api('GET', `/api/tickets/${key}`);
    out.push([r.body.ticket.column_id, r.body.ticket.priority, r.body.ticket.archived_at, r.body.comments.length]);
  }
  return out;
}

beforeAll(async () => {
  d = await startTestDaemon();
  await project('chores', 'ch', 'personal');
  await project('shop', 'sh', 'software-dev');
  await project('old', 'od', 'personal');
});
afterAll(async () => {
  await d?.stop();
});

describe('POST /api/tickets/bulk', () => {
  test('moves, sets the priority of and closes tickets; says which were already as asked', async () => {
    const keys = [await file('ch', 'api one'), await file('ch', 'api two'), await file('ch', 'api three', { column: 'done' })];
    const moved = await d.api('POST', '/api/tickets/bulk', { keys, action: 'move', column: 'done' });
    expect(moved).toEqual({ status: 200, body: { action: 'move', changed: keys.slice(0, 2), unchanged: [keys[2]] } });
    for (const key of keys) expect((await ticket(key)).column_id).toBe('done');
    const history = (await d.api('GET', `/api/tickets/${keys[0]}`)).body.comments;
    expect(history.at(-1)).toMatchObject({ type: 'move', author: 'human', from_column: 'human', to_column: 'done' });

    const prio = await d.api('POST', '/api/tickets/bulk', { keys: [keys[0], keys[1]], action: 'priority', priority: 'urgent' });
    expect(prio.body).toEqual({ action: 'priority', changed: keys.slice(0, 2), unchanged: [] });
    expect((await ticket(keys[1]!)).priority).toBe('urgent');

    const closed = await d.api('POST', '/api/tickets/bulk', { keys: keys.slice(1), action: 'close' });
    expect(closed.body.changed).toEqual(keys.slice(1));
    expect((await ticket(keys[2]!)).archived_at).toEqual(expect.any(Number));
    const list = (await d.api('GET', '/api/tickets?project=ch&column=done')).body.tickets.map((t: { key: string }) => t.key);
    expect(list).toContain(keys[0]);
    expect(list).not.toContain(keys[1]);
    // one closed ticket comes back by itself
    const reopened = (await d.api('POST', `/api/tickets/${keys[1]}/reopen`)).body.ticket;
    expect(reopened).toMatchObject({ key: keys[1], archived_at: null, column_id: 'done' });
    expect((await d.api('POST', `/api/tickets/${keys[1]}/reopen`)).status).toBe(400);
  });

  test('refuses a bad batch whole, with a JSON reason, and changes nothing', async () => {
    const keys = [await file('ch', 'stays one'), await file('ch', 'stays two'), await file('sh', 'stays three')];
    const before = await state(keys);
    const cases: [unknown, number, string, string?][] = [
      [{ keys: [...keys, 'ch-999'], action: 'move', column: 'done' }, 400, 'nothing was changed: ch-999 does not exist', 'keys'],
      [
        { keys, action: 'move', column: 'coding-agent' },
        400,
        `nothing was changed: ${keys[0]}'s project has no column "coding-agent" (its columns are human, done); ` +
          `${keys[1]}'s project has no column "coding-agent" (its columns are human, done)`,
        'column',
      ],
      [{ keys, action: 'archive' }, 400, 'action must be one of move, priority, close', 'action'],
      [{ keys, action: 'priority', priority: 'asap' }, 400, 'priority must be one of low, normal, high, urgent', 'priority'],
      [{ keys: [], action: 'close' }, 400, 'select at least one ticket', 'keys'],
      [{ keys: 'ch-1', action: 'close' }, 400, 'keys must be a list of ticket keys such as pd-42', 'keys'],
      [['not', 'an object'], 400, 'request body must be a JSON object', 'body'],
    ];
    for (const [body, status, error, field] of cases) {
      const r = await d.api('POST', '/api/tickets/bulk', body);
      expect([r.status, r.body]).toEqual([status, field ? { error, field } : { error }]);
    }
    // a ticket of an archived project: 409
    const old = await file('od', 'in an archived project');
    expect((await d.api('POST', '/api/projects/od/archive')).status).toBe(200);
    const conflict = await d.api('POST', '/api/tickets/bulk', { keys: [...keys, old], action: 'close' });
    expect(conflict).toEqual({ status: 409, body: { error: `nothing was changed: ${old} is in the archived project od`, field: 'keys' } });
    // another origin cannot post a batch
    const foreign = { origin: 'http://evil.example', 'content-type': 'application/json' };
    const evil = await rawRequest(d, 'POST', '/api/tickets/bulk', foreign, JSON.stringify({ keys, action: 'close' }));
    expect(evil.status).toBe(403);
    expect(await state(keys)).toEqual(before);
  });
});

describe('dispatch ticket bulk', () => {
  test('applies one action to the tickets named, prints what changed, and fails in one line changing nothing', async () => {
    await project('desk', 'dk', 'personal');
    const keys = [await file('dk', 'pens'), await file('dk', 'paper'), await file('dk', 'lamp', { column: 'done' })];
    const moved = d.cli(['ticket', 'bulk', 'move', ...keys, '--column', 'done']);
    expect([moved.status, moved.stdout, moved.stderr]).toEqual([0, 'moved to done: dk-1 dk-2\nalready so: dk-3\n', '']);
    const json = d.cli(['ticket', 'bulk', 'priority', 'dk-1', 'dk-2', '--priority', 'low', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ action: 'priority', changed: ['dk-1', 'dk-2'], unchanged: [] });
    const before = await state(keys);
    const refused = d.cli(['ticket', 'bulk', 'close', 'dk-1', 'dk-77']);
    expect([refused.status, refused.stdout]).toEqual([1, '']);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringContaining('nothing was changed: dk-77 does not exist')]);
    const noColumn = d.cli(['ticket', 'bulk', 'move', 'dk-1']);
    expect([noColumn.status, noColumn.stderr.trim().split('\n').length]).toEqual([1, 1]);
    expect(noColumn.stderr).toContain('column is required to move tickets');
    expect(await state(keys)).toEqual(before);
    expect(d.cli(['ticket', 'bulk', 'close', 'dk-3']).stdout).toBe('closed: dk-3\n');
    expect(d.cli(['ticket', 'reopen', 'dk-3']).stdout).toBe('dk-3: reopened in done\n');
  });
});

describe('the bulk bar as a plain form (no JavaScript)', () => {
  test('board, list, inbox and search pages carry the bar and a checkbox per ticket', async () => {
    const key = await file('ch', 'findable wombat ticket');
    for (const url of ['/projects/ch', '/projects/ch/tickets', '/inbox?tab=backlog', '/search?q=wombat']) {
      const { status, html } = await getPage(d, url);
      expect([url, status]).toEqual([url, 200]);
      expect(html).toContain('<form id="bulk" class="bulk-bar" method="post" action="/tickets/bulk"');
      const box = `<input type="checkbox" class="bulk-check" name="key" value="${key}" form="bulk" data-bulk aria-label="Select ${key}">`;
      expect(html).toContain(box);
    }
    // an archived board has no bar
    expect((await getPage(d, '/projects/od')).html).not.toContain('data-bulk');
  });

  test('a post applies the pressed action and returns to the page; a refused one is an error page that changed nothing', async () => {
    const keys = [await file('ch', 'form one'), await file('ch', 'form two')];
    const csrf = csrfOf((await getPage(d, '/projects/ch')).html);
    const fields = { _csrf: csrf, key: keys, action: 'priority', priority: 'high', column: 'done', return_to: '/projects/ch' };
    const ok = await postForm(d, '/tickets/bulk', fields);
    expect([ok.status, ok.location]).toEqual([303, '/projects/ch?done=bulk-priority']);
    for (const key of keys) expect(await ticket(key)).toMatchObject({ priority: 'high', column_id: 'human' });
    expect((await getPage(d, ok.location!)).html).toContain('The selected tickets have their new priority.');

    const before = await state(keys);
    const withMissing = { _csrf: csrf, key: [...keys, 'ch-404'], action: 'close', return_to: '/projects/ch/tickets' };
    const refused = await postForm(d, '/tickets/bulk', withMissing);
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('nothing was changed: ch-404 does not exist');
    expect(refused.html).toContain('<a href="/projects/ch/tickets">Back to the page you came from</a>');
    const none = await postForm(d, '/tickets/bulk', { _csrf: csrf, action: 'close', return_to: '//evil.example/' });
    expect(none.status).toBe(400);
    expect(none.html).toContain('select at least one ticket');
    expect(none.html).not.toContain('evil.example');
    // without the form token: refused before anything runs
    expect((await postForm(d, '/tickets/bulk', { key: keys, action: 'close' })).status).toBe(403);
    expect(await state(keys)).toEqual(before);
  });

  test('one ticket closes from its page and reopens from there', async () => {
    const key = await file('ch', 'close me alone');
    const csrf = csrfOf((await getPage(d, `/tickets/${key}`)).html);
    const closed = await postForm(d, `/tickets/${key}/close`, { _csrf: csrf });
    expect([closed.status, closed.location]).toEqual([303, `/tickets/${key}?done=closed`]);
    const page = (await getPage(d, `/tickets/${key}`)).html;
    expect(page).toContain('This ticket was closed');
    expect(page).not.toContain(`action="/tickets/${key}/close"`);
    expect((await getPage(d, '/projects/ch')).html).not.toContain(`value="${key}"`);
    expect((await postForm(d, `/tickets/${key}/close`, { _csrf: csrf })).status).toBe(400);
    const reopened = await postForm(d, `/tickets/${key}/reopen`, { _csrf: csrf });
    expect(reopened.location).toBe(`/tickets/${key}?done=reopened`);
    expect((await getPage(d, '/projects/ch')).html).toContain(`value="${key}"`);
  });
});

describe('in headless Chromium', () => {
  test('with JavaScript: shift-click ticks a range, the bar counts it, and Move moves the three tickets', async () => {
    await project('garden', 'gd', 'personal');
    const keys: string[] = [];
    for (let i = 1; i <= 5; i++) keys.push(await file('gd', `plant ${i}`));
    const page = browser.page;
    await page.goto(`${d.url}/projects/gd`);
    const bar = page.locator('[data-bulk-bar]');
    await expect(bar.locator('[data-bulk-count]').textContent()).resolves.toBe('Tick tickets to change several at once.');
    expect(await bar.evaluate((el) => getComputedStyle(el).position)).toBe('static');
    // the board lists newest first: gd-5 … gd-1; tick gd-4, then shift-click gd-2
    await page.getByLabel('Select gd-4').click();
    await page.getByLabel('Select gd-2').click({ modifiers: ['Shift'] });
    await expect(bar.locator('[data-bulk-count]').textContent()).resolves.toBe('3 selected');
    const ticked = await page.locator('input[data-bulk]:checked').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
    expect(ticked.sort()).toEqual(['gd-2', 'gd-3', 'gd-4']);
    expect(await bar.evaluate((el) => getComputedStyle(el).position)).toBe('sticky');
    // a shift-click that clears a box clears the range back to the box clicked before
    await page.getByLabel('Select gd-3').click({ modifiers: ['Shift'] });
    await expect(bar.locator('[data-bulk-count]').textContent()).resolves.toBe('1 selected');
    await page.getByLabel('Select gd-2').click({ modifiers: ['Shift'] });
    await expect(bar.locator('[data-bulk-count]').textContent()).resolves.toBe('3 selected');
    await page.getByLabel('Move selected to').selectOption('done');
    await bar.getByRole('button', { name: 'Move', exact: true }).click();
    await page.waitForURL(/\/projects\/gd\?done=bulk-moved$/);
    await page.getByText('The selected tickets were moved.').waitFor();
    const done = await page.locator('[data-column="done"] .card').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.key));
    expect(done.sort()).toEqual(['gd-2', 'gd-3', 'gd-4']);
    for (const key of keys) expect((await ticket(key)).column_id).toBe(['gd-2', 'gd-3', 'gd-4'].includes(key) ? 'done' : 'human');
  });

  test('with JavaScript: the bar refuses to post with nothing ticked', async () => {
    const page = browser.page;
    await page.goto(`${d.url}/projects/ch`);
    await page.locator('[data-bulk-bar]').getByRole('button', { name: 'Close', exact: true }).click();
    await page.getByText('Tick at least one ticket first.').waitFor();
    expect(page.url()).toBe(`${d.url}/projects/ch`);
  });

  test('without JavaScript: tick boxes on the list page and set their priority', async () => {
    await project('kitchen', 'kt', 'personal');
    const keys = [await file('kt', 'pans'), await file('kt', 'knives'), await file('kt', 'spoons')];
    await browser.withoutJs(async (page) => {
      await page.goto(`${d.url}/projects/kt/tickets`);
      await page.getByLabel('Select kt-1').check();
      await page.getByLabel('Select kt-3').check();
      await page.getByLabel('Mark selected').selectOption('urgent');
      await page.getByRole('button', { name: 'Set', exact: true }).click();
      await page.waitForURL(/\/projects\/kt\/tickets\?page=1&done=bulk-priority$/);
      await page.getByText('The selected tickets have their new priority.').waitFor();
    });
    expect(await Promise.all(keys.map(async (k) => (await ticket(k)).priority))).toEqual(['urgent', 'normal', 'urgent']);
  });

  test('at 390 px the board and inbox with the bar stay within the screen', async () => {
    const page = browser.page;
    await page.setViewportSize({ width: 390, height: 844 });
    for (const url of ['/projects/ch', '/inbox?tab=backlog', '/projects/ch/tickets']) {
      await page.goto(d.url + url);
      await page.locator('input[data-bulk]').first().click();
      const widths = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        bar: document.querySelector('[data-bulk-bar]')!.getBoundingClientRect().right,
      }));
      expect([url, widths.page <= 390, widths.bar <= 390]).toEqual([url, true, true]);
    }
  });
});
