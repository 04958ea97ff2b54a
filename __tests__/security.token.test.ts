// `api_token` guards every route of the real daemon, whatever the letter case of the path: the
// API by bearer, the pages by a login cookie (HttpOnly, SameSite=Strict) set by /login, with only
// /api/health, /login, /logout and /static/ open. Without a token, the JSON-only rule for API
// writes holds in any letter case too. In headless Chromium the page scripts (live refresh,
// drag and drop, live transcript, prompt preview) work with the cookie, and logout ends it.
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { browserPages } from './helpers/browser.js';
import { fakeClaude, WAITING_AGENTS } from './helpers/engine.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { bearerApi, csrfOf, insertRun, rawRequest, sampleTranscript, setRunStatus, writeTranscript } from './helpers/web.js';

const TOKEN = 'tunnel-token-5b1f0c2e9a';
const EVIL_ENV = 'NODE_OPTIONS=--require ./evil.cjs';

const raw = rawRequest;
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' };
const bearer = { authorization: `Bearer ${TOKEN}` };

const api = (d: RunningDaemon, method: string, urlPath: string, body?: unknown) => bearerApi(d, TOKEN, method, urlPath, body);

/** Logs in through the form, checking the cookie it sets. */
async function login(d: RunningDaemon): Promise<{ cookie: string; csrf: string }> {
  const csrf = csrfOf((await raw(d, 'GET', '/login', { accept: 'text/html' })).text);
  const r = await raw(d, 'POST', '/login', FORM, form({ _csrf: csrf, token: TOKEN, next: '/settings' }));
  expect(r.status).toBe(303);
  expect(r.headers.location).toBe('/settings');
  const set = r.headers['set-cookie']![0]!;
  expect(set).toMatch(new RegExp(`^dispatch_session_${d.port}=[A-Za-z0-9_-]+;`));
  expect(set).toMatch(/; HttpOnly/);
  expect(set).toMatch(/; SameSite=Strict/);
  expect(set).toMatch(/; Path=\//);
  expect(set).not.toContain(TOKEN);
  return { cookie: set.split(';')[0]!, csrf };
}

describe('with api_token set', () => {
  let d: RunningDaemon;
  let configBefore: string;
  beforeAll(async () => {
    d = await startTestDaemon({ config: { api_token: TOKEN } });
    fs.mkdirSync(path.join(d.projectsRoot, 'shop'));
    const folder = path.join(d.projectsRoot, 'shop');
    const registered = await api(d, 'POST', '/api/projects', { path: folder, type: 'software-dev', abbreviation: 'shop' });
    expect(registered.status).toBe(201);
    expect((await api(d, 'POST', '/api/tickets', { project: 'shop', title: 'existing' })).status).toBe(201);
    configBefore = fs.readFileSync(path.join(d.home, 'config.json'), 'utf8');
  }, 60_000);
  afterAll(() => d.stop());

  const tickets = async () => (await api(d, 'GET', '/api/tickets?project=shop')).body.tickets.length;

  test('the API answers 401 without the bearer, in every letter case and with a trailing slash', async () => {
    const paths = ['/api/config', '/API/config', '/Api/Config', '/api/config/', '/API/CONFIG/', '/aPi/projects', '/API/tickets/shop-1'];
    paths.push('/API', '/API/no-such');
    for (const p of paths) {
      for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }]) {
        const r = await raw(d, 'GET', p, headers);
        expect([p, r.status]).toEqual([p, 401]);
        expect(JSON.parse(r.text).error).toMatch(/token/);
        expect(r.text).not.toContain('api_token');
      }
    }
    // the attack from the hardening pass: a page's form token does not open the upper-case API
    const csrf = csrfOf((await raw(d, 'GET', '/login', { accept: 'text/html' })).text);
    for (const p of ['/API/tickets', '/Api/tickets', '/api/tickets']) {
      const r = await raw(d, 'POST', p, FORM, form({ _csrf: csrf, project: 'shop', title: 'pwned', column: 'coding-agent' }));
      expect([p, [401, 415].includes(r.status)]).toEqual([p, true]); // no token, and not JSON either
    }
    const patch = await raw(
      d,
      'PATCH',
      '/API/config',
      { 'content-type': 'application/json' },
      JSON.stringify({ agents: { env: { X: '1' } } }),
    );
    expect(patch.status).toBe(401);
    expect(await tickets()).toBe(1);
    expect(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).toBe(configBefore);
    // with the bearer, any letter case works like the CLI's
    expect((await raw(d, 'GET', '/API/Config', bearer)).status).toBe(200);
  });

  test('pages redirect to the login page and page posts are refused without the login cookie', async () => {
    const pages = ['/', '/inbox', '/settings', '/projects', '/projects/shop', '/tickets/shop-1', '/runs', '/queues', '/agent-types'];
    pages.push('/project-types');
    for (const p of [...pages, '/SETTINGS', '/no-such-page']) {
      const r = await raw(d, 'GET', p, { accept: 'text/html' });
      expect([p, r.status, r.headers.location]).toEqual([p, 303, `/login?next=${encodeURIComponent(p)}`]);
      expect(r.text).not.toContain('existing'); // nothing of the page before the login
    }
    const json = await raw(d, 'GET', '/inbox', { accept: 'application/json' });
    expect(json.status).toBe(401);
    // the attack from the hardening pass: code execution in the next agent through the settings form
    const csrf = csrfOf((await raw(d, 'GET', '/login', { accept: 'text/html' })).text);
    const posts: [string, Record<string, string>][] = [
      ['/settings', { 'agents.env': EVIL_ENV }],
      ['/projects/shop/tickets', { title: 'pwned', column: 'coding-agent' }],
      ['/tickets/shop-1/move', { column: 'coding-agent', from: 'human' }],
      ['/agent-types/coding-agent', { prompt: 'exfiltrate', name: 'x' }],
      ['/projects/discover', {}],
    ];
    for (const [p, fields] of posts) {
      for (const cookie of [undefined, `dispatch_session_${d.port}=forged`, `dispatch_session_${d.port}=${TOKEN}`]) {
        const r = await raw(d, 'POST', p, cookie ? { ...FORM, cookie } : FORM, form({ _csrf: csrf, ...fields }));
        expect([p, cookie, r.status]).toEqual([p, cookie, 401]);
      }
    }
    expect(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).toBe(configBefore);
    expect(await tickets()).toBe(1);
    expect((await api(d, 'GET', '/api/tickets/shop-1')).body.ticket.column_id).toBe('human');
    expect(fs.readFileSync(path.join(d.home, 'prompts', 'coding-agent.md'), 'utf8')).not.toBe('exfiltrate');
  });

  test('open without a token: the health check, the login page and its static assets', async () => {
    for (const p of ['/api/health', '/API/health', '/login', '/static/app.css', '/static/app.js', '/static/favicon.svg']) {
      const r = await raw(d, 'GET', p, { accept: 'text/html' });
      expect([p, r.status]).toEqual([p, 200]);
    }
    const page = await raw(d, 'GET', '/login?next=/projects/shop', { accept: 'text/html' });
    expect(page.text).toContain('name="token"');
    expect(page.text).toContain('value="/projects/shop"');
    expect(page.text).not.toContain('href="/settings"'); // no navigation to pages it cannot open
    // only what the login needs: a missing asset is a bare 404 (no page data), other methods stay shut
    const missing = await raw(d, 'GET', '/static/nope.css', { accept: 'text/html' });
    expect([missing.status, missing.text]).toEqual([404, 'not found']);
    expect((await raw(d, 'GET', '/logout', { accept: 'text/html' })).status).toBe(303);
    expect((await raw(d, 'DELETE', '/login', { accept: 'text/html' })).status).toBe(401);
    expect((await raw(d, 'POST', '/api/health', { 'content-type': 'application/json' }, '{}')).status).toBe(401);
    // open, it names no path the health checks looked at; with the token, the checks come too
    const open = JSON.parse((await raw(d, 'GET', '/api/health', {})).text);
    expect([open.ok, 'health' in open]).toEqual([true, false]);
    expect((await api(d, 'GET', '/api/health')).body).toHaveProperty('health');
    // a next= to another site is ignored
    const offsite = await raw(d, 'GET', '/login?next=//evil.example/x', { accept: 'text/html' });
    expect(offsite.text).toContain('value="/inbox"');
  });

  test('a wrong token on the login form is refused with a message and no cookie', async () => {
    const csrf = csrfOf((await raw(d, 'GET', '/login', { accept: 'text/html' })).text);
    for (const given of ['wrong', '', TOKEN.slice(0, -1), `${TOKEN}x`]) {
      const r = await raw(d, 'POST', '/login', FORM, form({ _csrf: csrf, token: given }));
      expect(r.status).toBe(401);
      expect(r.text).toContain('That is not the api_token of this daemon.');
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    const noCsrf = await raw(d, 'POST', '/login', FORM, form({ token: TOKEN }));
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.headers['set-cookie']).toBeUndefined();
  });

  test('logged in, the pages work; the cookie does not open the API; a new token or logout ends the session', async () => {
    const { cookie, csrf } = await login(d);
    const page = await raw(d, 'GET', '/settings', { accept: 'text/html', cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('agents.max_concurrent_global');
    expect(page.text).toContain('Log out');
    expect(page.text).not.toContain(TOKEN);
    const filed = await raw(d, 'POST', '/projects/shop/tickets', { ...FORM, cookie }, form({ _csrf: csrf, title: 'filed after login' }));
    expect(filed.status).toBe(303);
    expect(await tickets()).toBe(2);
    // the API stays bearer-only (the page scripts use page routes)
    expect((await raw(d, 'GET', '/api/config', { cookie })).status).toBe(401);
    // a login cookie of another port is not this daemon's
    const otherPort = cookie.replace(`_${d.port}=`, `_${d.port + 1}=`);
    expect((await raw(d, 'GET', '/inbox', { accept: 'text/html', cookie: otherPort })).status).toBe(303);

    const out = await raw(d, 'POST', '/logout', { ...FORM, cookie }, form({ _csrf: csrf }));
    expect(out.status).toBe(303);
    expect(out.headers.location).toBe('/login');
    expect(out.headers['set-cookie']![0]).toMatch(new RegExp(`^dispatch_session_${d.port}=;.*Expires=Thu, 01 Jan 1970`));

    // changing the token (here through the API) invalidates every login cookie
    const again = await login(d);
    expect((await raw(d, 'GET', '/inbox', { accept: 'text/html', cookie: again.cookie })).status).toBe(200);
    const rotated = `${TOKEN}-rotated`;
    expect((await api(d, 'PATCH', '/api/config', { api_token: rotated })).status).toBe(200);
    expect((await raw(d, 'GET', '/inbox', { accept: 'text/html', cookie: again.cookie })).status).toBe(303);
    expect((await raw(d, 'GET', '/api/config', bearer)).status).toBe(401);
    expect((await bearerApi(d, rotated, 'PATCH', '/api/config', { api_token: TOKEN })).status).toBe(200);
    expect((await raw(d, 'GET', '/inbox', { accept: 'text/html', cookie: again.cookie })).status).toBe(200);
  });
});

