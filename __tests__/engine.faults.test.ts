// The engine under faults and load, through the real daemon: caps hold under many tickets, the
// heartbeat backs off and resets, a wake beats the heartbeat, timeouts and human moves stop the
// whole process tree, the agent sees only its allowlisted environment, and a daemon killed with
// SIGKILL while agents run comes back and finalizes every run exactly once.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { repoRoot } from './helpers/daemon.js';
import { comments, maxOverlap, pidAlive, startEngineDaemon, waitFor } from './helpers/engine.js';
import { queueCounts } from './helpers/queue.js';

test('caps hold with 50 tickets across 5 projects, and every ticket gets done', async () => {
  const d = await startEngineDaemon({ config: { agents: { max_concurrent_global: 4, max_concurrent_per_project: 2 } } });
  try {
    const script = {
      researcher: [
        { do: 'sleep', ms: 150 },
        { do: 'move', to: 'done' },
      ],
    };
    const keys: string[] = [];
    for (let p = 0; p < 5; p++) {
      await d.project(`lab${p}`, 'research', `lab${p}`);
      for (let i = 0; i < 10; i++) keys.push((await d.ticket(`lab${p}`, 'researcher', script)).key);
    }
    await waitFor('all done', () => keys.every((k) => d.ticketRow(k).column_id === 'done'), 120_000, 200);
    await waitFor('runs finalized', () => d.runs().every((r) => r.ended_at !== null));
    const runs = d.runs();
    expect(runs).toHaveLength(50);
    expect(runs.every((r) => r.status === 'success')).toBe(true);
    expect(maxOverlap(runs)).toBeLessThanOrEqual(4);
    expect(maxOverlap(runs)).toBeGreaterThanOrEqual(2); // it did run in parallel
    for (const pid of new Set(runs.map((r) => r.project_id)))
      expect(maxOverlap(runs.filter((r) => r.project_id === pid))).toBeLessThanOrEqual(2);
    // raising the cap in settings takes effect without a restart
    expect((await d.api('PATCH', '/api/config', { agents: { max_concurrent_global: 6, max_concurrent_per_project: 6 } })).status).toBe(200);
    const more: string[] = [];
    for (let i = 0; i < 12; i++)
      more.push(
        (
          await d.ticket('lab0', 'researcher', {
            researcher: [
              { do: 'sleep', ms: 400 },
              { do: 'move', to: 'done' },
            ],
          })
        ).key,
      );
    await waitFor('more done', () => more.every((k) => d.ticketRow(k).column_id === 'done'), 60_000, 200);
    await waitFor('runs finalized', () => d.runs().every((r) => r.ended_at !== null));
    const later = d.runs().slice(50);
    expect(maxOverlap(later)).toBeLessThanOrEqual(6);
    expect(maxOverlap(later)).toBeGreaterThan(2);
  } finally {
    await d.stop();
  }
}, 300_000);

test('with parallel coding off a project runs one coding agent at a time', async () => {
  const d = await startEngineDaemon({ config: { agents: { max_concurrent_per_project: 3, parallel_coding: false } } });
  try {
    await d.project('app', 'software-dev', 'app');
    const script = {
      'coding-agent': [
        { do: 'sleep', ms: 200 },
        { do: 'move', to: 'human' },
      ],
    };
    const keys = [];
    for (let i = 0; i < 4; i++) keys.push((await d.ticket('app', 'coding-agent', script)).key);
    await waitFor('all back', () => keys.every((k) => d.ticketRow(k).column_id === 'human'), 60_000);
    await waitFor('finalized', () => d.runs().every((r) => r.ended_at !== null));
    expect(maxOverlap(d.runs())).toBe(1);
  } finally {
    await d.stop();
  }
});

