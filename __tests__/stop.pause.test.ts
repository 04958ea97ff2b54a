// Stop means stop, through the real daemon and the fake agent: pausing a project with "stop
// running agents" ends the agent's process and leaves its ticket unclaimed in its column (no
// failure, not counted by the circuit breaker); a plain pause lets the agent finish; archiving asks,
// stops the agents and then refuses every ticket write from the API, the CLI and ticket.cjs; the
// global pause survives a restart, blocks every spawn, and resuming starts the waiting tickets.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { comments, pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { ticketBin } from './helpers/daemon.js';
import { getPage, postForm, token } from './helpers/web.js';

/** The daemon's own failure comments (lib/runs.ts describeFailure) and its moves to human. */
function failureNotes(d: EngineDaemon, key: string): unknown[] {
  return comments(d, key).filter(
    (c) =>
      (c.type === 'system' && /failed|crashed|timed out|Gave up|Circuit breaker|stopped by the user/.test(c.body)) ||
      c.to_column === 'human',
  );
}

/** Resolves once a scan of the project enqueued after its latest wake has finished (job_events keeps every attempt). */
function scannedAfterLatestWake(d: EngineDaemon, abbr: string): Promise<unknown> {
  const h = d
    .db()
    .prepare(`SELECT h.project_id, h.wake_seq FROM heartbeats h JOIN projects p ON p.id = h.project_id WHERE p.abbreviation = ?`)
    .get(abbr) as { project_id: number; wake_seq: number };
  return waitFor(`a scan of ${abbr}`, () =>
    d
      .db()
      .prepare(
        `SELECT 1 FROM job_events WHERE queue = 'scan' AND outcome = 'completed' AND json_extract(payload, '$.projectId') = ? AND json_extract(payload, '$.wakeSeq') >= ?`,
      )
      .get(h.project_id, h.wake_seq),
  );
}

/** The ticket reached done and its last run has been finalized. */
const settledInDone = (d: EngineDaemon, key: string) =>
  waitFor(
    `${key} done`,
    () => d.ticketRow(key).column_id === 'done' && d.runs(key).every((r) => r.status !== 'queued' && r.status !== 'running'),
  );