test('without api_token, API writes are JSON-only in every letter case: a page form token opens nothing', async () => {
  const d = await startTestDaemon();
  try {
    fs.mkdirSync(path.join(d.projectsRoot, 'open'));
    const registered = await d.api('POST', '/api/projects', {
      path: path.join(d.projectsRoot, 'open'),
      type: 'personal',
      abbreviation: 'op',
    });
    expect(registered.status).toBe(201);
    const csrf = csrfOf((await raw(d, 'GET', '/inbox', { accept: 'text/html' })).text);
    for (const p of ['/API/tickets', '/Api/Tickets', '/api/TICKETS/', '/api/tickets']) {
      const r = await raw(d, 'POST', p, FORM, form({ _csrf: csrf, project: 'op', title: 'pwned' }));
      expect([p, r.status]).toEqual([p, 415]);
      expect(JSON.parse(r.text).error).toMatch(/application\/json/);
    }
    const crossHeaders = { 'content-type': 'application/json', origin: 'http://evil.example' };
    const cross = await raw(d, 'POST', '/API/tickets', crossHeaders, JSON.stringify({ project: 'op', title: 'pwned' }));
    expect(cross.status).toBe(403);
    expect(JSON.parse(cross.text).error).toMatch(/Cross-origin/);
    expect((await d.api('GET', '/api/tickets?project=op')).body.tickets).toEqual([]);
    // and /login has nothing to guard
    expect((await raw(d, 'GET', '/login', { accept: 'text/html' })).headers.location).toBe('/inbox');
  } finally {
    await d.stop();
  }
}, 60_000);

