// Bad input never corrupts data, through the real daemon, ticket.cjs and the dispatch
// CLI with fast-check: huge strings, control characters, invalid UTF-8 as raw request bytes,
// path traversal in every kind of name, SQL-looking and HTML/script-looking text. Text is stored
// verbatim and comes back verbatim as JSON; anything refused is refused with a clear 4xx or a
// one-line message and exit 1; no file appears outside the data home; the database stays whole.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { dispatchBin, ticketBin } from './helpers/daemon.js';
import { agentAtWork, killAgents, startEngineDaemon, type EngineDaemon } from './helpers/engine.js';

let d: EngineDaemon;
let tried = 0;
const counts: Record<string, number> = {};
const count = (what: string) => {
  tried++;
  counts[what] = (counts[what] ?? 0) + 1;
};

beforeAll(async () => {
  d = await startEngineDaemon();
  await d.project('fuzz', 'research', 'fz');
  await d.ticket('fz', 'human', undefined, 'target');
}, 60_000);
afterAll(async () => {
  expect(d.db().pragma('integrity_check', { simple: true })).toBe('ok');
  await killAgents(d);
  await d.stop();
  console.log(`bad input: ${tried} inputs tried ${JSON.stringify(counts)}`);
});

const SQL = [
  "'); DROP TABLE tickets; --",
  "1' OR '1'='1",
  'x"; DELETE FROM comments WHERE 1=1; --',
  "Robert'); UPDATE runs SET status='success';--",
];
const HTML = [
  '<script>alert(document.cookie)</script>',
  '<img src=x onerror=alert(1)>',
  '"><svg/onload=fetch(`//evil`)>',
  '{{ 7*7 }}{% raw %}',
  '<!--',
  ']]>',
];
const TRAVERSAL = [
  '../../etc/passwd',
  '..\\..\\windows',
  '%2e%2e%2f',
  '..%2F..%2F',
  '/etc/passwd',
  'a/../../b',
  '....//',
  '.',
  '..',
  '~root',
  '\u0000.md',
];
const CONTROL = [
  '\u0000',
  '\u0001\u0002\u0007',
  '\u001b[2J\u001b[31m',
  '\r\nSet-Cookie: x=1',
  '\u2028\u2029',
  '\u202e',
  '\ufeff',
  '\t\v\f',
];
/** Well-formed text of every kind: what a person or an agent could legitimately write. */
const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.string({ unit: fc.constantFrom(...CONTROL, ...SQL, ...HTML, ...TRAVERSAL, 'é', '😀', ' ', 'x'), maxLength: 30 }),
  fc.constantFrom(...SQL, ...HTML, ...TRAVERSAL, ...CONTROL),
  fc.integer({ min: 1_000, max: 190_000 }).map((n) => 'Ω<'.repeat(n / 2)),
);
const name = fc.oneof(
  fc.constantFrom(...TRAVERSAL, ...SQL, ...HTML),
  fc.string({ unit: fc.constantFrom('.', '/', '\\', '%', '2', 'e', 'f', 'a', '-', '\u0000'), minLength: 1, maxLength: 24 }),
);

function raw(
  method: string,
  urlPath: string,
  body?: Buffer | string,
  contentType = 'application/json',
): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: d.port,
        method,
        path: urlPath,
        agent: false,
        headers: body === undefined ? {} : { 'content-type': contentType, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, type: String(res.headers['content-type']), text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Every file under the temp root, so a write outside the data home would show. */
function outsideHome(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (p === d.home) continue;
      if (e.isDirectory()) walk(p);
      else found.push(p);
    }
  };
  walk(d.root);
  return found.sort();
}

test('API: any text is stored verbatim and returned verbatim as JSON, or refused with a 4xx naming the field', async () => {
  await fc.assert(
    fc.asyncProperty(text, text, text, async (title, body, comment) => {
      count('api text');
      const r = await raw('POST', '/api/tickets', JSON.stringify({ project: 'fz', title, body }));
      expect(r.type).toMatch(/^application\/json/);
      const json = JSON.parse(r.text);
      if (r.status !== 201) {
        expect([r.status, typeof json.error, json.field]).toEqual([400, 'string', expect.stringMatching(/^(title|body)$/)]);
        return;
      }
      const shown = JSON.parse((await raw('GET', `/api/tickets/${json.ticket.key}`)).text);
      expect(shown.ticket.title).toBe(title.trim());
      expect(shown.ticket.body).toBe(body);
      const c = await raw('POST', `/api/tickets/${json.ticket.key}/comments`, JSON.stringify({ body: comment }));
      if (c.status === 201 || c.status === 200) {
        const thread = JSON.parse((await raw('GET', `/api/tickets/${json.ticket.key}`)).text).comments;
        expect(thread.at(-1).body).toBe(comment);
      } else {
        expect(c.status).toBe(400);
      }
      // the same bytes as SQLite holds them: nothing escaped, nothing stripped
      expect(d.db().prepare(`SELECT body FROM tickets WHERE id = ?`).pluck().get(json.ticket.id)).toBe(body);
    }),
    { numRuns: 150, seed: 1107 },
  );
}, 240_000);