function ticketCli(d: EngineDaemon, project: string, args: string[]) {
  const r = spawnSync(process.execPath, [ticketBin, ...args], {
    env: { PATH: process.env.PATH, DISPATCH_DB_PATH: path.join(d.home, 'tasks.db'), DISPATCH_PROJECT_ID: project },
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('pausing a project', () => {
  let d: EngineDaemon;
  beforeAll(async () => {
    // a breaker of 2 runs: were the stopped run counted, the second run (which does not move the ticket) would trip it
    d = await startEngineDaemon({ config: { agents: { circuit_breaker_max_runs: 2 } } });
  });
  afterAll(async () => {
    await d?.stop();
  });

  test('pause and stop ends the agent process; the ticket stays unclaimed in its column, and resume runs it again', async () => {
    await d.project('web', 'research', 'web');
    const script = {
      researcher: [[{ do: 'hang' }], [{ do: 'comment', type: 'journal', body: 'looked, not done yet' }], [{ do: 'move', to: 'done' }]],
    };
    const t = await d.ticket('web', 'researcher', script, 'Compare CDNs');
    const run = await waitFor('the agent running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid));
    expect(pidAlive(run.pid)).toBe(true);

    const res = await d.api('POST', '/api/projects/web/pause', { stop_running: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ project: { abbreviation: 'web', status: 'dormant' }, stopped: 1 });
    // the answer comes once the run is finalized: its process is gone and it was recorded once, as killed
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.runs(t.key)).toEqual([expect.objectContaining({ id: run.id, status: 'killed', error: 'the project web was paused' })]);
    expect(d.ticketRow(t.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    expect(failureNotes(d, t.key)).toEqual([]);
    expect(
      comments(d, t.key)
        .filter((c) => c.type === 'system')
        .map((c) => c.body),
    ).toEqual([`The researcher run ${run.id} was stopped: the project web was paused. The ticket stays in researcher, unclaimed.`]);
    // paused: a wake schedules nothing
    expect((await d.api('POST', '/api/projects/web/wake')).status).toBe(202);
    expect(d.runs(t.key)).toHaveLength(1);

    expect((await d.api('POST', '/api/projects/web/resume')).body.project.status).toBe('active');
    await settledInDone(d, t.key);
    expect(d.runs(t.key).map((r) => r.status)).toEqual(['killed', 'success', 'success']);
    expect(failureNotes(d, t.key)).toEqual([]);
  });

  test('a plain pause lets the running agent finish; the next agent starts only on resume', async () => {
    await d.project('docs', 'software-dev', 'docs');
    const go = path.join(d.root, 'docs-go');
    const t = await d.ticket('docs', 'coding-agent', {
      'coding-agent': [
        { do: 'wait', file: go },
        { do: 'move', to: 'code-reviewer' },
      ],
      'code-reviewer': [{ do: 'move', to: 'done' }],
    });
    const run = await waitFor('the agent running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid));
    const paused = d.cli(['projects', 'pause', 'docs']);
    expect(paused).toMatchObject({ status: 0, stderr: '' });
    expect(paused.stdout).toMatch(/^paused docs; running agents finish their work/);
    expect(d.runs(t.key)[0].status).toBe('running');
    expect(pidAlive(run.pid)).toBe(true);

    fs.writeFileSync(go, '');
    await waitFor('the run finished', () => d.runs(t.key)[0].status === 'success');
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.ticketRow(t.key)).toMatchObject({ column_id: 'code-reviewer', claimed_by_run: null });
    const since = Date.now();
    await d.api('POST', '/api/projects/docs/wake');
    expect(d.runs(t.key)).toHaveLength(1);

    expect(d.cli(['projects', 'resume', 'docs'])).toMatchObject({ status: 0, stdout: 'resumed docs\n' });
    await settledInDone(d, t.key);
    expect(d.runs(t.key).map((r) => [r.agent_type_id, r.status])).toEqual([
      ['coding-agent', 'success'],
      ['code-reviewer', 'success'],
    ]);
    expect(d.runs(t.key)[1].created_at).toBeGreaterThanOrEqual(since);
  });

  test('the CLI pauses and stops: the agent is gone, the ticket waits in its column', async () => {
    await d.project('api', 'research', 'api');
    const t = await d.ticket('api', 'researcher', { researcher: [{ do: 'hang' }] });
    const run = await waitFor('the agent running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid));
    const out = d.cli(['projects', 'pause', 'api', '--stop-running']);
    expect(out).toMatchObject({ status: 0, stdout: 'paused api; stopped 1 running agent\n' });
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.ticketRow(t.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    expect(failureNotes(d, t.key)).toEqual([]);
    expect(d.cli(['projects', 'pause', 'nosuch']).stderr).toBe('dispatch: project not found: nosuch\n');
  });
});

describe('archiving a project', () => {
  let d: EngineDaemon;
  beforeAll(async () => {
    d = await startEngineDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });

  test('the page asks first, then archiving stops the agents; every ticket write is refused afterwards', async () => {
    await d.project('shop', 'research', 'shop');
    const t = await d.ticket('shop', 'researcher', { researcher: [{ do: 'hang' }] }, 'Price check');
    const parked = await d.ticket('shop', 'human', undefined, 'Waiting for me');
    const run = await waitFor('the agent running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid));
    const csrf = await token(d);

    const ask = await postForm(d, '/projects/shop/archive', { _csrf: csrf });
    expect(ask.status).toBe(200);
    expect(ask.html).toContain('Archive shop? 1 agent is running on it and will be stopped.');
    expect(ask.html).toContain('<input type="hidden" name="confirm" value="1">');
    expect((await d.api('GET', '/api/projects/shop')).body).toMatchObject({ project: { status: 'active' }, running: 1 });
    expect(pidAlive(run.pid)).toBe(true);
    // the confirmed form still needs the form token
    expect((await postForm(d, '/projects/shop/archive', { confirm: '1' })).status).toBe(403);
    expect(pidAlive(run.pid)).toBe(true);

    const done = await postForm(d, '/projects/shop/archive', { _csrf: csrf, confirm: '1' });
    expect(done).toMatchObject({ status: 303, location: '/projects?done=archived' });
    expect((await d.api('GET', '/api/projects/shop')).body).toMatchObject({ project: { status: 'archived' }, running: 0 });
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.runs(t.key).map((r) => [r.status, r.error])).toEqual([['killed', 'the project shop was archived']]);
    expect(d.ticketRow(t.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    expect(failureNotes(d, t.key)).toEqual([]);

    const history = () => d.db().prepare(`SELECT COUNT(*) FROM comments`).pluck().get();
    const before = { history: history(), tickets: d.db().prepare(`SELECT COUNT(*) FROM tickets`).pluck().get() };
    const refused = [
      await d.api('POST', '/api/tickets', { project: 'shop', title: 'one more' }),
      await d.api('POST', `/api/tickets/${parked.key}/move`, { column: 'researcher' }),
      await d.api('POST', `/api/tickets/${parked.key}/comments`, { body: 'hello' }),
      await d.api('POST', `/api/tickets/${parked.key}/findings`, { severity: 'low', title: 'x' }),
      await d.api('PATCH', `/api/tickets/${parked.key}`, { title: 'renamed' }),
    ];
    for (const r of refused)
      expect(r).toEqual({
        status: 409,
        body: { error: 'project shop is archived: its tickets cannot be changed; restore the project first', field: 'project' },
      });
    for (const args of [
      ['ticket', 'new', '--project', 'shop', '--title', 'cli ticket'],
      ['ticket', 'comment', parked.key, 'from the cli'],
      ['ticket', 'move', parked.key, 'researcher'],
    ]) {
      const r = d.cli(args);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe('dispatch: project shop is archived: its tickets cannot be changed; restore the project first\n');
    }
    // ticket.cjs: the stopped agent's run has ended, so nothing it could prove allows a write; without a
    // run secret ticket.cjs only reads (each refusal is one line, and the row counts below stay put)
    for (const args of [
      ['comment', t.key, 'journal', 'still here'],
      ['move', t.key, 'done'],
      ['finding', t.key, 'high', 'late'],
    ]) {
      const r = ticketCli(d, 'shop', args);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^ticket: [^\n]+\n$/);
    }
    expect(ticketCli(d, 'shop', ['read', t.key]).status).toBe(0);
    // the synchronous child processes above blocked this process past the server's keep-alive
    // timeout: one turn of the event loop lets fetch see its pooled connection closed before reusing it
    await new Promise((r) => setTimeout(r, 20));
    // the pages refuse the same writes with the message next to the form
    const pageMove = await postForm(d, `/tickets/${parked.key}/move`, { _csrf: csrf, column: 'researcher' });
    expect(pageMove.status).toBe(409);
    expect(pageMove.html).toContain('project shop is archived');
    expect({ history: history(), tickets: d.db().prepare(`SELECT COUNT(*) FROM tickets`).pluck().get() }).toEqual(before);
    expect(d.ticketRow(parked.key)).toMatchObject({ column_id: 'human', title: 'Waiting for me' });

    // the archived board and ticket pages offer no write controls and no running marker
    const board = (await getPage(d, '/projects/shop')).html;
    expect(board).toContain('This project is archived: its board is read-only');
    for (const gone of ['New ticket', 'draggable', 'Move shop-', 'running-flag', '/move"', 'data-board='])
      expect(board).not.toContain(gone);
    expect(board).toContain('Price check');
    const ticketPage = (await getPage(d, `/tickets/${t.key}`)).html;
    expect(ticketPage).toContain('this ticket is read-only');
    for (const gone of ['/reply"', '/move"', '/edit"']) expect(ticketPage).not.toContain(gone);

    // restoring makes it writable again
    expect((await d.api('POST', '/api/projects/shop/resume')).body.project.status).toBe('active');
    expect((await d.api('POST', `/api/tickets/${parked.key}/comments`, { body: 'back' })).status).toBe(201);
    await d.api('POST', '/api/projects/shop/pause', { stop_running: true });
  });

  test('the CLI asks before archiving; without a terminal it needs --yes', async () => {
    await d.project('blog', 'research', 'blog');
    const t = await d.ticket('blog', 'researcher', { researcher: [{ do: 'hang' }] });
    const run = await waitFor('the agent running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid));
    const refused = d.cli(['projects', 'archive', 'blog']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      'dispatch: Archive blog? 1 agent is running on it and will be stopped. Not archived without confirmation: run "dispatch projects archive blog --yes"\n',
    );
    expect(pidAlive(run.pid)).toBe(true);
    expect(d.cli(['projects', 'archive', 'blog', '--yes'])).toMatchObject({
      status: 0,
      stdout: 'archived blog; stopped 1 running agent\n',
    });
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.ticketRow(t.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    expect((await d.api('PATCH', '/api/projects/blog', { status: 'active' })).body.project.status).toBe('active');
    await d.api('POST', '/api/projects/blog/archive');
  });
});

describe('the global pause', () => {
  test('survives a restart and blocks every spawn; resume starts the waiting tickets at once', async () => {
    let d = await startEngineDaemon();
    try {
      await d.project('ops', 'research', 'ops');
      expect((await d.api('GET', '/api/health')).body.agents_paused).toBeNull();
      // another origin can neither pause through the API nor through the header's form
      const evil = { origin: 'http://evil.example' };
      expect(
        (
          await fetch(`${d.url}/api/pause`, {
            method: 'POST',
            headers: { ...evil, 'content-type': 'application/json' },
            body: '{"stop_running":true}',
          })
        ).status,
      ).toBe(403);
      expect((await postForm(d, '/pause', { _csrf: await token(d), stop_running: '1' }, evil)).status).toBe(403);
      expect((await d.api('GET', '/api/health')).body.agents_paused).toBeNull();
      const paused = d.cli(['pause']);
      expect(paused.status).toBe(0);
      expect(paused.stdout).toMatch(/^all agents paused since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d; "dispatch resume" starts them again\n$/);
      const since = (await d.api('GET', '/api/health')).body.agents_paused.since;
      expect(typeof since).toBe('number');

      const t = await d.ticket('ops', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
      await scannedAfterLatestWake(d, 'ops');
      expect(d.runs(t.key)).toEqual([]);
      const page = (await getPage(d, '/projects')).html;
      expect(page).toContain('All agents paused');
      expect(page).toContain('action="/resume"');

      await d.stop();
      d = await startEngineDaemon({ root: d.root });
      expect((await d.api('GET', '/api/health')).body.agents_paused).toEqual({ since });
      expect((await getPage(d, '/inbox')).html).toContain('All agents paused');
      // a scan after the restart still starts nothing
      await d.api('POST', '/api/projects/ops/wake');
      await scannedAfterLatestWake(d, 'ops');
      expect(d.runs(t.key)).toEqual([]);
      // and the heartbeat backs off instead of spinning: the scan found nothing it may start
      expect(
        d
          .db()
          .prepare(`SELECT empty_streak FROM heartbeats h JOIN projects p ON p.id = h.project_id WHERE p.abbreviation = 'ops'`)
          .pluck()
          .get(),
      ).toBeGreaterThan(0);

      expect(d.cli(['resume'])).toMatchObject({ status: 0, stdout: 'agents resumed\n' });
      expect((await d.api('GET', '/api/health')).body.agents_paused).toBeNull();
      await settledInDone(d, t.key);
      expect(d.runs(t.key).map((r) => r.status)).toEqual(['success']);
    } finally {
      await d.stop();
    }
  });

  test('pause --stop-running stops every running agent; their tickets wait in their columns until resume', async () => {
    const d = await startEngineDaemon();
    try {
      await d.project('one', 'research', 'one');
      await d.project('two', 'content', 'two');
      const a = await d.ticket('one', 'researcher', { researcher: [[{ do: 'hang' }], [{ do: 'move', to: 'done' }]] });
      const b = await d.ticket('two', 'writer', { writer: [[{ do: 'hang' }], [{ do: 'move', to: 'done' }]] });
      const runs = await waitFor('both agents running', () => {
        const live = [d.runs(a.key)[0], d.runs(b.key)[0]];
        return live.every((r) => r?.status === 'running' && r.pid) ? live : null;
      });
      const res = await d.api('POST', '/api/pause', { stop_running: true });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ stopped: 2, running: 0, paused: { since: expect.any(Number) } });
      for (const r of runs) expect(pidAlive(r.pid)).toBe(false);
      for (const t of [a, b]) {
        expect(d.runs(t.key).map((r) => [r.status, r.error])).toEqual([['killed', 'all agents were paused']]);
        expect(failureNotes(d, t.key)).toEqual([]);
      }
      expect(d.ticketRow(a.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
      expect(d.ticketRow(b.key)).toMatchObject({ column_id: 'writer', claimed_by_run: null });
      expect((await d.api('POST', '/api/pause', { stop_running: 'yes' })).status).toBe(400);

      expect((await d.api('POST', '/api/resume')).status).toBe(200);
      await settledInDone(d, a.key);
      await settledInDone(d, b.key);
    } finally {
      await d.stop();
    }
  });
});
