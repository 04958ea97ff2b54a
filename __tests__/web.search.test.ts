// Search and filters through the real daemon: /api/search, the /search page (counts, paging,
// filters, highlighted and escaped snippets), the board's filter box (on the server, and live in
// headless Chromium), the ticket list's count and `dispatch ticket search` as a real process.
// Hostile queries get 200 or 400, never a 500.
import fs from 'node:fs';
import path from 'node:path';
import { browserPages } from './helpers/browser.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { getPage } from './helpers/web.js';

const browser = browserPages();
let d: RunningDaemon;

async function fileTicket(project: string, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await d.api('POST', '/api/tickets', { project, title, ...extra });
  expect(r.status).toBe(201);
  return r.body.ticket.key;
}

const HOSTILE = [
  '"',
  '""',
  'AND',
  'OR pay',
  'NOT',
  '*',
  '-',
  '-pay',
  'NEAR(',
  'NEAR(pay bill',
  '(',
  ')',
  'title:pay',
  '{title}:pay',
  '^pay',
  'pay"',
  "'; DROP TABLE tickets; --",
  '\\',
  '%',
  '_',
  '\u0000',
  'x'.repeat(600),
];

beforeAll(async () => {
  d = await startTestDaemon();
  for (const [name, abbreviation, type] of [
    ['shop', 'sh', 'software-dev'],
    ['notes', 'nt', 'personal'],
  ]) {
    fs.mkdirSync(path.join(d.projectsRoot, name!), { recursive: true });
    expect((await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, name!), type, abbreviation })).status).toBe(201);
  }
  await fileTicket('sh', 'Payment page times out', { body: 'The gateway call has no timeout.' });
  await fileTicket('sh', '<script>alert("x")</script> payment', { body: '<img src=x onerror=alert(1)> payment & more' });
  await fileTicket('sh', 'Quokka export 100%_done', { column: 'done', priority: 'urgent' });
  await fileTicket('nt', 'Pay the bill');
  for (let i = 1; i <= 45; i++) await fileTicket('sh', `Bulk item ${i}`, { body: 'numbered for paging' });
  expect((await d.api('POST', '/api/tickets/sh-1/comments', { type: 'comment', body: 'Gateway logs show a TLS wombat' })).status).toBe(201);
});
afterAll(async () => {
  await d?.stop();
});

describe('GET /api/search', () => {
  test('finds words in the title, body and history, with total, snippet and filters', async () => {
    const r = await d.api('GET', '/api/search?q=wombat');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ total: 1, order: 'relevance', limit: 20, offset: 0 });
    expect(r.body.hits[0]).toMatchObject({
      key: 'sh-1',
      project: 'sh',
      project_name: 'shop',
      title: 'Payment page times out',
      column_id: 'human',
      column_name: 'Human',
    });
    expect(r.body.hits[0].snippet_parts).toContainEqual({ text: 'wombat', match: true });
    expect(r.body.hits[0].snippet).toContain('Gateway logs show a TLS wombat');

    expect((await d.api('GET', '/api/search?q=pay*')).body.total).toBe(3);
    expect((await d.api('GET', '/api/search?q=pay')).body.total).toBe(1);
    expect((await d.api('GET', '/api/search?q=pay&project=nt')).body.hits.map((h: { key: string }) => h.key)).toEqual(['nt-1']);
    expect((await d.api('GET', '/api/search?q=quokka&column=done')).body.total).toBe(1);
    expect((await d.api('GET', '/api/search?q=quokka&column=human')).body.total).toBe(0);
    expect((await d.api('GET', '/api/search?q=quokka&project=sh&column=done')).body.total).toBe(1);
  });

  test('pages through the hits', async () => {
    const first = await d.api('GET', '/api/search?q=bulk&limit=20');
    const last = await d.api('GET', '/api/search?q=bulk&limit=20&offset=40');
    expect([first.body.total, first.body.hits.length, last.body.hits.length]).toEqual([45, 20, 5]);
    const all = new Set<string>();
    for (let offset = 0; offset < 45; offset += 20)
      for (const h of (await d.api('GET', `/api/search?q=bulk&offset=${offset}`)).body.hits) all.add(h.key);
    expect(all.size).toBe(45);
  });

  test('bad parameters are a 400 or 404 naming the problem', async () => {
    expect(await d.api('GET', '/api/search')).toMatchObject({ status: 400, body: { field: 'q' } });
    expect(await d.api('GET', '/api/search?q=*')).toMatchObject({
      status: 400,
      body: { error: expect.stringContaining('must contain a word'), field: 'q' },
    });
    expect(await d.api('GET', '/api/search?q=pay&limit=1000')).toMatchObject({ status: 400, body: { field: 'limit' } });
    expect(await d.api('GET', '/api/search?q=pay&offset=-1')).toMatchObject({ status: 400, body: { field: 'offset' } });
    expect(await d.api('GET', '/api/search?q=pay&q=bill')).toMatchObject({ status: 400, body: { field: 'q' } });
    expect(await d.api('GET', '/api/search?q=pay&project=zz')).toMatchObject({ status: 404 });
    expect(await d.api('GET', '/api/search?q=pay&project=nt&column=coding-agent')).toMatchObject({
      status: 400,
      body: { field: 'column' },
    });
  });

  test('hostile queries answer 200 or 400 with JSON, never 500', async () => {
    for (const q of HOSTILE) {
      const res = await fetch(`${d.url}/api/search?q=${encodeURIComponent(q)}`);
      const body = (await res.json()) as { total?: number; error?: string };
      expect([q, [200, 400].includes(res.status)]).toEqual([q, true]);
      expect([q, res.status === 200 ? typeof body.total : body.error]).toEqual([q, res.status === 200 ? 'number' : expect.any(String)]);
    }
    expect((await d.api('GET', '/api/health')).status).toBe(200);
    expect((await d.api('GET', '/api/tickets?project=sh&limit=1000')).body.tickets.length).toBe(48);
  });
});