test('an empty heartbeat doubles its interval up to the cap, and work resets it', async () => {
  const d = await startEngineDaemon({
    config: { heartbeat: { base_interval_seconds: 1, max_interval_seconds: 4, backoff_multiplier: 2 } },
  });
  try {
    const project = await d.project('quiet', 'research', 'qt');
    const hb = () => d.db().prepare(`SELECT * FROM heartbeats WHERE project_id = ?`).get(project.id) as any;
    const seen = new Set<number>();
    await waitFor(
      'backoff to the cap',
      () => {
        const h = hb();
        if (h.last_check_at) seen.add(h.interval_seconds);
        return h.interval_seconds === 4 && h.empty_streak >= 2;
      },
      20_000,
    );
    expect([...seen].sort()).toEqual([2, 4]);
    expect(hb().next_check_at - hb().last_check_at).toBe(4000);
    await d.ticket('qt', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    await waitFor('reset', () => hb().interval_seconds === 1 && hb().empty_streak === 0);
  } finally {
    await d.stop();
  }
});

test('a wake starts the agent at once, long before the next heartbeat', async () => {
  const d = await startEngineDaemon({
    config: { heartbeat: { base_interval_seconds: 3600, max_interval_seconds: 86400, backoff_multiplier: 2 } },
  });
  try {
    await d.project('fast', 'research', 'fs');
    // let the first scan run so the next heartbeat is an hour away
    await waitFor('first scan', () => (d.db().prepare(`SELECT last_check_at FROM heartbeats`).get() as any)?.last_check_at);
    const t = await d.ticket('fs', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    await waitFor('done', () => d.ticketRow(t.key).column_id === 'done', 10_000);
    // a person's move through the dispatch CLI (another process) wakes it through the API
    const heartbeat = () =>
      d.db().prepare(`SELECT next_check_at, wake_seq FROM heartbeats`).get() as { next_check_at: number; wake_seq: number };
    // the done move's ping and the run's end each make a scan; once they are through, the next
    // heartbeat is an hour away
    const before = await waitFor('the next heartbeat an hour away', () => {
      const h = heartbeat();
      return h.next_check_at - Date.now() > 30 * 60_000 && h;
    });
    const r = d.cli(['ticket', 'move', t.key, 'researcher']);
    expect(r.status).toBe(0);
    await waitFor('second run', () => d.runs(t.key).length === 2 && d.ticketRow(t.key).column_id === 'done', 10_000);
    // the run came from the move's wake, not from the heartbeat it was due at
    expect(d.runs(t.key)[1].created_at).toBeLessThan(before.next_check_at);
    expect(heartbeat().wake_seq).toBeGreaterThan(before.wake_seq);
  } finally {
    await d.stop();
  }
});

test('a run past its timeout is killed with its whole process tree', async () => {
  const d = await startEngineDaemon();
  try {
    await d.project('slow', 'research', 'sl');
    const pidfile = path.join(d.root, 'orphan.pid');
    const t = await d.ticket('sl', 'researcher', { researcher: [{ do: 'orphan', pidfile }, { do: 'hang' }] });
    const run = await waitFor('running', () => d.runs(t.key).find((r) => r.status === 'running'));
    const orphan = Number(await waitFor('orphan pid', () => fs.existsSync(pidfile) && fs.readFileSync(pidfile, 'utf8')));
    expect(pidAlive(run.pid)).toBe(true);
    expect(pidAlive(orphan)).toBe(true);
    // backdate instead of sleeping: the run started two hours ago (its type's timeout is 30 minutes)
    const rw = new Database(path.join(d.home, 'tasks.db'));
    rw.prepare(`UPDATE runs SET started_at = started_at - 7200000 WHERE id = ?`).run(run.id);
    rw.close();
    await waitFor('timeout', () => d.runs(t.key)[0].status === 'timeout', 15_000);
    expect(pidAlive(run.pid)).toBe(false);
    await waitFor('orphan gone', () => !pidAlive(orphan), 5000);
    expect(d.runs(t.key)[0].error).toBe('ran past its 30-minute timeout');
    expect(comments(d, t.key).some((c) => c.type === 'system' && /timed out and was killed with its process tree/.test(c.body))).toBe(true);
    // its claim is released (a retry may already hold a new one: researcher has max_retries 2)
    expect(d.ticketRow(t.key).claimed_by_run).not.toBe(run.id);
  } finally {
    await d.stop();
  }
});

test('a ticket moved away by a person while its agent runs stops that agent', async () => {
  const d = await startEngineDaemon();
  try {
    await d.project('moves', 'research', 'mv');
    const t = await d.ticket('mv', 'researcher', { researcher: [{ do: 'hang' }] });
    const run = await waitFor('running', () => d.runs(t.key).find((r) => r.status === 'running'));
    expect((await d.api('POST', `/api/tickets/${t.key}/move`, { column: 'human', comment: 'I will do it myself' })).status).toBe(200);
    await waitFor('killed', () => d.runs(t.key)[0].status === 'killed', 10_000);
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.runs(t.key)[0].error).toMatch(/moved to human by human while the agent ran/);
    expect(d.ticketRow(t.key).column_id).toBe('human');
  } finally {
    await d.stop();
  }
});

test('the kill button stops a running agent and parks the ticket in human', async () => {
  const d = await startEngineDaemon();
  try {
    await d.project('kills', 'research', 'kl');
    const t = await d.ticket('kl', 'researcher', { researcher: [{ do: 'hang' }] });
    const run = await waitFor('running', () => d.runs(t.key).find((r) => r.status === 'running'));
    const res = await d.api('POST', `/api/runs/${run.id}/kill`);
    expect(res.status).toBe(200);
    expect(res.body.run.status).toBe('killed');
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.ticketRow(t.key).column_id).toBe('human');
    expect((await d.api('POST', `/api/runs/${run.id}/kill`)).status).toBe(400);
  } finally {
    await d.stop();
  }
});