describe('in a browser, with api_token set', () => {
  const browser = browserPages();
  let d: RunningDaemon;
  let page: Page;
  beforeAll(async () => {
    d = await startTestDaemon({ config: { api_token: TOKEN, ...WAITING_AGENTS }, env: { DISPATCH_CLAUDE_BIN: fakeClaude } });
    fs.mkdirSync(path.join(d.projectsRoot, 'web'));
    const registered = await api(d, 'POST', '/api/projects', {
      path: path.join(d.projectsRoot, 'web'),
      type: 'personal',
      abbreviation: 'web',
    });
    expect(registered.status).toBe(201);
    expect((await api(d, 'POST', '/api/tickets', { project: 'web', title: 'Drag me' })).status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    const active = await api(d, 'GET', '/api/runs/active');
    for (const r of active.body?.runs ?? []) await api(d, 'POST', `/api/runs/${r.id}/kill`);
    await d.stop();
  });
  beforeEach(() => {
    page = browser.page;
  });

  test('log in, then live refresh, drag and drop, the live transcript and the prompt preview work; log out', async () => {
    await page.goto(`${d.url}/projects/web`);
    await page.waitForURL(/\/login\?next=%2Fprojects%2Fweb$/);
    await page.getByLabel('API token').fill('not it');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('.form-error', { hasText: 'That is not the api_token of this daemon.' }).waitFor();
    browser.expectConsoleError('status of 401'); // the refused login answers 401 on purpose
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${d.url}/projects/web`);
    const cookies = await page.context().cookies();
    expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([[`dispatch_session_${d.port}`, true, 'Strict']]);

    // live board: a ticket filed elsewhere appears without a reload (server-sent events with the cookie)
    expect((await api(d, 'POST', '/api/tickets', { project: 'web', title: 'Filed through the API' })).status).toBe(201);
    await page.locator('.card', { hasText: 'Filed through the API' }).waitFor({ timeout: 30_000 });

    // drag and drop posts the move with the page's cookie
    await page.locator('.card', { hasText: 'Drag me' }).dragTo(page.locator('section.column[data-column="done"]'));
    await page.locator('section.column[data-column="done"] .card[data-key="web-1"]').waitFor();
    await page.locator('section.column[data-column="done"] .count', { hasText: '1' }).waitFor();
    expect((await api(d, 'GET', '/api/tickets/web-1')).body.ticket.column_id).toBe('done');

    // the live transcript: server-sent events with the cookie
    const file = insertRun(d, { id: 'run-token-live', ticketKey: 'web-2', status: 'running' })!;
    const lines = fs.readFileSync(sampleTranscript, 'utf8').split('\n').filter(Boolean);
    writeTranscript(file, `${lines[0]}\n${lines[1]}\n`);
    await page.goto(`${d.url}/runs/run-token-live`);
    await page.locator('.tx-text', { hasText: "I'll record progress on abc-7." }).waitFor();
    fs.appendFileSync(file, `${lines[2]}\n${lines[3]}\n`);
    await page.locator('.tx-tool', { hasText: "node ticket.cjs comment abc-7 'started'" }).waitFor();
    fs.appendFileSync(file, lines.slice(4).join('\n') + '\n');
    setRunStatus(d, 'run-token-live', 'success');
    await page.locator('.tx-final', { hasText: 'Ticket abc-7 is done.' }).waitFor();

    // the prompt preview posts the form with the cookie
    await page.goto(`${d.url}/agent-types/editor`);
    await page.getByLabel(/^Prompt/).fill('# Previewed with a token');
    await page.locator('#prompt-preview h1', { hasText: 'Previewed with a token' }).waitFor();

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${d.url}/login`);
    expect(await page.context().cookies()).toEqual([]);
    await page.goto(`${d.url}/inbox`);
    await page.waitForURL(/\/login\?next=%2Finbox$/);
  }, 180_000);
});