describe('the /search page', () => {
  test('every page has the search box in its header', async () => {
    for (const url of ['/inbox', '/projects', '/runs', '/settings'])
      expect((await getPage(d, url)).html).toMatch(/<form class="nav-search" method="get" action="\/search" role="search">/);
    expect((await getPage(d, '/search?q=gateway')).html).toMatch(/id="nav-q"[^>]*value="gateway"/);
  });

  test('shows the count and highlighted snippets, escaped: only its own <mark> is markup', async () => {
    const page = await getPage(d, '/search?q=onerror');
    expect(page.status).toBe(200);
    expect(page.html).toContain('1 ticket matches.');
    expect(page.html).toContain('&lt;img src=x <mark>onerror</mark>=alert(1)&gt; payment &amp; more');
    expect(page.html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; payment');
    expect(page.html).not.toContain('<script>alert');
    expect(page.html).not.toContain('<img');
    const titled = await getPage(d, '/search?q=script');
    expect(titled.html).toContain('&lt;<mark>script</mark>&gt;alert(&quot;x&quot;)&lt;/<mark>script</mark>&gt; payment');
    expect(titled.html).not.toContain('<script>alert');
  });

  test('pages, filters, and a ticket key going straight to the ticket', async () => {
    const first = await getPage(d, '/search?q=bulk');
    expect(first.html).toContain('45 tickets match; showing 1–20.');
    expect(first.html.match(/class="search-hit"/g)).toHaveLength(20);
    expect(first.html).toContain('Page 1 of 3');
    expect(first.html).toContain('href="/search?q=bulk&amp;page=2" rel="next"');
    const third = await getPage(d, '/search?q=bulk&page=3');
    expect(third.html.match(/class="search-hit"/g)).toHaveLength(5);
    expect(third.html).toContain('showing 41–45');
    expect(third.html).not.toContain('rel="next"');
    expect(await getPage(d, '/search?q=bulk&page=9')).toMatchObject({ status: 302, location: '/search?q=bulk&page=3' });

    const filtered = await getPage(d, '/search?q=pay&project=nt');
    expect(filtered.html).toContain('1 ticket matches.');
    expect(filtered.html).toContain('href="/tickets/nt-1"');
    expect(filtered.html).toMatch(/<option value="nt" selected>/);
    expect((await getPage(d, '/search?q=quokka&column=done')).html).toContain('href="/tickets/sh-3"');
    expect((await getPage(d, '/search?q=quokka&column=human')).html).toContain('No tickets match.');

    expect(await getPage(d, '/search?q=SH-1')).toMatchObject({ status: 302, location: '/tickets/sh-1' });
    expect((await getPage(d, '/search?q=sh-999')).status).toBe(200);
    expect((await getPage(d, '/search')).html).not.toContain('search-total');
  });

  test('hostile queries answer 200 or 400 with the page, never 500', async () => {
    for (const q of HOSTILE) {
      const page = await getPage(d, `/search?q=${encodeURIComponent(q)}`);
      expect([q, [200, 400].includes(page.status)]).toEqual([q, true]);
      expect(page.html).toContain('<h1>Search</h1>');
    }
    const refused = await getPage(d, '/search?q=*');
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('q must contain a word or number to search for');
    expect((await getPage(d, '/search?q=pay&project=zz')).status).toBe(404);
  });
});

describe('board filter and ticket counts', () => {
  test('the board filter keeps the cards whose title, number or priority match, server-side', async () => {
    const cards = (html: string) => [...html.matchAll(/<li class="card[^"]*" data-key="([^"]+)"/g)].map((m) => m[1]);
    expect(cards((await getPage(d, '/projects/sh?filter=QUOKKA')).html)).toEqual(['sh-3']);
    expect(cards((await getPage(d, '/projects/sh?filter=urgent')).html)).toEqual(['sh-3']);
    expect(cards((await getPage(d, '/projects/sh?filter=sh-2')).html)).toEqual(['sh-2']);
    expect(cards((await getPage(d, '/projects/sh?filter=%2342')).html)).toEqual(['sh-42']);
    // LIKE wildcards are literal text
    expect(cards((await getPage(d, '/projects/sh?filter=100%25_')).html)).toEqual(['sh-3']);
    expect(cards((await getPage(d, '/projects/sh?filter=%25')).html)).toEqual(['sh-3']);
    const bulk = await getPage(d, '/projects/sh?filter=bulk');
    expect(bulk.html).toContain('45 matching cards');
    expect(bulk.html).toMatch(/id="col-human">Human <span class="count" aria-label="45 tickets">45<\/span>/);
    expect(bulk.html).toMatch(/id="board-filter"[^>]*value="bulk"/);
    // a move from a filtered board comes back to it
    expect(bulk.html).toContain('name="return_to" value="/projects/sh?filter=bulk"');
    expect(cards((await getPage(d, '/projects/sh')).html)).toHaveLength(48);
  });

  test('with JavaScript the board filter hides cards as you type, by the same rule', async () => {
    const page = browser.page;
    await page.goto(`${d.url}/projects/sh`);
    const visible = () => page.locator('.card:visible').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.key));
    expect(await visible()).toHaveLength(48);
    await page.getByLabel('Filter cards').fill('quok');
    await page.waitForFunction(() => document.querySelectorAll('.card:not([hidden])').length === 1);
    expect(await visible()).toEqual(['sh-3']);
    await page.getByLabel('Filter cards').fill('urgent');
    expect(await visible()).toEqual(['sh-3']);
    await page.getByLabel('Filter cards').fill('#42');
    expect(await visible()).toEqual(['sh-42']);
    await page.getByLabel('Filter cards').fill('');
    expect(await visible()).toHaveLength(48);
    // sending the form filters on the server and keeps the text in the box
    await page.getByLabel('Filter cards').fill('bulk item 4');
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    await page.waitForURL(/filter=bulk\+item\+4/);
    expect((await visible()).sort()).toEqual(['sh-7', 'sh-43', 'sh-44', 'sh-45', 'sh-46', 'sh-47', 'sh-48'].sort());
    expect(await page.locator('.card').count()).toBe(7);
  });

  test('the all-tickets pages say how many tickets there are', async () => {
    expect((await getPage(d, '/projects/sh/tickets')).html).toContain('48 tickets</p>');
    expect((await getPage(d, '/projects/sh/tickets?column=done')).html).toContain('1 ticket</p>');
    expect((await getPage(d, '/projects/nt/tickets')).html).toContain('1 ticket</p>');
  });
});

describe('dispatch ticket search', () => {
  test('prints the hits with their snippets, or the API data with --json', () => {
    const plain = d.cli(['ticket', 'search', 'wombat']);
    expect(plain.status).toBe(0);
    expect(plain.stdout).toContain('1 ticket found');
    expect(plain.stdout).toMatch(/sh-1 {2}human {2}Payment page times out/);
    expect(plain.stdout).toContain('Gateway logs show a TLS wombat');
    const json = d.cli(['ticket', 'search', 'pay', '--project', 'nt', '--json']);
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ total: 1, hits: [{ key: 'nt-1' }] });
    const words = JSON.parse(d.cli(['ticket', 'search', 'bulk', 'item', '--limit', '5', '--json']).stdout);
    expect([words.total, words.hits.length]).toEqual([45, 5]);
  });

  test('bad input is one line on stderr and exit 1', () => {
    for (const args of [['*'], ['pay', '--project', 'zz'], ['pay', '--limit', '1000']]) {
      const r = d.cli(['ticket', 'search', ...args]);
      expect([args, r.status]).toEqual([args, 1]);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(d.cli(['ticket', 'search', '*']).stderr).toContain('must contain a word');
  });
});