test('agents get only the allowlisted environment, plus DISPATCH_* and the auth the method needs', async () => {
  const envFile = path.join(fs.mkdtempSync('/tmp/pd-env-'), 'env.json');
  const d = await startEngineDaemon({
    env: { ANTHROPIC_API_KEY: 'sk-daemon-secret', AWS_SECRET_ACCESS_KEY: 'aws-secret', GITHUB_TOKEN: 'gh-secret' },
    config: { agents: { env: { IS_SANDBOX: '1' } } },
  });
  try {
    await d.project('envs', 'research', 'ev');
    const t = await d.ticket('ev', 'researcher', {
      researcher: [
        { do: 'env', file: envFile },
        { do: 'move', to: 'done' },
      ],
    });
    await waitFor('done', () => d.ticketRow(t.key).column_id === 'done');
    const env = JSON.parse(fs.readFileSync(envFile, 'utf8'));
    expect(env.ANTHROPIC_API_KEY).toBeUndefined(); // oauth: the daemon's key must not leak
    expect(env.AWS_SECRET_ACCESS_KEY).toBeUndefined();
    expect(env.GITHUB_TOKEN).toBeUndefined();
    expect(env.HOME).toBe(d.env.HOME);
    expect(env.IS_SANDBOX).toBe('1');
    expect(env).toMatchObject({
      DISPATCH_TICKET_ID: t.key,
      DISPATCH_PROJECT_ID: 'ev',
      DISPATCH_AGENT_TYPE: 'researcher',
      DISPATCH_PORT: String(d.port),
    });
    expect(env.DISPATCH_AUTHOR).toBeUndefined(); // the author comes from the run DISPATCH_RUN_SECRET proves
    expect(env.DISPATCH_RUN_ID).toBe(d.runs(t.key)[0].id);
    expect(env.DISPATCH_RUN_SECRET).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(env.DISPATCH_DB_PATH).toBe(path.join(d.home, 'tasks.db'));
    expect(env.PATH.split(':')[0]).toMatch(/bin\/agent-path$/);
    const allowed = new Set([
      'PATH',
      'HOME',
      'USER',
      'LOGNAME',
      'LANG',
      'LC_ALL',
      'TERM',
      'SHELL',
      'TMPDIR',
      'TZ',
      'CLAUDE_CONFIG_DIR',
      'XDG_CONFIG_HOME',
      'IS_SANDBOX',
      'PWD',
      'SHLVL',
      '_',
      'OLDPWD',
    ]);
    for (const k of Object.keys(env)) if (!k.startsWith('DISPATCH_')) expect(allowed.has(k) ? k : `unexpected ${k}`).toBe(k);
    // the api_key method passes the configured key, and only that one
    expect((await d.api('PATCH', '/api/config', { ai: { auth_method: 'api_key', api_key: 'sk-configured' } })).status).toBe(200);
    await d.api('POST', `/api/tickets/${t.key}/move`, { column: 'researcher' });
    await waitFor('done again', () => d.runs(t.key).length === 2 && d.ticketRow(t.key).column_id === 'done');
    expect(JSON.parse(fs.readFileSync(envFile, 'utf8')).ANTHROPIC_API_KEY).toBe('sk-configured');
  } finally {
    await d.stop();
  }
});