test('API: raw bytes (invalid UTF-8, truncated JSON, lone surrogates) never produce a 5xx or a half write', async () => {
  const before = d.db().prepare(`SELECT COUNT(*) FROM tickets`).pluck().get() as number;
  let stored = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(
        '/api/tickets',
        '/api/tickets/fz-1/comments',
        '/api/tickets/fz-1/move',
        '/api/tickets/bulk',
        '/api/projects',
        '/api/config',
        '/api/agent-types',
        '/api/agent-types/researcher/prompt',
      ),
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        fc
          .uint8Array({ minLength: 1, maxLength: 40 })
          .map((b) => Buffer.concat([Buffer.from('{"project":"fz","title":"'), Buffer.from(b).map((x) => x | 0x80), Buffer.from('"}')])),
        fc
          .constantFrom(
            '{"project":"fz","title":"\\ud800"}',
            '{"project":"fz","title":"a\\u0000b"}',
            '{"title":',
            '\u0000',
            '[]',
            'null',
            '"x"',
            '{"__proto__":{"admin":true},"project":"fz","title":"p"}',
          )
          .map((s) => Buffer.from(s)),
      ),
      fc.constantFrom('POST', 'PATCH', 'PUT'),
      async (urlPath, body, method) => {
        count('api raw bytes');
        const r = await raw(method, urlPath, body);
        expect(r.status).toBeLessThan(500);
        expect(typeof JSON.parse(r.text).error === 'string' || r.status < 300).toBe(true);
        if (r.status === 201 && urlPath === '/api/tickets') stored++;
      },
    ),
    { numRuns: 250, seed: 2026 },
  );
  expect(d.db().prepare(`SELECT COUNT(*) FROM tickets`).pluck().get()).toBe(before + stored);
  expect((await raw('GET', '/api/health')).status).toBe(200);
}, 240_000);

test('API: traversal and junk in every name (agent type, prompt, run, project, ticket, job) reaches no file', async () => {
  const promptsDir = path.join(d.home, 'prompts');
  const prompts = () => fs.readdirSync(promptsDir).sort();
  const promptsBefore = prompts();
  const filesBefore = outsideHome();
  await fc.assert(
    fc.asyncProperty(name, async (n) => {
      count('api names');
      const e = encodeURIComponent(n);
      for (const [method, url, body] of [
        ['GET', `/api/agent-types/${e}`],
        ['PUT', `/api/agent-types/${e}/prompt`, { prompt: 'x' }],
        ['PATCH', `/api/agent-types/${e}`, { max_retries: 1 }],
        ['POST', '/api/agent-types', { id: n, name: 'n', prompt: 'owned' }],
        ['GET', `/api/runs/${e}/transcript`],
        ['POST', `/api/runs/${e}/kill`],
        ['GET', `/api/projects/${e}`],
        ['PATCH', `/api/projects/${e}`, { status: 'dormant' }],
        ['GET', `/api/tickets/${e}`],
        ['POST', `/api/tickets/${e}/move`, { column: n }],
        ['POST', '/api/tickets', { project: n, title: 't' }],
        ['GET', `/api/queues/jobs/${e}`],
        ['GET', `/api/runs?ticket=${e}`],
      ] as [string, string, unknown?][]) {
        const r = await raw(method, url, body === undefined ? undefined : JSON.stringify(body));
        expect([method, url, r.status]).toEqual([method, url, expect.any(Number)]);
        expect([url, r.status >= 400 && r.status < 500]).toEqual([url, true]);
        expect(r.text).not.toContain('root:x:0:0');
      }
    }),
    { numRuns: 60, seed: 99 },
  );
  expect(prompts()).toEqual(promptsBefore);
  expect(outsideHome()).toEqual(filesBefore);
}, 240_000);

test('API: a JSON body cannot reach Object.prototype through a config patch', async () => {
  for (const body of [
    '{"__proto__":{"polluted":true}}',
    '{"agents":{"__proto__":{"polluted":true}}}',
    '{"constructor":{"prototype":{"polluted":true}}}',
  ]) {
    count('api prototype keys');
    const r = await raw('PATCH', '/api/config', body);
    expect([body, r.status]).toEqual([body, 400]);
  }
  // the daemon is not poisoned: a valid edit still applies, and an empty object has no stray keys
  const ok = await raw('PATCH', '/api/config', JSON.stringify({ agents: { max_concurrent_global: 4 } }));
  expect(ok.status).toBe(200);
  expect(JSON.parse(ok.text).config.agents.max_concurrent_global).toBe(4);
  expect(JSON.parse(ok.text).config.polluted).toBeUndefined();
}, 240_000);

