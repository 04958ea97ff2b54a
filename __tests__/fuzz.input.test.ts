// Bad input never corrupts data: property-based tests throw arbitrary bodies, strings
// and arguments at the API and at ticket.cjs, then check every answer is a clean 2xx/4xx (never a
// 5xx or a dead server), that whatever was stored reads back byte for byte, and that the
// database passes its integrity check.
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { createApp } from '../web/app.js';
import { ConfigStore } from '../lib/config.js';
import { HealthMonitor } from '../lib/health.js';
import { createLogger } from '../lib/logger.js';
import { createTicket, getThread, requireTicket } from '../lib/tickets.js';
import { makeTestHome, startRun, type TestHome } from './helpers/home.js';
import { ticketBin } from './helpers/daemon.js';

let h: TestHome;
let server: http.Server;
let base: string;

beforeAll(async () => {
  h = makeTestHome();
  h.addProject('alpha', 'software-dev', 'al');
  createTicket(h.store, { project: 'al', title: 'target', createdBy: 'human' });
  const config = new ConfigStore(h.paths.config, {});
  const health = new HealthMonitor({ config, home: h.paths.home, logger: createLogger({ console: false }) }); // not started: no checks run
  server = http.createServer(
    createApp({
      store: h.store,
      config,
      paths: h.paths,
      engine: { wake: () => {}, killRun: async () => false },
      health,
      version: 'test',
      startedAt: Date.now(),
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  h.cleanup();
});

const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom(
    "'); DROP TABLE tickets; --",
    '<script>alert(1)</script>',
    '../../etc/passwd',
    '\u0000\u0001\u001b[2J',
    '\uD800',
    'a'.repeat(600),
    '{{ 7*7 }}',
    '%00',
    '\r\nSet-Cookie: x=1',
  ),
);
const jsonValue = fc.oneof(
  nasty,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(nasty, { maxLength: 3 }),
  fc.dictionary(nasty, nasty, { maxKeys: 3 }),
);

async function send(method: string, path: string, body: string, contentType = 'application/json') {
  const res = await fetch(base + path, { method, headers: { 'content-type': contentType }, body });
  const text = await res.text();
  return { status: res.status, text };
}

describe('API under arbitrary input', () => {
  test('ticket bodies: only 201 or 4xx, and a stored ticket reads back exactly', async () => {
    let created = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({ title: jsonValue, body: jsonValue, priority: jsonValue, tags: jsonValue, column: jsonValue }, { requiredKeys: [] }),
        async (fields) => {
          const r = await send('POST', '/api/tickets', JSON.stringify({ project: 'al', ...fields }));
          expect(r.status === 201 || (r.status >= 400 && r.status < 500)).toBe(true);
          const json = JSON.parse(r.text);
          if (r.status === 201) {
            created++;
            const stored = requireTicket(h.db, json.ticket.key);
            expect(stored.title).toBe((fields.title as string).trim());
            expect(stored.body).toBe(fields.body ?? '');
          } else {
            expect(typeof json.error).toBe('string');
          }
        },
      ),
      { numRuns: 300, seed: 42 },
    );
    expect(created).toBeGreaterThan(0);
  });

  test('raw bytes, wrong types and path junk never produce a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          '/api/tickets',
          '/api/projects',
          '/api/tickets/al-1/comments',
          '/api/tickets/al-1/move',
          '/api/tickets/al-1/findings',
          '/api/agent-types',
          '/api/project-types',
          '/api/config',
        ),
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          jsonValue.map((v) => JSON.stringify(v)),
        ),
        fc.constantFrom('POST', 'PATCH', 'PUT'),
        async (path, body, method) => {
          const r = await send(method, path, body);
          expect(r.status).toBeLessThan(500);
        },
      ),
      { numRuns: 300, seed: 7 },
    );
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 80 }), async (segment) => {
        const res = await fetch(`${base}/api/tickets/${encodeURIComponent(segment)}`);
        expect([200, 400, 404]).toContain(res.status);
        const agent = await fetch(`${base}/api/agent-types/${encodeURIComponent(segment)}`);
        expect([200, 400, 404]).toContain(agent.status);
      }),
      { numRuns: 200, seed: 11 },
    );
    expect(h.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});

describe('ticket.cjs under arbitrary arguments', () => {
  test('comments of any text are stored verbatim; bad arguments exit 1 with one line and change nothing', () => {
    // the caller is an agent run on its own ticket (ticket.cjs writes for runs only)
    const key = createTicket(h.store, { project: 'al', title: 'fuzzed by its agent', column: 'coding-agent', createdBy: 'human' }).key;
    const env = { PATH: process.env.PATH, DISPATCH_DB_PATH: h.paths.db, DISPATCH_RUN_SECRET: startRun(h, key).secret };
    const ticketId = requireTicket(h.db, key).id;
    // argv cannot carry NUL bytes; everything else goes
    const arg = fc.string({ unit: 'grapheme', maxLength: 200 }).filter((s) => !s.includes('\u0000') && s !== '-'); // "-" means stdin
    fc.assert(
      fc.property(arg, (text) => {
        const before = getThread(h.db, ticketId).length;
        const r = spawnSync(process.execPath, [ticketBin, 'comment', key, 'comment', text], { env, encoding: 'utf8' });
        const thread = getThread(h.db, ticketId);
        if (text.trim() === '') {
          expect(r.status).toBe(1);
          expect(thread.length).toBe(before);
        } else {
          expect(r.status).toBe(0);
          expect(thread.at(-1)!.body).toBe(text);
        }
      }),
      { numRuns: 60, seed: 3 },
    );
    fc.assert(
      fc.property(fc.constantFrom('read', 'move', 'finding', 'comment', 'claim', 'thread'), arg, arg, (cmd, a, b) => {
        const before = h.db.prepare('SELECT COUNT(*) FROM comments').pluck().get();
        const r = spawnSync(process.execPath, [ticketBin, cmd, a, b], { env, encoding: 'utf8' });
        if (r.status !== 0) {
          expect(r.status).toBe(1);
          expect(r.stderr.trim().split('\n')).toHaveLength(1);
          expect(h.db.prepare('SELECT COUNT(*) FROM comments').pluck().get()).toBe(before);
        }
      }),
      { numRuns: 60, seed: 5 },
    );
    expect(h.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});