test('a missing agent binary or prompt fails the run with a clear message, is not retried, and pauses new runs', async () => {
  const d = await startEngineDaemon({
    env: { DISPATCH_CLAUDE_BIN: '/nonexistent/claude' },
    config: { agents: { circuit_breaker_max_runs: 5 } },
  });
  try {
    await d.project('broken', 'research', 'br');
    const t = await d.ticket('br', 'researcher', undefined);
    await waitFor('the failed run', () => d.runs(t.key).length === 1 && d.runs(t.key)[0].status === 'failed');
    expect(d.runs(t.key)[0].error).toMatch(/the agent binary "\/nonexistent\/claude" was not found/);
    expect(d.runs(t.key)[0].cause).toBe('config');
    // not the ticket's fault: it waits unclaimed in its column while new runs are paused
    expect(d.ticketRow(t.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    expect((await d.api('GET', '/api/health')).body.agent_cli_paused[0]).toMatchObject({
      cause: 'config',
      fix: 'claude_binary /nonexistent/claude not found',
    });
    expect((await d.api('POST', `/api/tickets/${t.key}/move`, { column: 'human' })).status).toBe(200);
    fs.rmSync(path.join(d.home, 'prompts', 'writer.md'));
    await d.project('words', 'content', 'wd');
    const w = await d.ticket('wd', 'writer', undefined);
    expect(d.runs(w.key)).toEqual([]);
    expect((await d.api('POST', '/api/resume')).status).toBe(200);
    await waitFor('the failed run', () => d.runs(w.key).length === 1 && d.runs(w.key)[0].status === 'failed');
    expect(d.runs(w.key)[0]).toMatchObject({ cause: 'config' });
    expect(d.runs(w.key)[0].error).toMatch(/the prompt file is missing: .*writer\.md/);
    expect(d.ticketRow(w.key)).toMatchObject({ column_id: 'writer', claimed_by_run: null });
    expect((await d.api('GET', '/api/health')).body.agent_cli_paused[0].fix).toMatch(/prompt file .*writer\.md is missing/);
  } finally {
    await d.stop();
  }
});

test('kill -9 of the daemon while three agents run: restart adopts them and finalizes each run exactly once', async () => {
  let d = await startEngineDaemon({ config: { agents: { max_concurrent_global: 5 } } });
  const root = d.root;
  const keys: string[] = [];
  try {
    for (let p = 0; p < 3; p++) {
      await d.project(`crash${p}`, 'research', `cr${p}`);
      keys.push(
        (
          await d.ticket(`cr${p}`, 'researcher', {
            researcher: [
              { do: 'sleep', ms: 5000 },
              { do: 'move', to: 'done' },
            ],
          })
        ).key,
      );
    }
    // a fourth ticket whose agent will die while the daemon is down
    await d.project('crash3', 'research', 'cr3');
    const dead = (
      await d.ticket('cr3', 'researcher', {
        researcher: [
          [
            { do: 'sleep', ms: 1500 },
            { do: 'crash', code: 9 },
          ],
          [{ do: 'move', to: 'done' }],
        ],
      })
    ).key;
    await waitFor('4 running', () => d.runs().filter((r) => r.status === 'running').length === 4);
    const pids = d.runs().map((r) => r.pid);
    await d.stop('SIGKILL');
    expect(pids.filter(pidAlive)).toHaveLength(4); // agents are detached: they outlive the daemon
    await new Promise((r) => setTimeout(r, 2500)); // the fourth agent dies meanwhile
    fs.rmSync(path.join(d.home, 'daemon.pid'), { force: true }); // left by SIGKILL; a stale pid file must not matter either way
    d = await startEngineDaemon({ root, config: { agents: { max_concurrent_global: 5 } } });
    await waitFor('all done', () => [...keys, dead].every((k) => d.ticketRow(k).column_id === 'done'), 30_000);
    await waitFor('finalized', () => d.runs().every((r) => r.ended_at !== null));
    for (const k of keys) {
      const runs = d.runs(k);
      expect(runs.map((r) => r.status)).toEqual(['success']); // adopted, not started twice
    }
    expect(d.runs(dead).map((r) => r.status)).toEqual(['crashed', 'success']);
    expect(d.runs(dead)[0].error).toMatch(/ended while the daemon was down/);
    const finals = d.db().prepare(`SELECT COUNT(*) AS n FROM comments WHERE type = 'claim'`).get() as { n: number };
    expect(finals.n).toBe(5);
    await waitFor('no agent-run job left running', async () => (await queueCounts(d))['agent-run'].running === 0);
  } finally {
    await d.stop();
  }
}, 180_000);

test('better-sqlite3 stays at the version whose transactions the liteque claim relies on (>= 11.10 breaks it)', () => {
  const installed = JSON.parse(fs.readFileSync(path.join(repoRoot, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')).version;
  expect(installed).toBe('11.9.1');
});

test('SIGTERM stops the daemon gracefully, leaves agents running, and the next daemon adopts them', async () => {
  let d = await startEngineDaemon();
  const root = d.root;
  try {
    await d.project('calm', 'research', 'cm');
    const t = await d.ticket('cm', 'researcher', {
      researcher: [
        { do: 'sleep', ms: 3000 },
        { do: 'move', to: 'done' },
      ],
    });
    const run = await waitFor('running', () => d.runs(t.key).find((r) => r.status === 'running'));
    expect(await d.stop('SIGTERM')).toBe(0);
    expect(fs.existsSync(path.join(d.home, 'daemon.pid'))).toBe(false);
    expect(pidAlive(run.pid)).toBe(true);
    d = await startEngineDaemon({ root });
    await waitFor('done', () => d.ticketRow(t.key).column_id === 'done', 20_000);
    await waitFor('finalized', () => d.runs(t.key)[0].ended_at);
    expect(d.runs(t.key).map((r) => [r.id, r.status])).toEqual([[run.id, 'success']]);
  } finally {
    await d.stop();
  }
});
