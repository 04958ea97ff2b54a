// Live pages against the real daemon: the /events stream read over HTTP (moves through the API,
// changes written to the database by another process the way ticket.cjs writes them, claims and run
// ends, catching up from the history row a page was rendered at, the guards and the cap on open
// streams), and in headless Chromium a board, an inbox and a ticket page that follow moves, a real
// agent's claim, its move through ticket.cjs and its run's end without a reload.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Page } from 'playwright-core';
import { browserPages } from './helpers/browser.js';
import { startEngineDaemon, killAgents, waitFor, type EngineDaemon } from './helpers/engine.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { getPage, loginCookie, openEventStream, openHomeDb, type EventReader, type StreamEvent } from './helpers/web.js';

const browser = browserPages();
let d: EngineDaemon;
let page: Page;
const open: EventReader[] = [];

beforeAll(async () => {
  d = await startEngineDaemon();
  await d.project('todo', 'personal', 'todo');
  await d.project('app', 'software-dev', 'app');
}, 60_000);
afterAll(async () => {
  if (d) await killAgents(d);
  await d?.stop();
});
beforeEach(() => {
  page = browser.page;
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function events(urlPath = '/events', headers: Record<string, string> = {}): Promise<EventReader> {
  // as EventSource asks: a refusal then comes as JSON, not as an HTML page
  const s = await openEventStream(d, urlPath, { accept: 'text/event-stream', ...headers });
  open.push(s);
  return s;
}

/** The next event that carries ticket `key` (in the state `match` accepts), and that ticket. */
async function ticketEvent(s: EventReader, key: string, match: (t: any) => boolean = () => true): Promise<{ e: StreamEvent; t: any }> {
  const e = await s.next((e) => Array.isArray(e.data.tickets) && e.data.tickets.some((t: any) => t.key === key && match(t)));
  return { e, t: e.data.tickets.find((t: any) => t.key === key && match(t)) };
}

async function file(project: string, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await d.api('POST', '/api/tickets', { project, title, ...extra });
  expect(res.status).toBe(201);
  return res.body.ticket.key;
}

/**
 * A move as `ticket.cjs` writes it: the column and its history row in one transaction of another
 * process's connection (this test's own, or `db` with `before` written in the same transaction).
 */
function moveInDb(key: string, to: string, author: string, before: (db: Database.Database) => void = () => {}): void {
  const db = openHomeDb(d);
  try {
    const [abbr, n] = key.split('-');
    const t = db
      .prepare(`SELECT t.id, t.column_id FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = ? AND t.number = ?`)
      .get(abbr, Number(n)) as { id: number; column_id: string };
    db.transaction(() => {
      before(db);
      const now = Date.now();
      db.prepare(`UPDATE tickets SET column_id = ?, column_entered_at = ?, updated_at = ? WHERE id = ?`).run(to, now, now, t.id);
      db.prepare(
        `INSERT INTO comments (ticket_id, type, author, body, from_column, to_column, created_at) VALUES (?, 'move', ?, '', ?, ?, ?)`,
      ).run(t.id, author, t.column_id, to, now);
    }).immediate();
  } finally {
    db.close();
  }
}

describe('the /events stream', () => {
  test("a move through the API arrives as the ticket's new state, with the inbox count", async () => {
    const s = await events();
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toContain('text/event-stream');
    expect((await s.next()).event).toBe('sync');
    const key = await file('todo', 'Water the plants');
    const created = await ticketEvent(s, key);
    expect(created.t).toEqual({
      key,
      project: 'todo',
      column: 'human',
      columnName: 'Human',
      title: 'Water the plants',
      priority: 'normal',
      running: null,
      inbox: 'backlog',
      gone: false,
    });
    expect(created.e.event).toBe('tickets');
    expect(created.e.data.counts).toEqual({ inbox: (await d.api('GET', '/api/inbox')).body.total });
    expect((await d.api('POST', `/api/tickets/${key}/move`, { column: 'done' })).status).toBe(200);
    const moved = await ticketEvent(s, key, (t) => t.column === 'done');
    expect(moved.t).toMatchObject({ column: 'done', columnName: 'Done', inbox: null });
    // the event's id is the history row it reaches, from which a reconnect goes on
    expect(Number(moved.e.id)).toBeGreaterThan(Number(created.e.id));
  });

  test('moves, claims and run ends written by another process arrive too', async () => {
    const key = await file('todo', 'Moved by an agent process');
    const s = await events();
    await s.next((e) => e.event === 'sync');
    moveInDb(key, 'done', 'coding-agent:run-x');
    expect((await ticketEvent(s, key, (t) => t.column === 'done')).t.columnName).toBe('Done');
    // a burst larger than one poll reads (1,000 history rows) goes out over the next polls: the move after it arrives
    const other = await file('todo', 'Behind a burst');
    // in one commit: 1,500 history rows of the first ticket, then the move
    moveInDb(other, 'done', 'coding-agent:run-z', (db) => {
      const id = (db.prepare(`SELECT id FROM tickets ORDER BY id LIMIT 1`).get() as { id: number }).id;
      const insert = db.prepare(
        `INSERT INTO comments (ticket_id, type, author, body, created_at) VALUES (?, 'journal', 'coding-agent:run-x', ?, ?)`,
      );
      for (let i = 0; i < 1500; i++) insert.run(id, `note ${i}`, Date.now());
    });
    expect((await ticketEvent(s, other, (t) => t.column === 'done')).t.key).toBe(other);
    moveInDb(key, 'human', 'code-reviewer:run-y');
    // parked by an agent: it needs the person and counts in the badge
    const parked = await ticketEvent(s, key, (t) => t.column === 'human');
    expect(parked.t.inbox).toBe('needs');
    expect(parked.e.data.counts.inbox).toBe((await d.api('GET', '/api/inbox')).body.total);

    // a claim and a run end that write no history row: found through the running tickets
    const db = openHomeDb(d);
    try {
      const byKey = `SELECT t.id FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation || '-' || t.number = ?`;
      const id = (db.prepare(byKey).get(key) as { id: number }).id;
      const now = Date.now();
      db.transaction(() => {
        db.prepare(
          `INSERT INTO runs (id, ticket_id, project_id, agent_type_id, model, column_id, status, created_at, started_at)
                    SELECT 'run-live-claim', id, project_id, 'coding-agent', 'sonnet', column_id, 'running', ?, ? FROM tickets WHERE id = ?`,
        ).run(now, now, id);
        db.prepare(`UPDATE tickets SET claimed_by_run = 'run-live-claim', claimed_at = ? WHERE id = ?`).run(now, id);
      })();
      expect((await ticketEvent(s, key, (t) => t.running !== null)).t.running).toBe('run-live-claim');
      db.transaction(() => {
        db.prepare(`UPDATE runs SET status = 'success', ended_at = ? WHERE id = 'run-live-claim'`).run(Date.now());
        db.prepare(`UPDATE tickets SET claimed_by_run = NULL, claimed_at = NULL WHERE id = ?`).run(id);
      })();
      expect((await ticketEvent(s, key, (t) => t.running === null)).t.column).toBe('human');
    } finally {
      db.close();
    }
  });

  test('a page catches up from the history row it was rendered at, and so does a reconnect', async () => {
    const key = await file('todo', 'Changed while the page loads');
    const html = (await getPage(d, '/projects/todo')).html;
    const since = Number(/<meta name="live-since" content="(\d+)">/.exec(html)![1]);
    expect(since).toBeGreaterThan(0);
    await d.api('POST', `/api/tickets/${key}/move`, { column: 'done' });
    const s = await events(`/events?since=${since}`);
    const sync = await s.next();
    expect(sync.event).toBe('sync');
    expect(sync.data.tickets.find((t: any) => t.key === key)).toMatchObject({ column: 'done' });
    expect(sync.data.running).toEqual([]);
    // a reconnect sends the last id it got as Last-Event-ID, which wins over ?since
    await d.api('POST', `/api/tickets/${key}/move`, { column: 'human' });
    const again = await events(`/events?since=${since}`, { 'last-event-id': String(Number(sync.id) - 0) });
    const resync = await again.next();
    expect(resync.data.tickets.map((t: any) => [t.key, t.column])).toEqual([[key, 'human']]);
    // a page rendered right after a change (at its history row), while other pages listen, connects
    // before the daemon's next poll has read that row: it catches up and is not told to reload
    for (let i = 0; i < 5; i++) {
      moveInDb(key, i % 2 ? 'human' : 'done', 'coding-agent:run-q');
      const db = openHomeDb(d);
      const newest = (db.prepare(`SELECT max(id) AS id FROM comments`).get() as { id: number }).id;
      db.close();
      const follower = await events(`/events?since=${newest}`);
      expect((await follower.next()).event).toBe('sync');
      follower.close();
    }
    // a history row this database does not have (a restored backup): the page is told to reload
    const ahead = await events(`/events?since=${Number(sync.id) + 1000}`);
    expect((await ahead.next()).event).toBe('reset');
    const bad = await events('/events?since=-1');
    expect([bad.status, JSON.parse(bad.text)]).toEqual([400, { error: 'since must be a history row id', field: 'since' }]);
  });

  test('a foreign Host is refused, and open streams are capped and counted down as clients leave', async () => {
    const foreign = await events('/events', { host: 'evil.example' });
    expect(foreign.status).toBe(421);
    const streams: EventReader[] = [];
    // the cap counts every open stream of the daemon
    for (;;) {
      const s = await events();
      if (s.status !== 200) {
        expect([s.status, s.headers['retry-after']]).toEqual([503, '10']);
        expect(JSON.parse(s.text).error).toContain('too many live pages open');
        break;
      }
      streams.push(s);
      expect(streams.length).toBeLessThanOrEqual(64);
    }
    expect(streams.length).toBe(32);
    streams[0]!.close();
    const after = await waitFor('a free stream after one closed', async () => {
      const s = await events();
      return s.status === 200 ? s : null;
    });
    expect((await after.next()).event).toBe('sync');
  });
});

describe('the /events stream with api_token', () => {
  let guarded: RunningDaemon;
  beforeAll(async () => {
    guarded = await startTestDaemon({ config: { api_token: 'live-token-123' } });
  }, 60_000);
  afterAll(async () => {
    await guarded?.stop();
  });

  test('needs the login cookie, like every page', async () => {
    const refused = await openEventStream(guarded, '/events', { accept: 'text/event-stream' });
    expect(refused.status).toBe(401);
    const { cookie } = await loginCookie(guarded, 'live-token-123');
    const s = await openEventStream(guarded, '/events', { accept: 'text/event-stream', cookie });
    try {
      expect(s.status).toBe(200);
      expect((await s.next()).event).toBe('sync');
    } finally {
      s.close();
    }
  });
});

describe('live pages in a browser', () => {
  test("a board moves cards in place: a move through the API, a new ticket, an agent's claim, its move and its run's end", async () => {
    const moved = await file('app', 'Moved by the API');
    const hostile = '<img src=x onerror="window.__hacked=1">Fix <b>this</b>';
    await page.goto(`${d.url}/projects/app`);
    await page.evaluate(() => ((window as any).__sameDocument = true));
    // with JavaScript the page does not refresh itself: the noscript refresh is not applied
    expect(await page.locator('meta[http-equiv="refresh"]').count()).toBe(0);
    const column = (id: string) => page.locator(`section.column[data-column="${id}"]`);

    expect((await d.api('POST', `/api/tickets/${moved}/move`, { column: 'done' })).status).toBe(200);
    await column('done').locator(`.card[data-key="${moved}"]`).waitFor();
    expect(await column('human').locator(`.card[data-key="${moved}"]`).count()).toBe(0);
    await column('done').locator('.column-head .count', { hasText: '1' }).waitFor();
    // the ← button now posts the move back from done
    await column('done')
      .getByRole('button', { name: `Move ${moved} to Security Reviewer` })
      .waitFor();

    // an agent takes a new ticket (its claim shows the running marker), then moves it to human
    // through ticket.cjs in its own process, and its run ends
    const go = path.join(d.root, 'go-board');
    const script = {
      'coding-agent': [
        { do: 'wait', file: go },
        { do: 'move', to: 'human', comment: 'Which colour?' },
      ],
    };
    const { key } = await d.ticket('app', 'coding-agent', script, hostile);
    const card = column('coding-agent').locator(`.card[data-key="${key}"]`);
    await card.locator('.running-flag a[href^="/runs/"]').waitFor();
    expect(await card.locator('.card-title').textContent()).toBe(hostile);
    expect(await page.locator('.board img').count()).toBe(0);
    fs.writeFileSync(go, '');
    const parked = column('human').locator(`.card[data-key="${key}"]`);
    await parked.waitFor();
    await waitFor('the run to end', () => d.runs(key).every((r) => r.status === 'success'), 60_000);
    await parked.locator('.running-flag').waitFor({ state: 'detached' });
    expect(await parked.evaluate((el) => el.classList.contains('is-running'))).toBe(false);
    await column('coding-agent').locator('.column-head .count', { hasText: '0' }).waitFor();
    expect(await page.evaluate(() => [(window as any).__sameDocument, (window as any).__hacked])).toEqual([true, undefined]);
  }, 120_000);

  test('an inbox gets the ticket an agent parks, and its badge counts it; a ticket page follows its ticket', async () => {
    const watched = await file('todo', 'Watched on its page');
    await page.goto(`${d.url}/inbox`);
    await page.evaluate(() => ((window as any).__sameDocument = true));
    const badge = Number(await page.locator('#inbox-count').textContent());
    const ticketPage = await browser.browser.newPage();
    try {
      await ticketPage.goto(`${d.url}/tickets/${watched}`);
      const go = path.join(d.root, 'go-inbox');
      const script = {
        'coding-agent': [
          { do: 'wait', file: go },
          { do: 'move', to: 'human', comment: 'Staging or production?' },
        ],
      };
      const { key } = await d.ticket('app', 'coding-agent', script, 'Deploy where?');
      await waitFor('the agent to start', () => d.runs(key).some((r) => r.status === 'running'), 60_000);
      fs.writeFileSync(go, '');
      const row = page.locator(`.inbox-item[data-key="${key}"]`);
      await row.locator('.note', { hasText: 'Staging or production?' }).waitFor();
      await page.locator('#inbox-count', { hasText: String(badge + 1) }).waitFor();
      await page.locator('.inbox-tabs a[aria-current="page"] .count', { hasText: String(badge + 1) }).waitFor();

      // sent on from elsewhere: the row leaves, the badge goes down
      expect((await d.api('POST', `/api/tickets/${key}/move`, { column: 'done' })).status).toBe(200);
      await row.waitFor({ state: 'detached' });
      await page.locator('#inbox-count', { hasText: String(badge) }).waitFor();
      expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

      moveInDb(watched, 'done', 'someone-else');
      await ticketPage.locator('.ticket-column', { hasText: 'Done' }).waitFor();
      await ticketPage.locator('[data-live-status]', { hasText: 'Moved to Done since this page was loaded.' }).waitFor();
    } finally {
      await ticketPage.close();
    }
  }, 120_000);

  test('one hidden tab keeps its stream; another lets its stream go and, shown again, catches up from the last event it got', async () => {
    const key = await file('todo', 'Moved while the tabs are hidden');
    // two tabs of one browser profile: the lock is shared between them
    const context = await browser.browser.newContext();
    const first = await context.newPage();
    const other = await context.newPage();
    try {
      const streams: string[] = [];
      let ended = 0;
      const isEvents = (url: string) => new URL(url).pathname === '/events';
      other.on('request', (r) => isEvents(r.url()) && streams.push(new URL(r.url()).searchParams.get('since')!));
      other.on('requestfailed', (r) => isEvents(r.url()) && ended++);
      other.on('requestfinished', (r) => isEvents(r.url()) && ended++);
      for (const p of [first, other]) {
        await p.goto(`${d.url}/projects/todo`);
        await p.evaluate(() => ((window as any).__sameDocument = true));
        await p.locator(`section.column[data-column="human"] .card[data-key="${key}"]`).waitFor();
      }
      const setHidden = (p: Page, hidden: boolean) =>
        p.evaluate((h) => {
          Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
          document.dispatchEvent(new Event('visibilitychange'));
        }, hidden);
      // the first tab hidden keeps its stream (the browser's one lock for it); the second lets its own go
      await setHidden(first, true);
      await first.waitForFunction(async () => (await navigator.locks.query()).held?.some((l) => l.name === 'dispatcher-hidden-stream'));
      await setHidden(other, true);
      await waitFor('the second hidden tab to let its stream go', () => ended === 1, 30_000);
      expect((await d.api('POST', `/api/tickets/${key}/move`, { column: 'done' })).status).toBe(200);
      await first.locator(`section.column[data-column="done"] .card[data-key="${key}"]`).waitFor();
      expect(await other.locator(`section.column[data-column="human"] .card[data-key="${key}"]`).count()).toBe(1);
      await setHidden(other, false);
      await other.locator(`section.column[data-column="done"] .card[data-key="${key}"]`).waitFor();
      expect(streams.length).toBe(2);
      expect(Number(streams[1])).toBeGreaterThanOrEqual(Number(streams[0]));
      for (const p of [first, other]) expect(await p.evaluate(() => (window as any).__sameDocument)).toBe(true);
    } finally {
      await context.close();
    }
  }, 120_000);

  test("without JavaScript the board, the inbox and a running ticket's page refresh themselves", async () => {
    const context = await browser.browser.newContext({ javaScriptEnabled: false });
    try {
      const plain = await context.newPage();
      for (const [url, seconds] of [
        ['/projects/app', '30'],
        ['/inbox', '60'],
      ] as const) {
        await plain.goto(`${d.url}${url}`);
        expect([url, await plain.locator('meta[http-equiv="refresh"]').getAttribute('content')]).toEqual([url, seconds]);
      }
      // a ticket's page refreshes only while an agent works on it (its forms would lose what is typed)
      await plain.goto(`${d.url}/tickets/todo-1`);
      expect(await plain.locator('meta[http-equiv="refresh"]').count()).toBe(0);
      const go = path.join(d.root, 'go-nojs');
      const { key } = await d.ticket('app', 'coding-agent', { 'coding-agent': [{ do: 'wait', file: go }] }, 'Running without JS');
      await waitFor('the agent to start', () => d.runs(key).some((r) => r.status === 'running'), 60_000);
      await plain.goto(`${d.url}/tickets/${key}`);
      expect(await plain.locator('meta[http-equiv="refresh"]').getAttribute('content')).toBe('30');
      fs.writeFileSync(go, '');
    } finally {
      await context.close();
    }
  }, 120_000);
});
