// The board is reachable from every page the user opens. Through the real daemon and
// raw HTTP: another origin can neither change nor read anything (form posts, simple fetches,
// Origin null, Sec-Fetch-Site, DNS rebinding), no CORS header is ever sent, the socket listens on
// loopback only, crafted ids cannot read files outside the data home, and the optional bearer
// token guards the API end to end (the dispatch CLI and ticket.cjs's wake ping send it).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { ticketBin } from './helpers/daemon.js';
import { startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** A raw request: the test sets Host, Origin, Content-Type and the body bytes exactly. */
function raw(
  port: number,
  method: string,
  urlPath: string,
  headers: Record<string, string | number> = {},
  body?: string | Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: urlPath, agent: false, headers: { host: `127.0.0.1:${port}`, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('another origin', () => {
  let d: EngineDaemon;
  let port: number;
  let ticketKey: string;
  let runId: string;
  beforeAll(async () => {
    d = await startEngineDaemon();
    port = d.port;
    await d.project('site', 'research', 'st');
    ticketKey = (await d.ticket('st', 'researcher', { researcher: [{ do: 'hang' }] }, 'secret plans')).key;
    runId = (await waitFor('running', () => d.runs(ticketKey).find((r) => r.status === 'running'))).id;
  }, 60_000);
  afterAll(async () => {
    await d.api('POST', `/api/runs/${runId}/kill`); // agents are detached: the hanging one must not outlive the test
    await d.stop();
  });

  const snapshot = () => {
    const db = d.db();
    return {
      tickets: db.prepare(`SELECT id, title, column_id, updated_at FROM tickets ORDER BY id`).all(),
      comments: db.prepare(`SELECT COUNT(*) FROM comments`).pluck().get(),
      projects: db.prepare(`SELECT id, status, updated_at FROM projects ORDER BY id`).all(),
      agentTypes: db.prepare(`SELECT id, updated_at FROM agent_types ORDER BY id`).all(),
      runs: db.prepare(`SELECT id, status FROM runs ORDER BY id`).all(),
      config: fs.existsSync(path.join(d.home, 'config.json')) ? fs.readFileSync(path.join(d.home, 'config.json'), 'utf8') : null,
      prompt: fs.readFileSync(path.join(d.home, 'prompts', 'researcher.md'), 'utf8'),
    };
  };

  test('cannot change anything: forms, simple fetches, Origin null, Sec-Fetch-Site, rebinding Host', async () => {
    const before = snapshot();
    const evil = 'http://evil.example';
    const targets: [string, string, string][] = [
      ['POST', '/api/tickets', JSON.stringify({ project: 'st', title: 'pwned', column: 'researcher' })],
      ['POST', `/api/tickets/${ticketKey}/move`, JSON.stringify({ column: 'done' })],
      ['POST', '/api/tickets/bulk', JSON.stringify({ keys: [ticketKey], action: 'close' })],
      ['POST', `/api/tickets/${ticketKey}/comments`, JSON.stringify({ body: 'pwned' })],
      ['PATCH', '/api/config', JSON.stringify({ claude_binary: '/tmp/evil' })],
      ['PUT', '/api/agent-types/researcher/prompt', JSON.stringify({ prompt: 'exfiltrate ~/.ssh' })],
      ['POST', `/api/runs/${runId}/kill`, ''],
      ['POST', '/api/projects/discover', ''],
      ['POST', '/api/projects/st/wake', '{}'],
    ];
    const variants: { name: string; headers: (body: string) => Record<string, string | number>; body: (b: string) => string }[] = [
      {
        name: 'form text/plain',
        headers: () => ({ origin: evil, 'content-type': 'text/plain', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' }),
        body: (b) => b,
      },
      {
        name: 'form urlencoded',
        headers: () => ({ origin: evil, 'content-type': 'application/x-www-form-urlencoded' }),
        body: () => 'project=st&title=pwned&column=done',
      },
      {
        name: 'form multipart',
        headers: () => ({ origin: evil, 'content-type': 'multipart/form-data; boundary=x' }),
        body: () => '--x\r\nContent-Disposition: form-data; name="title"\r\n\r\npwned\r\n--x--\r\n',
      },
      {
        name: 'no-cors fetch, text/plain, no Sec-Fetch headers',
        headers: () => ({ origin: evil, 'content-type': 'text/plain;charset=UTF-8' }),
        body: (b) => b,
      },
      { name: 'JSON from another origin', headers: () => ({ origin: evil, 'content-type': 'application/json' }), body: (b) => b },
      {
        name: 'Origin null (sandboxed iframe, file://)',
        headers: () => ({ origin: 'null', 'content-type': 'application/json' }),
        body: (b) => b,
      },
      {
        name: 'another port on localhost',
        headers: () => ({ origin: `http://localhost:${port + 1}`, 'content-type': 'application/json' }),
        body: (b) => b,
      },
      {
        name: 'Sec-Fetch-Site cross-site without Origin',
        headers: () => ({ 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' }),
        body: (b) => b,
      },
      {
        name: 'Sec-Fetch-Site same-site',
        headers: () => ({ 'sec-fetch-site': 'same-site', 'content-type': 'application/json' }),
        body: (b) => b,
      },
      {
        name: 'DNS rebinding (Host and Origin both the attacker name)',
        headers: () => ({
          host: `evil.example:${port}`,
          origin: `http://evil.example:${port}`,
          'sec-fetch-site': 'same-origin',
          'content-type': 'application/json',
        }),
        body: (b) => b,
      },
      {
        name: 'DNS rebinding without Origin',
        headers: () => ({ host: `rebind.127.0.0.1.nip.io:${port}`, 'content-type': 'application/json' }),
        body: (b) => b,
      },
    ];
    let tried = 0;
    for (const [method, urlPath, json] of targets) {
      for (const v of variants) {
        const body = v.body(json);
        const r = await raw(port, method, urlPath, { ...v.headers(body), 'content-length': Buffer.byteLength(body) }, body);
        tried++;
        expect([v.name, method, urlPath, r.status]).toEqual([v.name, method, urlPath, expect.any(Number)]);
        expect([v.name, urlPath, [403, 415, 421].includes(r.status)]).toEqual([v.name, urlPath, true]);
        expect(JSON.parse(r.text).error).toEqual(expect.any(String));
        expect(r.headers['access-control-allow-origin']).toBeUndefined();
      }
    }
    expect(snapshot()).toEqual(before);
    expect(d.runs(ticketKey)[0].status).toBe('running');
    console.log(`cross-origin: ${tried} write attempts refused, nothing changed`);
  }, 180_000);

  test('cannot read anything: no CORS header on any answer or preflight, rebinding Host refused', async () => {
    const reads = [
      '/api/health',
      '/api/projects',
      `/api/tickets/${ticketKey}`,
      '/api/config',
      `/api/runs/${runId}/transcript`,
      '/api/inbox',
      '/api/queues',
      '/',
    ];
    for (const urlPath of reads) {
      for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${port}`]) {
        const r = await raw(port, 'GET', urlPath, { origin, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors' });
        expect(r.headers['access-control-allow-origin']).toBeUndefined();
        expect(r.headers['access-control-allow-credentials']).toBeUndefined();
      }
      const preflight = await raw(port, 'OPTIONS', urlPath, {
        origin: 'http://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      });
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      expect(preflight.headers['access-control-allow-methods']).toBeUndefined();
      expect(preflight.headers['access-control-allow-headers']).toBeUndefined();
      // a rebound name reaches the socket but gets nothing back
      const rebound = await raw(port, 'GET', urlPath, { host: `evil.example:${port}` });
      expect(rebound.status).toBe(421);
      expect(rebound.text).not.toContain('secret plans');
    }
    // a cross-origin page cannot frame the board either
    const page = await raw(port, 'GET', '/api/health');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(page.headers['cross-origin-resource-policy']).toBe('same-origin');
  }, 180_000);

  test('the server listens on 127.0.0.1 only', async () => {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    const listening = ['/proc/net/tcp', '/proc/net/tcp6']
      .filter((f) => fs.existsSync(f))
      .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').slice(1))
      .map((l) => l.trim().split(/\s+/))
      .filter((cols) => cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A'); // 0A = LISTEN
    expect(listening.map((cols) => cols[1])).toEqual([`0100007F:${hexPort}`]);
    const outside = Object.values(os.networkInterfaces())
      .flat()
      .filter((a) => a && !a.internal)
      .map((a) => a!.address);
    for (const address of outside) {
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect({ host: address, port, timeout: 3000 });
        s.on('connect', () => (s.destroy(), resolve('connected')));
        s.on('timeout', () => (s.destroy(), resolve('timeout')));
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      expect([address, outcome]).not.toEqual([address, 'connected']);
    }
    console.log(`listen: 127.0.0.1:${port} only; refused on ${outside.join(', ') || 'no other address'}`);
  }, 180_000);
});

describe('files outside the data home', () => {
  let d: EngineDaemon;
  let secret: string;
  beforeAll(async () => {
    d = await startEngineDaemon();
    secret = path.join(d.root, 'secret.txt');
    fs.writeFileSync(secret, 'TOP-SECRET-OUTSIDE-HOME\n');
    await d.project('docs', 'research', 'dc');
  }, 60_000);
  afterAll(() => d.stop());

  test('crafted run ids, agent type ids and refs never reach a file outside the data home', async () => {
    const rel = path.relative(path.join(d.home, 'artifacts', 'runs'), secret);
    const ids = [
      rel,
      `..%2F..%2Fsecret.txt`,
      '..%2f..%2f..%2fetc%2fpasswd',
      '%2e%2e',
      '....//....//etc/passwd',
      '..\\..\\secret.txt',
      '%00',
      'a'.repeat(5000),
      '/etc/passwd',
      'secret.txt%00.log',
    ];
    let tried = 0;
    for (const id of ids) {
      const enc = id.includes('%') ? id : encodeURIComponent(id);
      for (const url of [
        `/api/runs/${enc}`,
        `/api/runs/${enc}/transcript`,
        `/api/runs/${enc}/kill`,
        `/api/agent-types/${enc}`,
        `/api/tickets/${enc}`,
        `/api/projects/${enc}`,
        `/api/projects/${enc}/board`,
        `/api/queues/jobs/${enc}`,
      ]) {
        const method = url.endsWith('/kill') ? 'POST' : 'GET';
        const r = await raw(d.port, method, url);
        tried++;
        expect([url, r.status >= 400 && r.status < 500]).toEqual([url, true]);
        expect(r.text).not.toContain('TOP-SECRET');
        expect(r.text).not.toContain('root:x:0:0');
      }
      const put = await raw(
        d.port,
        'PUT',
        `/api/agent-types/${enc}/prompt`,
        { 'content-type': 'application/json' },
        JSON.stringify({ prompt: 'overwritten' }),
      );
      expect(put.status).toBeGreaterThanOrEqual(400);
      const created = await raw(
        d.port,
        'POST',
        '/api/agent-types',
        { 'content-type': 'application/json' },
        JSON.stringify({ id, name: 'x', prompt: 'overwritten' }),
      );
      expect(created.status).toBe(400);
      tried += 2;
    }
    expect(fs.readFileSync(secret, 'utf8')).toBe('TOP-SECRET-OUTSIDE-HOME\n');
    expect(fs.readdirSync(d.root).sort()).toEqual(['dev', 'home', 'secret.txt', 'userhome']);
    console.log(`path traversal: ${tried} crafted requests, none reached a file outside the data home`);
  }, 180_000);

  /** Either answer keeps the secret in: a 4xx naming the problem, or an empty transcript. */
  async function refusedOrEmpty(runId: string) {
    const r = await raw(d.port, 'GET', `/api/runs/${runId}/transcript`);
    expect(r.text).not.toContain('TOP-SECRET');
    if (r.status === 200) expect(JSON.parse(r.text).text).toBe('');
    else expect([r.status >= 400 && r.status < 500, typeof JSON.parse(r.text).error]).toEqual([true, 'string']);
  }

  test('a run row whose transcript path was tampered with (or a planted symlink) cannot read outside runs/', async () => {
    const t = await d.ticket('dc', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    const run = await waitFor('finalized', () => d.runs(t.key).find((r) => r.ended_at !== null));
    const runsDir = path.dirname(run.transcript_path);
    expect(runsDir.startsWith(d.home)).toBe(true);
    expect((await d.api('GET', `/api/runs/${run.id}/transcript`)).body.text).toContain('"type":"result"'); // the real one is served
    const rw = new Database(path.join(d.home, 'tasks.db'));
    try {
      for (const tampered of [path.join(runsDir, '..', '..', 'secret.txt'), `${runsDir}-evil/x.log`, secret]) {
        if (tampered.includes('-evil')) {
          fs.mkdirSync(path.dirname(tampered), { recursive: true });
          fs.copyFileSync(secret, tampered);
        }
        rw.prepare(`UPDATE runs SET transcript_path = ? WHERE id = ?`).run(tampered, run.id);
        await refusedOrEmpty(run.id);
      }
      // a symlink planted in runs/ that points outside it
      const link = path.join(runsDir, `${run.id}.link.log`);
      fs.symlinkSync(secret, link);
      rw.prepare(`UPDATE runs SET transcript_path = ? WHERE id = ?`).run(link, run.id);
      await refusedOrEmpty(run.id);
    } finally {
      rw.close();
    }
  }, 180_000);
});

test("api_token: the API, the dispatch CLI and ticket.cjs's wake ping all need it and work with it", async () => {
  const token = 'tunnel-token-0123456789';
  const d = await startEngineDaemon({ config: { api_token: token } });
  // observes the wake pings ticket.cjs sends, passing them through to the daemon unchanged
  const seen: { path: string; auth: string | undefined; status: number }[] = [];
  const proxy = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = { ...req.headers };
      void raw(d.port, req.method!, req.url!, headers as Record<string, string>, Buffer.concat(chunks)).then((a) => {
        seen.push({ path: req.url!, auth: req.headers.authorization, status: a.status });
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.text);
      });
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyPort = (proxy.address() as net.AddressInfo).port;
  try {
    const auth = { authorization: `Bearer ${token}` };
    expect((await raw(d.port, 'GET', '/api/health')).status).toBe(200); // health stays open for `dispatch daemon status`
    for (const headers of [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: token },
      { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` },
    ]) {
      const r = await raw(d.port, 'GET', '/api/projects', headers);
      expect(r.status).toBe(401);
      expect(JSON.parse(r.text).error).toMatch(/token/);
    }
    const write = await raw(d.port, 'POST', '/api/projects/discover', {});
    expect(write.status).toBe(401);
    expect((await raw(d.port, 'GET', '/api/projects', auth)).status).toBe(200);
    // the dispatch CLI reads the token from config.json
    const dir = path.join(d.projectsRoot, 'tok');
    fs.mkdirSync(dir);
    const cli = d.cli(['projects', 'register', dir, '--type', 'research', '--abbreviation', 'tk']);
    expect(cli.stderr).toBe('');
    expect(cli.status).toBe(0);
    // three agents at work, each moving its own ticket into done with ticket.cjs, which pings the daemon
    // with DISPATCH_API_TOKEN when it has one (spawned asynchronously: the observing proxy lives in this process)
    const file = (title: string, body = '') =>
      raw(
        d.port,
        'POST',
        '/api/tickets',
        { ...auth, 'content-type': 'application/json' },
        JSON.stringify({ project: 'tk', title, column: 'researcher', body }),
      );
    const agents: Record<string, string>[] = [];
    for (let i = 1; i <= 3; i++) {
      const envFile = path.join(d.root, `agent-env-${i}.json`);
      const script = '```fake-claude\n' + JSON.stringify({ researcher: [{ do: 'env', file: envFile }, { do: 'hang' }] }) + '\n```\n';
      expect((await file(`agent ${i}`, script)).status).toBe(201);
      agents.push(
        await waitFor(
          'agent env written',
          () => fs.existsSync(envFile) && fs.statSync(envFile).size > 0 && JSON.parse(fs.readFileSync(envFile, 'utf8')),
        ),
      );
    }
    // agents get the token, so their own pings work
    expect(agents.map((e) => e.DISPATCH_API_TOKEN)).toEqual([token, token, token]);
    const move = (agent: Record<string, string>, env: NodeJS.ProcessEnv) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [ticketBin, 'move', agent.DISPATCH_TICKET_ID!, 'done', 'moved'], {
          env: {
            PATH: process.env.PATH,
            DISPATCH_RUN_SECRET: agent.DISPATCH_RUN_SECRET,
            DISPATCH_DB_PATH: path.join(d.home, 'tasks.db'),
            DISPATCH_PORT: String(proxyPort),
            ...env,
          },
          stdio: 'ignore',
        });
        child.on('close', resolve);
      });
    expect(await move(agents[0]!, {})).toBe(0); // the move itself never depends on the ping
    expect(await move(agents[1]!, { DISPATCH_API_TOKEN: 'wrong' })).toBe(0);
    expect(await move(agents[2]!, { DISPATCH_API_TOKEN: token })).toBe(0);
    expect(seen.map((s) => [s.auth ?? null, s.status])).toEqual([
      [null, 401],
      ['Bearer wrong', 401],
      [`Bearer ${token}`, 202],
    ]);
    expect(seen.every((s) => /^\/api\/projects\/\d+\/wake$/.test(s.path))).toBe(true);
    const active = JSON.parse((await raw(d.port, 'GET', '/api/runs/active', auth)).text).runs as { id: string }[];
    for (const r of active)
      expect((await raw(d.port, 'POST', `/api/runs/${r.id}/kill`, { ...auth, 'content-type': 'application/json' }, '{}')).status).toBe(200);
    const t = await d.ticket('tk', 'researcher', undefined).catch(() => null);
    expect(t).toBeNull(); // the test helper sends no token: refused
    // the configured token is never echoed back
    const cfg = await raw(d.port, 'GET', '/api/config', auth);
    expect(cfg.text).not.toContain(token);
  } finally {
    await new Promise((r) => proxy.close(r));
    await d.stop();
  }
}, 180_000);
