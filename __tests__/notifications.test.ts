// Notifications through the real daemon and fake agent: a real HTTP receiver on 127.0.0.1 gets
// exactly one POST when an agent parks a ticket with a question; a receiver answering 500 is
// retried by the notify queue and its attempts show in the queue inspector; quiet hours hold the
// jobs; a muted project sends nothing, not even over the pages' live stream, which carries the
// notifications of the others; the Test buttons post; the webhook URL's secret never comes
// back in the page or the API; a fake notify-send on the PATH gets the argv; and in headless
// Chromium the tab title, the favicon and a Notification follow the inbox. The channel formats,
// quiet hours and masks are checked as plain functions too.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { browserPages } from './helpers/browser.js';
import { startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { DELAYED_STATUS, queueCounts, queueJobs } from './helpers/queue.js';
import { makeTestHome, tempDir } from './helpers/home.js';
import { createTicket, moveTicket } from '../lib/tickets.js';
import { csrfOf, getPage, openEventStream, postForm, type EventReader, type StreamEvent } from './helpers/web.js';
import {
  desktopCommand,
  fillPending,
  maskUrl,
  pruneNotifications,
  quietUntil,
  webhookRequest,
  type Message,
} from '../lib/notifications.js';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver: records every request; paths under /fail/ answer 500 to their first `failures` requests. */
function receiver(failures: number) {
  const got: Received[] = [];
  const failed = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const n = failed.get(req.url ?? '') ?? 0;
      if (req.url?.startsWith('/fail/') && n < failures) {
        failed.set(req.url, n + 1);
        res.writeHead(500).end('down');
      } else res.writeHead(200).end('ok');
    });
  });
  return {
    got,
    server,
    listen: () => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const hhmm = (d: Date) => `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;

describe('channels, quiet hours and masks as functions', () => {
  const m: Message = {
    kind: 'inbox',
    title: 'pd-1 needs you: Café',
    text: 'coding-agent: which <currency>?',
    ticket: 'pd-1',
    project: 'pd',
    path: '/tickets/pd-1',
    created_at: 0,
  };

  test('json, ntfy and Slack requests', () => {
    const json = webhookRequest('json', 'https://example.test/hook', m, 'http://127.0.0.1:5757');
    expect(JSON.parse(json.init.body as string)).toMatchObject({
      event: 'inbox',
      title: m.title,
      text: m.text,
      ticket: 'pd-1',
      url: 'http://127.0.0.1:5757/tickets/pd-1',
    });
    const ntfy = webhookRequest('ntfy', 'https://ntfy.sh/topic', m, 'http://127.0.0.1:5757');
    expect(ntfy.init.body).toBe(m.text);
    const headers = ntfy.init.headers as Record<string, string>;
    expect(headers.title).toBe(`=?UTF-8?B?${Buffer.from(m.title).toString('base64')}?=`); // not Latin-1: encoded for ntfy
    expect(headers.click).toBe('http://127.0.0.1:5757/tickets/pd-1');
    const slack = JSON.parse(webhookRequest('slack', 'https://hooks.slack.test/x', m, 'http://h').init.body as string);
    expect(slack).toEqual({
      text: '*pd-1 needs you: Café*\ncoding-agent: which &lt;currency&gt;?\n<http://h/tickets/pd-1|Open in Dispatcher>',
    });
  });

  test('quiet hours across midnight and within a day, in local time', () => {
    const at = (h: number, min = 0) => new Date(2026, 0, 10, h, min).getTime();
    const night = { quiet_hours_start: '22:00', quiet_hours_end: '07:00' };
    expect(quietUntil(night, at(23, 30))).toBe(new Date(2026, 0, 11, 7, 0).getTime());
    expect(quietUntil(night, at(3))).toBe(new Date(2026, 0, 10, 7, 0).getTime());
    expect(quietUntil(night, at(7))).toBeNull();
    expect(quietUntil(night, at(21, 59))).toBeNull();
    expect(quietUntil({ quiet_hours_start: '12:00', quiet_hours_end: '13:00' }, at(12, 30))).toBe(at(13));
    expect(quietUntil({ quiet_hours_start: '', quiet_hours_end: '' }, at(3))).toBeNull();
  });

  test('a webhook URL is masked after its host', () => {
    expect(maskUrl('https://ntfy.sh/my-secret-topic')).toBe('https://ntfy.sh/••••');
    expect(maskUrl('https://hooks.slack.com/services/T0/B0/XYZ?x=1')).toBe('https://hooks.slack.com/••••');
    expect(maskUrl('https://user:pw@example.test/')).toBe('https://example.test/••••');
    expect(maskUrl('http://127.0.0.1:9000')).toBe('http://127.0.0.1:9000');
    expect(maskUrl('')).toBe('');
  });

  test('the desktop command line: notify-send or osascript from the PATH, texts as arguments, none without either', () => {
    const dir = tempDir('pd-notify-path-');
    expect(desktopCommand('t', 'b', 'linux', dir)).toBeNull();
    expect(desktopCommand('t', 'b', 'darwin', dir)).toBeNull();
    for (const name of ['notify-send', 'osascript']) fs.writeFileSync(path.join(dir, name), '#!/bin/sh\n', { mode: 0o755 });
    const title = 'pd-1 "needs" you; $(rm -rf ~)';
    expect(desktopCommand(title, 'body', 'linux', `/nonexistent:${dir}`)).toEqual({
      command: path.join(dir, 'notify-send'),
      args: ['--app-name=Dispatcher', '--', title, 'body'],
    });
    const mac = desktopCommand(title, 'body', 'darwin', dir)!;
    expect(mac.command).toBe(path.join(dir, 'osascript'));
    expect(mac.args.slice(-3)).toEqual(['--', title, 'body']);
    expect(mac.args.filter((a) => a.includes(title))).toEqual([title]); // never pasted into the script
  });
});

test('the record: a row for each move into human by an agent or the daemon, none for the person, worded from the ticket, pruned when old', () => {
  const h = makeTestHome();
  try {
    h.addProject('shop', 'software-dev', 'shop');
    const key = createTicket(h.store, { project: 'shop', title: 'Pay by card', column: 'coding-agent', createdBy: 'human' }).key;
    createTicket(h.store, { project: 'shop', title: 'Mine', column: 'human', createdBy: 'human' }); // filed by the person: no row
    moveTicket(h.store, key, 'human', { actor: 'coding-agent:run-1', comment: 'Which provider?\nStripe or Adyen.' });
    moveTicket(h.store, key, 'coding-agent', { actor: 'human', comment: 'Stripe' });
    moveTicket(h.store, key, 'human', { actor: 'human' }); // the person's own move: no row
    const rows = () => h.db.prepare(`SELECT kind, author, title, body, queued_at FROM notifications ORDER BY id`).all();
    expect(rows()).toEqual([{ kind: 'inbox', author: 'coding-agent:run-1', title: null, body: null, queued_at: null }]);
    fillPending(h.db);
    expect(rows()).toEqual([
      {
        kind: 'inbox',
        author: 'coding-agent:run-1',
        title: 'shop-1 needs you: Pay by card',
        body: 'coding-agent: Which provider?\nStripe or Adyen.',
        queued_at: null,
      },
    ]);
    expect(pruneNotifications(h.db, 1, Date.now() + 2 * 86_400_000)).toBe(0); // not handed to the queue yet: kept
    h.db.prepare(`UPDATE notifications SET queued_at = ?`).run(Date.now());
    expect(pruneNotifications(h.db, 1)).toBe(0);
    expect(pruneNotifications(h.db, 1, Date.now() + 2 * 86_400_000)).toBe(1);
  } finally {
    h.cleanup();
  }
});

describe('through the daemon', () => {
  const browser = browserPages();
  const hook = receiver(2);
  let d: EngineDaemon;
  let port: number;
  let argvFile: string;
  const hookUrl = () => `http://127.0.0.1:${port}/hook/topic-SECRET-42`;
  const posts = (prefix: string) => hook.got.filter((r) => r.path.startsWith(prefix));
  const desktopCalls = (): string[][] =>
    fs.existsSync(argvFile)
      ? fs
          .readFileSync(argvFile, 'utf8')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as string[])
      : [];
  const row = (sql: string, ...args: unknown[]) =>
    d
      .db()
      .prepare(sql)
      .get(...args) as any;
  const notificationOf = (key: string) => {
    const t = d.ticketRow(key);
    return row(`SELECT * FROM notifications WHERE ticket_id = ? ORDER BY id DESC LIMIT 1`, t.id);
  };
  /** Waits until the daemon has decided on the ticket's newest notification (queued, muted or none). */
  const decided = (key: string) =>
    waitFor(`${key}'s notification decided`, () => notificationOf(key)?.queued_at && notificationOf(key), 30_000);
  const jobEvents = (notificationId: number, channel: string) =>
    d
      .db()
      .prepare(`SELECT * FROM job_events WHERE queue = 'notify' AND payload = ? ORDER BY id`)
      .all(JSON.stringify({ notificationId, channel })) as any[];
  const park = async (key: string, note: string) => {
    const res = await d.api('POST', `/api/tickets/${key}/move`, { column: 'human', actor: 'system', comment: note });
    expect(res.status).toBe(200);
  };
  const file = async (project: string, title: string) => {
    const res = await d.api('POST', '/api/tickets', { project, title, column: 'code-reviewer' });
    expect(res.status).toBe(201);
    return res.body.ticket.key as string;
  };
  /** The pages' live stream, read as EventSource reads it, from its first (sync) event on. */
  const stream = async () => {
    const s = await openEventStream(d, '/events', { accept: 'text/event-stream' });
    expect(s.status).toBe(200);
    await s.next((e) => e.event === 'sync');
    return s;
  };
  const noteFor = (e: StreamEvent, key: string) =>
    e.event === 'notifications' ? e.data.notifications.find((x: { ticket: string }) => x.ticket === key) : undefined;
  /** The tickets of every notification the stream sent so far. */
  const notified = (s: EventReader) =>
    s.events.flatMap((e) => (e.event === 'notifications' ? e.data.notifications : [])).map((x) => x.ticket);
  const parkedEvent = (s: EventReader, key: string) =>
    s.next(
      (e) => e.event === 'tickets' && e.data.tickets.some((t: { key: string; column: string }) => t.key === key && t.column === 'human'),
    );

  beforeAll(async () => {
    port = await hook.listen();
    const bin = tempDir('pd-fake-notify-');
    argvFile = path.join(bin, 'argv.jsonl');
    fs.writeFileSync(
      path.join(bin, 'notify-send'),
      `#!${process.execPath}\nrequire('fs').appendFileSync(${JSON.stringify(argvFile)}, JSON.stringify(process.argv.slice(2)) + '\\n');\n`,
      { mode: 0o755 },
    );
    d = await startEngineDaemon({
      env: { PATH: `${bin}${path.delimiter}${process.env.PATH}`, TZ: 'UTC' },
      config: { notifications: { webhook_url: hookUrl(), webhook_format: 'json', desktop: true } },
    });
    await d.project('operations', 'software-dev', 'ops');
    await d.project('webshop', 'software-dev', 'web');
    // tickets the tests file into an agent column wait there: both projects' agents are paused
    for (const p of ['ops', 'web']) expect((await d.api('POST', `/api/projects/${p}/pause`, {})).status).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    await hook.close();
  });

  test('an agent parks a ticket with a question: one POST with the key and the question, and one desktop notification', async () => {
    expect((await d.api('POST', '/api/projects/ops/resume', {})).status).toBe(200);
    const question = { do: 'comment', type: 'block', body: 'Which currency?\nUSD or EUR, the spec says both.' };
    const { key } = await d.ticket('ops', 'coding-agent', { 'coding-agent': [question, { do: 'move', to: 'human' }] }, 'Export invoices');
    await waitFor(
      'the agent to park it',
      () => d.ticketRow(key).column_id === 'human' && d.runs(key).every((r) => r.status !== 'running'),
      60_000,
    );
    expect((await d.api('POST', '/api/projects/ops/pause', {})).status).toBe(200);
    const n = await decided(key);
    expect(n.outcome).toBe('queued');
    await waitFor(
      'both deliveries done',
      () =>
        jobEvents(n.id, 'webhook').some((e) => e.outcome === 'completed') &&
        jobEvents(n.id, 'desktop').some((e) => e.outcome === 'completed'),
      60_000,
    );
    const got = posts('/hook/');
    expect(got).toHaveLength(1);
    const body = JSON.parse(got[0]!.body);
    expect(body).toMatchObject({
      event: 'inbox',
      ticket: key,
      project: 'ops',
      title: `${key} needs you: Export invoices`,
      url: `${d.url}/tickets/${key}`,
    });
    expect(body.text).toMatch(/^coding-agent: Which currency\?\nUSD or EUR, the spec says both\.$/);
    expect(got[0]!.headers['content-type']).toBe('application/json');
    expect(desktopCalls()).toEqual([['--app-name=Dispatcher', '--', `${key} needs you: Export invoices`, body.text]]);
    expect(jobEvents(n.id, 'webhook')).toHaveLength(1);
  }, 120_000);

  test('a receiver answering 500 is retried with a growing wait, and the attempts show in the queue inspector', async () => {
    const failUrl = `http://127.0.0.1:${port}/fail/one`;
    expect((await d.api('PATCH', '/api/config', { notifications: { webhook_url: failUrl, desktop: false } })).status).toBe(200);
    const key = await file('ops', 'Flaky export');
    await park(key, 'Gave up after 3 failed runs');
    const n = await decided(key);
    const events = await waitFor(
      'the third attempt to succeed',
      () => {
        const e = jobEvents(n.id, 'webhook');
        return e.some((x) => x.outcome === 'completed') && e;
      },
      90_000,
    );
    expect(events.map((e) => [e.attempt, e.outcome])).toEqual([
      [1, 'retry'],
      [2, 'retry'],
      [3, 'completed'],
    ]);
    expect(events[0].error).toMatch(/^the webhook at http:\/\/127\.0\.0\.1:\d+\/•••• answered 500/);
    expect(events[1].started_at - events[0].ended_at).toBeGreaterThanOrEqual(1500); // a wait, not a hammering
    expect(posts('/fail/')).toHaveLength(3);
    expect(JSON.parse(posts('/fail/')[2]!.body)).toMatchObject({ ticket: key, text: 'the daemon: Gave up after 3 failed runs' });

    const job = await getPage(d, `/queues/jobs/${events[0].job_id}`);
    expect(job.status).toBe(200);
    expect(job.html).toContain('notify');
    expect(job.html).toContain('answered 500');
    expect(job.html).not.toContain('/fail/one'); // the URL's path is never shown
    const list = await getPage(d, '/queues');
    expect(list.html).toMatch(/notify/);
  }, 150_000);

  test('quiet hours hold webhook and desktop jobs until they end; the live stream still counts but pops nothing up', async () => {
    expect((await d.api('PATCH', '/api/config', { notifications: { webhook_url: hookUrl(), desktop: true } })).status).toBe(200);
    const now = new Date();
    const start = hhmm(new Date(now.getTime() - 3600_000));
    const end = hhmm(new Date(now.getTime() + 2 * 3600_000));
    expect((await d.api('PATCH', '/api/config', { notifications: { quiet_hours_start: start, quiet_hours_end: end } })).status).toBe(200);
    const before = posts('/hook/').length;
    const calls = desktopCalls().length;
    const s = await stream();
    try {
      const key = await file('ops', 'Asked at night');
      await park(key, 'A question at night');
      const n = await decided(key);
      expect(n.outcome).toBe('queued');
      const held = (await queueJobs(d, 'notify')).filter((j) => j.payload.includes(`"notificationId":${n.id},`));
      expect(held.map((j) => [JSON.parse(j.payload).channel, j.status]).sort()).toEqual([
        ['desktop', DELAYED_STATUS],
        ['webhook', DELAYED_STATUS],
      ]);
      const endsAt = new Date(now);
      endsAt.setUTCHours(Number(end.slice(0, 2)), Number(end.slice(3)), 0, 0);
      if (endsAt.getTime() < now.getTime()) endsAt.setUTCDate(endsAt.getUTCDate() + 1);
      for (const j of held) expect(Math.abs(j.available_at! - endsAt.getTime())).toBeLessThan(5000); // the end of the quiet hours
      // the page's badge, title and favicon still count it
      expect((await parkedEvent(s, key)).data.counts.inbox).toBeGreaterThanOrEqual(3);
      expect(posts('/hook/')).toHaveLength(before);
      expect(desktopCalls()).toHaveLength(calls);
      expect((await d.api('PATCH', '/api/config', { notifications: { quiet_hours_start: '', quiet_hours_end: '' } })).status).toBe(200);
      // the stream is in order: once the next one pops up, the one of the quiet hours was read and not sent
      const next = await file('ops', 'Asked in the morning');
      await park(next, 'A question in the morning');
      await s.next((e) => Boolean(noteFor(e, next)), 60_000);
      expect(notified(s)).not.toContain(key);
    } finally {
      s.close();
    }
  }, 120_000);

  test("a muted project sends nothing, not even over the pages' live stream; unmuted it sends again", async () => {
    const s = await stream();
    try {
      const mute = d.cli(['projects', 'set', 'web', '--mute']);
      expect([mute.status, mute.stdout.trim()]).toEqual([0, 'web: notifications muted']);
      expect((await getPage(d, '/projects/web')).html).toMatch(/Notifications: muted[\s\S]*?>Unmute</);
      const before = hook.got.length;
      const key = await file('web', 'Muted question');
      await park(key, 'Muted note');
      const n = await decided(key);
      expect(n.outcome).toBe('muted');
      // no job, waiting or ever attempted
      expect((await queueJobs(d, 'notify')).filter((j) => j.payload.includes(`"notificationId":${n.id},`))).toEqual([]);
      expect(
        d.db().prepare(`SELECT COUNT(*) AS c FROM job_events WHERE queue = 'notify' AND payload LIKE ?`).get(`%"notificationId":${n.id},%`),
      ).toEqual({ c: 0 });
      await parkedEvent(s, key); // the badge counts it all the same

      const page = await getPage(d, '/projects/web');
      const unmute = await postForm(d, '/projects/web/notifications', { _csrf: csrfOf(page.html), muted: '0' });
      expect(unmute.status).toBe(303);
      expect(d.db().prepare(`SELECT notifications_muted FROM projects WHERE abbreviation = 'web'`).get()).toEqual({
        notifications_muted: 0,
      });
      const next = await file('web', 'Loud question');
      await park(next, 'Loud note <b>as text</b>');
      await waitFor('the unmuted POST', () => posts('/hook/').some((r) => JSON.parse(r.body).ticket === next), 60_000);
      expect(hook.got.slice(before).filter((r) => r.body.includes(key))).toEqual([]);
      // what a page pops up for it, and nothing for the muted one before it (the stream is in order)
      const shown = noteFor(await s.next((e) => Boolean(noteFor(e, next)), 60_000), next);
      expect(shown).toEqual({
        id: notificationOf(next).id,
        kind: 'inbox',
        title: `${next} needs you: Loud question`,
        body: 'the daemon: Loud note <b>as text</b>',
        ticket: next,
        url: `/tickets/${next}`,
      });
      expect(notified(s)).not.toContain(key);
    } finally {
      s.close();
    }
  }, 120_000);

  test('the Test buttons post to the webhook (as typed in the form, nothing saved) and run notify-send', async () => {
    const page = await getPage(d, '/settings');
    const csrf = csrfOf(page.html);
    const masked = `http://127.0.0.1:${port}/••••`;
    expect(page.html).toContain(`value="${masked}"`);
    const before = posts('/hook/').length;
    const test = await postForm(d, '/settings/notifications/test', {
      _csrf: csrf,
      channel: 'webhook',
      'notifications.webhook_url': masked,
      'notifications.webhook_format': 'ntfy',
    });
    expect(test.status).toBe(200);
    expect(test.html).toContain('Test sent: the webhook answered 200.');
    const got = posts('/hook/').slice(before);
    expect(got).toHaveLength(1);
    expect([got[0]!.path, got[0]!.headers.title, got[0]!.body]).toEqual([
      '/hook/topic-SECRET-42',
      'Dispatcher test',
      'Notifications from Dispatcher reach you here.',
    ]);
    expect(JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).notifications.webhook_format).toBe('json'); // not saved

    const failing = await postForm(d, '/settings/notifications/test', {
      _csrf: csrf,
      channel: 'webhook',
      'notifications.webhook_url': `http://127.0.0.1:${port}/fail/test-button`,
    });
    expect(failing.html).toMatch(/Test failed: the webhook at http:\/\/127\.0\.0\.1:\d+\/•••• answered 500/);

    const calls = desktopCalls().length;
    const desktop = await postForm(d, '/settings/notifications/test', {
      _csrf: csrf,
      channel: 'desktop',
      'notifications.webhook_url': masked,
      'notifications.desktop': 'on',
    });
    expect(desktop.html).toContain('Test sent: notify-send showed it.');
    expect(desktopCalls().slice(calls)).toEqual([
      ['--app-name=Dispatcher', '--', 'Dispatcher test', 'Notifications from Dispatcher reach you here.'],
    ]);
  }, 60_000);

  test('the webhook secret is never in the settings page or the API after saving, and a masked field keeps it', async () => {
    const page = await getPage(d, '/settings');
    const fields: Record<string, string> = { _csrf: csrfOf(page.html) };
    const secretUrl = `http://127.0.0.1:${port}/hook/topic-NEW-secret-99`;
    const save = await postForm(d, '/settings', {
      ...fields,
      'notifications.webhook_url': secretUrl,
      'notifications.desktop': 'on',
      'notifications.browser': 'on',
      'agents.parallel_coding': 'on',
    });
    expect(save.status).toBe(303);
    const after = await getPage(d, '/settings');
    expect(after.html).not.toContain('topic-NEW-secret-99');
    expect(after.html).toContain(`value="http://127.0.0.1:${port}/••••"`);
    expect(JSON.stringify((await d.api('GET', '/api/config')).body)).not.toContain('topic-NEW-secret-99');
    const again = await postForm(d, '/settings', {
      ...fields,
      'notifications.webhook_url': `http://127.0.0.1:${port}/••••`,
      'notifications.desktop': 'on',
      'agents.parallel_coding': 'on',
    });
    expect(again.status).toBe(303);
    expect(JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).notifications.webhook_url).toBe(secretUrl);
    const bad = await postForm(d, '/settings', {
      ...fields,
      'notifications.webhook_url': 'ftp://example.test/x',
      'agents.parallel_coding': 'on',
    });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('<span class="field-error">The webhook URL must start with http:// or https://</span>');
    const emptied = await postForm(d, '/settings', {
      ...fields,
      'notifications.webhook_url': '',
      'notifications.desktop': 'on',
      'agents.parallel_coding': 'on',
    });
    expect(emptied.status).toBe(303);
    expect(JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).notifications.webhook_url).toBe('');
    expect((await d.api('PATCH', '/api/config', { notifications: { webhook_url: hookUrl(), browser: true } })).status).toBe(200);
  }, 60_000);

  test('a daily budget reached pauses the agents and says so once', async () => {
    expect((await d.api('PATCH', '/api/config', { budgets: { daily_usd: 0.5 } })).status).toBe(200);
    expect((await d.api('POST', '/api/projects/ops/resume', {})).status).toBe(200);
    const before = posts('/hook/').length;
    const { key } = await d.ticket(
      'ops',
      'coding-agent',
      {
        'coding-agent': [
          { do: 'cost', usd: 1 },
          { do: 'move', to: 'code-reviewer' },
        ],
      },
      'Costly work',
    );
    const paused = await waitFor(
      'the budget notification',
      () =>
        posts('/hook/')
          .slice(before)
          .find((r) => JSON.parse(r.body).event === 'paused'),
      60_000,
    );
    expect(JSON.parse(paused.body)).toMatchObject({ title: 'Agents paused: daily budget', ticket: null, url: `${d.url}/inbox` });
    expect(JSON.parse(paused.body).text).toMatch(/^Daily budget reached: \$1\.\d\d of \$0\.50 spent today; new runs resume at midnight/);
    expect(d.ticketRow(key).column_id).toBe('code-reviewer');
    // more scans under the same budget today add no second one
    for (let i = 0; i < 3; i++) expect((await d.api('POST', '/api/projects/ops/wake', {})).status).toBe(202);
    await waitFor('the wakes scanned', async () => ((c) => c.pending + c.running === 0)((await queueCounts(d)).scan), 30_000);
    expect(row(`SELECT COUNT(*) AS c FROM notifications WHERE kind = 'paused'`).c).toBe(1);
    expect((await d.api('POST', '/api/projects/ops/pause', {})).status).toBe(200);
    expect((await d.api('PATCH', '/api/config', { budgets: { daily_usd: 0 } })).status).toBe(200);
  }, 120_000);

  test('in the browser: the inbox count in the tab title and favicon, and a Notification for a new one, on live and other pages', async () => {
    const { page } = browser;
    // observes what notify.js shows: a stand-in Notification with the permission granted; and counts the page's event streams
    await page.addInitScript(() => {
      const w = window as unknown as { shown: { title: string; body: string }[]; streams: string[]; Notification: unknown };
      w.shown = [];
      w.streams = [];
      class Recorded {
        static permission = 'granted';
        static requestPermission = async () => 'granted';
        onclick: (() => void) | null = null;
        constructor(title: string, opts: { body: string }) {
          w.shown.push({ title, body: opts.body });
        }
      }
      w.Notification = Recorded;
      const Real = window.EventSource;
      window.EventSource = class extends Real {
        constructor(url: string | URL, init?: EventSourceInit) {
          super(url, init);
          w.streams.push(String(url));
        }
      };
    });
    const shownFor = (key: string) =>
      page.waitForFunction(
        (k) => (window as unknown as { shown: { title: string; body: string }[] }).shown.find((s) => s.title.startsWith(`${k} `)),
        key,
        { timeout: 60_000 },
      );
    await page.goto(`${d.url}/inbox`);
    const count = (await d.api('GET', '/api/inbox')).body.total as number;
    await page.waitForFunction((n) => document.title.startsWith(`(${n}) `), count);
    await page.waitForFunction(() => (document.querySelector('link[rel="icon"]') as HTMLLinkElement).href.startsWith('data:image/png'));
    const key = await file('ops', 'Seen in the browser');
    await park(key, 'Look at this in the browser');
    expect(await (await shownFor(key)).jsonValue()).toEqual({
      title: `${key} needs you: Seen in the browser`,
      body: 'the daemon: Look at this in the browser',
    });
    await page.waitForFunction((n) => document.title.startsWith(`(${n}) `), count + 1, { timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { streams: string[] }).streams)).toEqual([
      expect.stringMatching(/^\/events\?since=\d+$/),
    ]);

    // a page that is not a live page follows the same one stream: its count, favicon and pop-ups
    await page.goto(`${d.url}/settings`);
    await page.waitForFunction((n) => document.title.startsWith(`(${n}) `), count + 1);
    const other = await file('ops', 'Seen on Settings');
    await park(other, 'Look at this on Settings');
    expect(await (await shownFor(other)).jsonValue()).toEqual({
      title: `${other} needs you: Seen on Settings`,
      body: 'the daemon: Look at this on Settings',
    });
    await page.waitForFunction((n) => document.title.startsWith(`(${n}) `), count + 2, { timeout: 30_000 });
    await page.waitForFunction(
      (n) => (document.querySelector('link[rel="icon"]') as HTMLLinkElement).dataset.count === String(n),
      count + 2,
    );
    expect(await page.locator('#inbox-count').textContent()).toBe(String(count + 2));
    expect(await page.evaluate(() => (window as unknown as { streams: string[] }).streams)).toEqual(['/events']);
  }, 120_000);
});
