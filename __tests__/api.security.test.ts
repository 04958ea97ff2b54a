// The JSON API through the real server on 127.0.0.1: validation answers 400 with the field, and
// requests from other hosts or origins are refused before they reach a handler.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../web/app.js';
import { ConfigStore } from '../lib/config.js';
import { HealthMonitor } from '../lib/health.js';
import { createLogger } from '../lib/logger.js';
import { makeTestHome, type TestHome } from './helpers/home.js';

let h: TestHome;
let server: http.Server;
let port: number;

beforeEach(async () => {
  h = makeTestHome();
  h.addProject('alpha', 'software-dev', 'al');
  const config = new ConfigStore(h.paths.config, { DISPATCH_PROJECTS_ROOT: h.projectsRoot });
  const health = new HealthMonitor({ config, home: h.paths.home, logger: createLogger({ console: false }) }); // not started: no checks run
  const app = createApp({
    store: h.store,
    config,
    paths: h.paths,
    engine: { wake: (id) => h.woken.push(id), killRun: async () => false },
    health,
    version: 'test',
    startedAt: Date.now(),
  });
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterEach(async () => {
  await new Promise((r) => server.close(r));
  h.cleanup();
});

/** Raw request, so tests control Host, Origin and Content-Type exactly. */
function request(
  method: string,
  path: string,
  opts: { body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...opts.headers } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode!, json });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  request('POST', path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });

describe('API validation', () => {
  test('files a ticket and wakes the project when it starts in an agent column', async () => {
    const r = await post('/api/tickets', {
      project: 'al',
      title: 'Add payment collection',
      column: 'coding-agent',
      priority: 'high',
      tags: ['billing'],
    });
    expect(r.status).toBe(201);
    expect(r.json.ticket).toMatchObject({ key: 'al-1', column_id: 'coding-agent', priority: 'high', tags: ['billing'] });
    expect(h.woken).toContain(r.json.ticket.project_id);
    const shown = await request('GET', '/api/tickets/al-1');
    expect(shown.json.comments).toHaveLength(1);
  });

  test.each([
    ['/api/tickets', { project: 'al' }, 'title'],
    ['/api/tickets', { project: 'al', title: 42 }, 'title'],
    ['/api/tickets', { project: 'al', title: 'x', priority: 'now' }, 'priority'],
    ['/api/tickets', { project: 'al', title: 'x', tags: 'a,b' }, 'tags'],
    ['/api/tickets', { title: 'x' }, 'project'],
    ['/api/tickets', { project: 'al', title: 'x'.repeat(501) }, 'title'],
    ['/api/projects', { path: '/definitely/not/here', type: 'software-dev' }, 'path'],
    ['/api/projects', { path: '/tmp', type: 'nope' }, 'type'],
  ])('POST %s %j → 400 naming %s', async (path, body, field) => {
    const r = await post(path, body);
    expect(r.status).toBe(400);
    expect(r.json.field).toBe(field);
    expect(typeof r.json.error).toBe('string');
  });

  test('bad JSON, a non-object body, unknown tickets and unknown endpoints', async () => {
    expect(await request('POST', '/api/tickets', { body: '{"title": ', headers: { 'content-type': 'application/json' } })).toEqual({
      status: 400,
      json: { error: 'request body is not valid JSON' },
    });
    expect((await post('/api/tickets', [1, 2])).status).toBe(400);
    expect((await request('GET', '/api/tickets/al-99')).status).toBe(404);
    expect((await request('GET', '/api/nothing')).status).toBe(404);
    expect((await post('/api/tickets/al-99/move', { column: 'done' })).status).toBe(404);
  });

  test('config edits are validated and an invalid edit changes nothing', async () => {
    const bad = await request('PATCH', '/api/config', {
      body: JSON.stringify({ agents: { max_concurrent_global: 0 } }),
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.field).toBe('agents.max_concurrent_global');
    const good = await request('PATCH', '/api/config', {
      body: JSON.stringify({ agents: { max_concurrent_global: 4 } }),
      headers: { 'content-type': 'application/json' },
    });
    expect(good.status).toBe(200);
    expect(good.json.config.agents.max_concurrent_global).toBe(4);
    expect(good.json.config.agents.max_concurrent_per_project).toBe(3);
  });
});

describe('DNS rebinding and CSRF', () => {
  test.each(['evil.example', 'evil.example:80', '127.0.0.1.nip.io', 'localhost.evil.example'])('Host %p is refused', async (host) => {
    const r = await request('GET', '/api/health', { headers: { host } });
    expect(r.status).toBe(421);
  });

  test.each(['localhost', '127.0.0.1', '[::1]'])('Host %p is accepted', async (name) => {
    expect((await request('GET', '/api/health', { headers: { host: `${name}:${port}` } })).status).toBe(200);
  });

  test('a cross-origin write is refused and nothing is written', async () => {
    const attempts = [
      post('/api/tickets', { project: 'al', title: 'pwn', column: 'coding-agent' }, { origin: 'http://evil.example' }),
      post('/api/tickets', { project: 'al', title: 'pwn', column: 'coding-agent' }, { origin: 'null' }),
      post('/api/tickets', { project: 'al', title: 'pwn', column: 'coding-agent' }, { origin: `http://localhost:${port + 1}` }),
      post('/api/tickets', { project: 'al', title: 'pwn', column: 'coding-agent' }, { 'sec-fetch-site': 'cross-site' }),
      post('/api/tickets', { project: 'al', title: 'pwn', column: 'coding-agent' }, { 'sec-fetch-site': 'same-site' }),
      // a "simple" cross-site request a page can send without a preflight
      request('POST', '/api/tickets', { body: JSON.stringify({ project: 'al', title: 'pwn' }), headers: { 'content-type': 'text/plain' } }),
      request('POST', '/api/tickets', { body: 'project=al&title=pwn', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    ];
    const results = await Promise.all(attempts);
    expect(results.map((r) => r.status)).toEqual([403, 403, 403, 403, 403, 415, 415]);
    expect(h.db.prepare('SELECT COUNT(*) FROM tickets').pluck().get()).toBe(0);
  });

  test('a same-origin write is accepted', async () => {
    const r = await post(
      '/api/tickets',
      { project: 'al', title: 'ok' },
      { origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' },
    );
    expect(r.status).toBe(201);
  });

  test('security headers are set on every answer', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/health`);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
  });
});