/** ticket.cjs as the agent whose secret `agentSecret` is (ticket.cjs writes for agent runs only). */
let agentSecret = '';
function ticketCjs(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      DISPATCH_DB_PATH: path.join(d.home, 'tasks.db'),
      DISPATCH_RUN_SECRET: agentSecret,
      ...extra,
    };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const child = spawn(process.execPath, [ticketBin, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** argv cannot carry NUL, and one argument is capped at 128 KiB by the kernel. */
const argText = text.filter((s) => !s.includes('\u0000') && Buffer.byteLength(s) < 120_000 && s !== '-');

test('ticket.cjs: text is stored verbatim and the API returns it verbatim; bad refs and names exit 1 with one line', async () => {
  const comments = () => d.db().prepare(`SELECT COUNT(*) FROM comments`).pluck().get() as number;
  // an agent at work on its ticket, whose secret the writes below use
  const agent = await agentAtWork(d, 'fz', 'researcher', 'written by its agent');
  const key = agent.key;
  agentSecret = agent.env.DISPATCH_RUN_SECRET!;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('comment', 'finding'), argText, argText, async (kind, a, b) => {
      count('ticket.cjs text');
      const args = kind === 'comment' ? ['comment', key, 'journal', a] : ['finding', key, 'medium', a, b];
      const before = comments();
      const r = await ticketCjs(args);
      if (r.code !== 0) {
        // refused only for what the input asks for: empty text or a title over its limit
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^ticket: [^\n]+\n$/);
        expect(a.trim() === '' || (kind === 'finding' && a.length > 500)).toBe(true);
        expect(comments()).toBe(before);
        return;
      }
      expect(r.stderr).toBe('');
      const last = JSON.parse((await raw('GET', `/api/tickets/${key}`)).text).comments.at(-1);
      if (kind === 'comment') expect(last.body).toBe(a);
      else expect([last.title, last.body]).toEqual([a, b]);
    }),
    { numRuns: 25, seed: 31 },
  );
  await fc.assert(
    fc.asyncProperty(
      name.filter((s) => !s.includes('\u0000')),
      fc.constantFrom('ref', 'column', 'project', 'severity', 'type'),
      async (n, where) => {
        count('ticket.cjs names');
        const before = comments();
        const r =
          where === 'ref'
            ? await ticketCjs(['comment', n, 'comment', 'x'])
            : where === 'column'
              ? await ticketCjs(['move', key, n])
              : where === 'project'
                ? await ticketCjs(['read', key], { DISPATCH_RUN_SECRET: undefined, DISPATCH_PROJECT_ID: n })
                : where === 'severity'
                  ? await ticketCjs(['finding', key, n, 'title', 'body'])
                  : await ticketCjs(['comment', key, n, 'body']);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^ticket: [^\n]+\n$/);
        expect(comments()).toBe(before);
      },
    ),
    { numRuns: 25, seed: 37 },
  );
}, 240_000);

test('dispatch CLI: text is filed verbatim, junk refs and options exit 1 with a message, never a stack trace', async () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [dispatchBin, ...args], { env: d.env, encoding: 'utf8', timeout: 60_000 });
  await fc.assert(
    fc.property(
      argText.filter((s) => s.trim() !== '' && Buffer.byteLength(s) < 60_000),
      argText.filter((s) => Buffer.byteLength(s) < 60_000),
      (title, body) => {
        count('dispatch text');
        const r = cli(['ticket', 'new', '--project', 'fz', `--title=${title}`, `--body=${body}`, '--json']);
        if (r.status !== 0) {
          expect(r.status).toBe(1);
          expect(r.stderr).toMatch(/^dispatch: /);
          expect(r.stderr).not.toMatch(/\n\s+at /);
          return;
        }
        const t = JSON.parse(r.stdout).ticket ?? JSON.parse(r.stdout);
        const stored = d.db().prepare(`SELECT title, body FROM tickets WHERE id = ?`).get(t.id) as { title: string; body: string };
        expect(stored).toEqual({ title: title.trim(), body });
      },
    ),
    { numRuns: 6, seed: 41 },
  );
  await fc.assert(
    fc.property(
      name.filter((s) => !s.includes('\u0000') && !s.startsWith('-')),
      fc.constantFrom('show', 'move', 'runs', 'project'),
      (n, what) => {
        count('dispatch names');
        const args =
          what === 'show'
            ? ['ticket', 'show', n]
            : what === 'move'
              ? ['ticket', 'move', 'fz-1', n]
              : what === 'runs'
                ? ['runs', 'show', n]
                : ['ticket', 'list', '--project', n];
        const r = cli(args);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/^dispatch: /);
        expect(r.stderr).not.toMatch(/\n\s+at /);
        expect(r.stderr).not.toContain('root:x:0:0');
      },
    ),
    { numRuns: 6, seed: 43 },
  );
}, 240_000);
