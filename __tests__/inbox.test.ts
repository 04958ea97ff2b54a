// The inbox against the real daemon: tickets an agent or the daemon parked in human come first
// (most urgent, then longest waiting), the person's own tickets in human are a Backlog tab outside
// the badge, both filter by project and priority (page, API, CLI), rows are one line with who
// parked the ticket and the first line of the note, and the keys and the reply form work in
// headless Chromium with and without JavaScript.
import type { Page } from 'playwright-core';
import { browserPages } from './helpers/browser.js';
import { startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { getPage } from './helpers/web.js';

const browser = browserPages();
let d: EngineDaemon;

/** The ticket keys of the page's inbox rows, in the order shown. */
function rowKeys(html: string): string[] {
  const list = /<ul class="inbox-list"[^>]*>([\s\S]*?)<\/ul>/.exec(html)?.[1] ?? '';
  return [...list.matchAll(/<li class="inbox-item" id="t-[^"]+" data-key="([^"]+)"/g)].map((m) => m[1]!);
}

function rowOf(html: string, key: string): string {
  const start = html.indexOf(`data-key="${key}"`);
  expect(start).toBeGreaterThan(-1);
  return html.slice(start, html.indexOf('</li>', start));
}

async function apiKeys(query = ''): Promise<string[]> {
  const res = await d.api('GET', `/api/inbox${query}`);
  expect(res.status).toBe(200);
  return res.body.tickets.map((t: { key: string }) => t.key);
}

async function file(project: string, title: string, extra: Record<string, unknown>): Promise<string> {
  const res = await d.api('POST', '/api/tickets', { project, title, ...extra });
  expect(res.status).toBe(201);
  return res.body.ticket.key;
}

async function move(key: string, column: string, actor: string, comment = ''): Promise<void> {
  const res = await d.api('POST', `/api/tickets/${key}/move`, { column, actor, comment });
  expect(res.status).toBe(200);
}

beforeAll(async () => {
  d = await startEngineDaemon();
  await d.project('webshop', 'software-dev', 'web');
  await d.project('operations', 'software-dev', 'ops');
  // web's agents are paused, so tickets put in its agent columns wait there for the test
  expect((await d.api('POST', '/api/projects/web/pause', {})).status).toBe(200);

  // a real agent run asks a question and parks its ticket through ticket.cjs
  const question = { do: 'comment', type: 'block', body: 'Which currency?\nUSD or EUR, the spec says both.' };
  await d.ticket('ops', 'coding-agent', { 'coding-agent': [question, { do: 'move', to: 'human' }] }, 'Export invoices');
  const parked = () => d.ticketRow('ops-1').column_id === 'human' && d.runs('ops-1').every((r) => r.status !== 'running');
  await waitFor('the agent to park ops-1', parked, 60_000);

  await file('web', 'Backlog idea <b>bold</b>', { priority: 'urgent' }); // web-1: the person's own
  await file('web', 'Flaky login test', { column: 'coding-agent', priority: 'high' }); // web-2
  await move('web-2', 'human', 'system', 'Gave up after 3 failed coding-agent runs in a row\nLast error: boom');
  await file('web', 'Follow-up from a review', { priority: 'urgent', created_by: 'code-reviewer:run-9' }); // web-3
  await file('web', 'Merge the cart branch', { column: 'coding-agent' }); // web-4
  await move('web-4', 'human', 'merge', 'Merge conflict in cart.ts');
  await file('web', 'Handed back and forth', { column: 'coding-agent', priority: 'high' }); // web-5
  await move('web-5', 'human', 'coding-agent:run-3', 'Need a decision');
  await move('web-5', 'coding-agent', 'human', 'Go ahead');
  await move('web-5', 'human', 'human', 'Later'); // the person's last move makes it backlog again
  await file('ops', 'Rotate the logs someday', { priority: 'low' }); // ops-2
}, 120_000);
afterAll(async () => {
  await d?.stop();
});

describe('the two lists', () => {
  test('what an agent or the daemon parked comes first by priority then age; the badge counts only those', async () => {
    expect(await apiKeys()).toEqual(['web-3', 'web-2', 'ops-1', 'web-4']);
    expect(await apiKeys('?tab=backlog')).toEqual(['web-1', 'web-5', 'ops-2']);
    const needs = (await d.api('GET', '/api/inbox')).body;
    expect(needs.total).toBe(4);
    expect(needs.tickets.map((t: { key: string; parked_by: string }) => [t.key, t.parked_by])).toEqual([
      ['web-3', 'code-reviewer:run-9'],
      ['web-2', 'system'],
      ['ops-1', expect.stringMatching(/^coding-agent:/)],
      ['web-4', 'merge'],
    ]);

    const page = await getPage(d, '/inbox');
    expect(page.status).toBe(200);
    expect(rowKeys(page.html)).toEqual(['web-3', 'web-2', 'ops-1', 'web-4']);
    expect(page.html).toMatch(/<span class="count" id="inbox-count" aria-label="4 waiting">4<\/span>/);
    expect(page.html).toMatch(/Needs you <span class="count">4<\/span>/);
    expect(page.html).toMatch(/Backlog <span class="count">3<\/span>/);

    const backlog = await getPage(d, '/inbox?tab=backlog');
    expect(rowKeys(backlog.html)).toEqual(['web-1', 'web-5', 'ops-2']);
    expect(backlog.html).toMatch(/id="inbox-count" aria-label="4 waiting">4</);
  });

  test('answering a ticket takes it out; a person parking it again puts it in the backlog, not the badge', async () => {
    await file('web', 'Agent question to answer', { created_by: 'researcher:run-1', priority: 'urgent' }); // web-6
    expect(await apiKeys()).toEqual(['web-3', 'web-6', 'web-2', 'ops-1', 'web-4']);
    expect((await d.api('GET', '/api/inbox')).body.total).toBe(5);
    await move('web-6', 'coding-agent', 'human', 'answered');
    await move('web-6', 'human', 'human');
    expect(await apiKeys()).not.toContain('web-6');
    expect(await apiKeys('?tab=backlog')).toEqual(['web-1', 'web-6', 'web-5', 'ops-2']);
    expect((await d.api('GET', '/api/inbox')).body.total).toBe(4);
    await move('web-6', 'code-reviewer', 'human');
  });
});

describe('filters', () => {
  test('by project and priority in the API, the page and its form', async () => {
    expect(await apiKeys('?project=web')).toEqual(['web-3', 'web-2', 'web-4']);
    expect(await apiKeys('?project=web&priority=normal')).toEqual(['web-4']);
    expect(await apiKeys('?tab=backlog&project=ops')).toEqual(['ops-2']);
    expect((await d.api('GET', '/api/inbox?project=web&priority=high')).body.total).toBe(1);

    const page = await getPage(d, '/inbox?project=web&priority=urgent');
    expect(rowKeys(page.html)).toEqual(['web-3']);
    expect(page.html).toMatch(/<option value="web" selected>/);
    expect(page.html).toMatch(/<option value="urgent" selected>/);
    // the badge stays the whole count whatever the filter
    expect(page.html).toMatch(/id="inbox-count" aria-label="4 waiting">4</);
    const backlog = await getPage(d, '/inbox?tab=backlog&project=web');
    expect(rowKeys(backlog.html)).toEqual(['web-1', 'web-5']);
    expect(backlog.html).toMatch(/<input type="hidden" name="tab" value="backlog">/);
  });

  test('a bad filter is refused: 400 for a priority, 404 for a project', async () => {
    const bad = await d.api('GET', '/api/inbox?priority=soon');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/priority must be one of low, normal, high, urgent/);
    expect((await d.api('GET', '/api/inbox?project=nope')).status).toBe(404);
    expect((await d.api('GET', '/api/inbox?tab=later')).status).toBe(400);
    const page = await getPage(d, '/inbox?priority=soon');
    expect(page.status).toBe(400);
    expect(page.html).toContain('priority must be one of');
  });
});

test('rows: key, title, project, priority, who parked it and the first line of the note, escaped', async () => {
  const page = await getPage(d, '/inbox');
  const web2 = rowOf(page.html, 'web-2');
  expect(web2).toContain('href="/tickets/web-2#reply-h"');
  expect(web2).toContain('Flaky login test');
  expect(web2).toContain('webshop');
  expect(web2).toContain('prio-high');
  expect(web2).toContain('<span class="who">system</span>');
  expect(web2).toContain('Gave up after 3 failed coding-agent runs in a row');
  expect(web2).not.toContain('Last error: boom');
  expect(web2).toMatch(/<details class="inbox-actions">\s*<summary>Reply or send on<\/summary>/);
  const ops1 = rowOf(page.html, 'ops-1');
  expect(ops1).toContain('Which currency?');
  expect(ops1).not.toContain('USD or EUR');
  expect(ops1).toMatch(/<span class="who">coding-agent:[^<]+<\/span>/);
  const backlog = await getPage(d, '/inbox?tab=backlog');
  const web1 = rowOf(backlog.html, 'web-1');
  expect(web1).toContain('Backlog idea &lt;b&gt;bold&lt;/b&gt;');
  expect(web1).toContain('<span class="who">human</span>');
  expect(web1).toContain('No question or note attached.');
});

describe('dispatch inbox', () => {
  test('lists what needs you, the backlog, and filters', () => {
    const needs = d.cli(['inbox']);
    expect(needs.status).toBe(0);
    const lines = needs.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^id\s+project\s+priority\s+title\s+by\s+note\s+since/i);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['web-3', 'web-2', 'ops-1', 'web-4']);
    expect(needs.stdout).toMatch(/web-2\s+webshop\s+high\s+Flaky login test\s+system\s+Gave up after 3 failed/);
    expect(needs.stdout).not.toContain('Last error');

    const backlog = d.cli(['inbox', '--backlog']);
    expect(
      backlog.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual(['web-1', 'web-5', 'ops-2']);
    const filtered = d.cli(['inbox', '--project', 'web', '--priority', 'normal', '--json']);
    expect(JSON.parse(filtered.stdout).map((t: { key: string }) => t.key)).toEqual(['web-4']);
    expect(d.cli(['inbox', '--project', 'ops', '--priority', 'urgent']).stdout.trim()).toBe('nothing matches the filter');
  });

  test('bad filters fail with one line and exit 1', () => {
    const bad = d.cli(['inbox', '--priority', 'soon']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/Invalid values:.*priority.*"soon"/);
    const missing = d.cli(['inbox', '--project', 'nope']);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toBe('dispatch: project not found: nope');
  });
});

describe('in a browser', () => {
  test('with JavaScript: j/k select a row, r opens its reply form, e its move control, / the search box; not while typing', async () => {
    const page: Page = browser.page;
    await page.goto(`${d.url}/inbox`);
    const selected = page.locator('.inbox-item.selected');
    await page.keyboard.press('j');
    await expect(selected.getAttribute('data-key')).resolves.toBe('web-3');
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    await expect(selected.getAttribute('data-key')).resolves.toBe('ops-1');
    await page.keyboard.press('k');
    await expect(selected.getAttribute('data-key')).resolves.toBe('web-2');
    await page.keyboard.press('r');
    const reply = page.getByLabel('Reply to web-2');
    await expect(reply.evaluate((el) => el === document.activeElement)).resolves.toBe(true);
    expect(await page.locator('#t-web-2 details').evaluate((el) => (el as HTMLDetailsElement).open)).toBe(true);
    // keys typed into the reply are text, not commands
    await page.keyboard.type('jk');
    expect(await reply.inputValue()).toBe('jk');
    await expect(selected.getAttribute('data-key')).resolves.toBe('web-2');
    await reply.fill('');
    await page.locator('h1').click();
    await page.keyboard.press('j');
    await page.keyboard.press('e');
    await expect(page.locator('#move-ops-1').evaluate((el) => el === document.activeElement)).resolves.toBe(true);
    // `/` goes to the header's search box
    await page.locator('h1').click();
    await page.keyboard.press('/');
    await expect(page.locator('#nav-q').evaluate((el) => el === document.activeElement)).resolves.toBe(true);
    expect(await page.locator('#nav-q').inputValue()).toBe('');
  });

  test('without JavaScript: the row opens its reply form and the reply sends the ticket on, back to the same list', async () => {
    const context = await browser.browser.newContext({ javaScriptEnabled: false });
    const plain = await context.newPage();
    await file('web', 'Agent needs a yes', { created_by: 'coding-agent:run-42' }); // web-7
    await plain.goto(`${d.url}/inbox?project=web&priority=normal`);
    const row = plain.locator('.inbox-item', { hasText: 'Agent needs a yes' });
    await row.getByText('Reply or send on').click();
    await row.getByLabel('Reply to web-7').fill('Yes, go.');
    await row.getByLabel('then').selectOption('code-reviewer');
    await row.getByRole('button', { name: 'Send reply' }).click();
    await plain.waitForURL(/\/inbox\?project=web&priority=normal&done=moved/);
    const shown = (await d.api('GET', '/api/tickets/web-7')).body;
    expect(shown.ticket.column_id).toBe('code-reviewer');
    expect(shown.comments.at(-1)).toMatchObject({ type: 'move', body: 'Yes, go.', author: 'human', to_column: 'code-reviewer' });
    // the row's title leads to the ticket's own reply form
    await plain.goto(`${d.url}/inbox`);
    await plain.locator('.inbox-item', { hasText: 'Merge the cart branch' }).getByRole('link', { name: 'Merge the cart branch' }).click();
    await plain.waitForURL(/\/tickets\/web-4#reply-h$/);
    await plain.getByRole('heading', { name: 'Reply' }).waitFor();
    await context.close();
  });
});
