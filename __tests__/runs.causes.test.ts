// Why runs fail and what the daemon does about it: a usage limit pauses the claude CLI's
// dispatching until its reset (and survives a restart), an overloaded API is retried with a growing
// backoff, a login or setup problem pauses until the setting changes, and a run that did not move
// its ticket is not respawned at once. Through the real daemon and the fake claude, which prints
// what the real CLI prints (checked key for key against recorded transcripts).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { classifyEnd, resetFromText, retryWaitMs } from '../lib/runCause.js';
import { readTranscriptEnd } from '../lib/transcript.js';
import { comments, fakeClaude, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { repoRoot } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';

const fixture = (name: string) => path.join(repoRoot, '__tests__', 'fixtures', name);
const finished = (runs: any[]) => runs.length > 0 && runs.every((r) => r.status !== 'queued' && r.status !== 'running');

describe('run causes from the CLI output', () => {
  test('the recorded usage-limit transcripts of both CLI versions are usage limits with their reset time', () => {
    const now = Date.UTC(2026, 10, 30, 5, 0);
    expect(classifyEnd(readTranscriptEnd(fixture('claude-usage-limit-2.1.197.jsonl')), now)).toEqual({
      cause: 'usage_limit',
      resetsAt: 1796022937_000,
      limitType: 'five_hour',
    });
    expect(classifyEnd(readTranscriptEnd(fixture('claude-usage-limit-2.1.328.jsonl')), now)).toEqual({
      cause: 'usage_limit',
      resetsAt: 1796024996_000,
      limitType: 'five_hour',
    });
    expect(classifyEnd(readTranscriptEnd(fixture('claude-429-apikey.jsonl')), now)).toEqual({ cause: 'rate_limited' });
  });

  test('a limit message without a rate_limit_event takes its reset time from the text, on the clock it is given', () => {
    const now = Date.UTC(2026, 10, 30, 5, 0);
    expect(resetFromText("You've hit your session limit · resets 7:15am (UTC)", now)).toBe(Date.UTC(2026, 10, 30, 7, 15));
    // already past today: tomorrow
    expect(resetFromText('resets 4:05am (UTC)', now)).toBe(Date.UTC(2026, 11, 1, 4, 5));
    expect(resetFromText('resets 12:30pm (UTC)', now)).toBe(Date.UTC(2026, 10, 30, 12, 30));
    const result = { isError: true, resultText: "You've hit your 5-hour limit · resets 7:49am (UTC)", apiErrorStatus: 429 } as never;
    expect(classifyEnd({ result, rateLimit: null }, now)).toEqual({
      cause: 'usage_limit',
      resetsAt: Date.UTC(2026, 10, 30, 7, 49),
      limitType: 'unknown',
    });
  });

  test('529, 5xx, 401 and an agent error each get their cause', () => {
    const end = (apiErrorStatus: number | null, resultText = 'API Error') => ({
      result: { isError: true, resultText, apiErrorStatus } as never,
      rateLimit: null,
    });
    expect(classifyEnd(end(529), 0).cause).toBe('rate_limited');
    expect(classifyEnd(end(503), 0).cause).toBe('rate_limited');
    expect(classifyEnd(end(401), 0).cause).toBe('auth');
    expect(classifyEnd(end(null, 'Not logged in · Please run /login'), 0).cause).toBe('auth');
    expect(classifyEnd(end(400), 0).cause).toBe('agent');
    expect(classifyEnd({ result: null, rateLimit: null }, 0).cause).toBe('agent');
  });

  test('the backoff grows 4 times per failure, with a jitter of at most a fifth, capped at an hour', () => {
    const b = { retrySeconds: 30, noMoveSeconds: 120 };
    const waits = [1, 2, 3, 9].map((n) => retryWaitMs(b, n, 'run-a'));
    expect(waits[0]).toBeGreaterThanOrEqual(24_000);
    expect(waits[0]).toBeLessThan(36_000);
    expect(waits[1]).toBeCloseTo(waits[0]! * 4, 6);
    expect(waits[2]).toBeCloseTo(waits[0]! * 16, 6);
    expect(waits[3]).toBe(3600_000);
    expect(retryWaitMs(b, 1, 'run-a')).toBe(waits[0]); // the same run waits the same across restarts
  });

  test.each(['2.1.197', '2.1.328'])('the fake prints the usage-limit lines of CLI %s key for key', (version) => {
    const resetsAt = Math.floor(Date.now() / 1000) + 3600;
    const r = spawnSync(process.execPath, [fakeClaude, '-p', '--output-format', 'stream-json', '--verbose'], {
      input: 'Your ticket is x-1',
      encoding: 'utf8',
      env: { PATH: process.env.PATH, FAKE_CLAUDE_API: JSON.stringify({ answer: 'usage_limit', resetsAt, version }) },
    });
    expect(r.status).toBe(1);
    // ids, times and the reset clock vary; everything else (keys, their order, values) must be the recorded CLI's
    const VARYING = new Set(['uuid', 'session_id', 'id', 'request_id', 'timestamp', 'duration_ms', 'resetsAt']);
    const normalize = (line: string) =>
      JSON.stringify(JSON.parse(line), (k, v) =>
        VARYING.has(k) ? '<varies>' : typeof v === 'string' ? v.replace(/resets \d{1,2}:\d\d[ap]m/, 'resets <clock>') : v,
      );
    const got = r.stdout.trim().split('\n');
    const want = fs
      .readFileSync(fixture(`claude-usage-limit-${version}.jsonl`), 'utf8')
      .trim()
      .split('\n');
    expect(got).toHaveLength(want.length);
    expect(got.slice(1).map(normalize)).toEqual(want.slice(1).map(normalize));
    expect(JSON.parse(got[1]!).rate_limit_info.resetsAt).toBe(resetsAt);
  });
});

/** The claude CLI pauses in force, as the daemon reports them. */
async function cliPauses(d: EngineDaemon): Promise<any[]> {
  return (await d.api('GET', '/api/health')).body.agent_cli_paused;
}

describe('a usage limit pauses dispatching until its reset', () => {
  let d: EngineDaemon | null = null;
  afterEach(async () => {
    await d?.stop();
    d = null;
  });

  test('no run starts before the reset, the pause survives a restart, and the waiting tickets then start by priority', async () => {
    const resetsAt = Math.ceil(Date.now() / 1000) + 20; // time for a loaded machine to see the pause before it ends
    const config = {
      agents: {
        max_concurrent_global: 1,
        usage_limit_margin_seconds: 1,
        env: { FAKE_CLAUDE_API: JSON.stringify({ answer: 'usage_limit', resetsAt, limitType: 'five_hour' }) },
      },
    };
    d = await startEngineDaemon({ config });
    await d.project('limits', 'research', 'li');
    const done = { researcher: [{ do: 'move', to: 'done' }] };
    const urgent = await d.ticket('li', 'researcher', done, 'urgent one', 'urgent');
    await waitFor('the limited run', () => d!.runs().length === 1 && finished(d!.runs()));
    const low = await d.ticket('li', 'researcher', done, 'low one', 'low');
    const normal = await d.ticket('li', 'researcher', done, 'normal one', 'normal');
    const [limited] = d.runs();
    expect(limited).toMatchObject({ ticket_id: d.ticketRow(urgent.key).id, status: 'failed', cause: 'usage_limit', exit_code: 1 });
    expect(d.ticketRow(urgent.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    const pauses = await cliPauses(d);
    expect(pauses).toHaveLength(1);
    expect(pauses[0]).toMatchObject({ cli: 'claude', cause: 'usage_limit', until: resetsAt * 1000 + 1000, limitType: 'five_hour' });
    expect(pauses[0].message).toMatch(/^claude paused by a usage limit until \d\d:\d\d \(five_hour\)$/);
    expect(comments(d, urgent.key).some((c) => c.type === 'system' && /counts as no retry/.test(c.body))).toBe(true);

    // the banner on a page and `dispatch daemon status` say so
    const page = await fetch(`${d.url}/inbox`).then((r) => r.text());
    expect(page).toContain('data-cli-pause-banner');
    expect(page).toContain('claude paused by a usage limit until');
    const status = d.cli(['daemon', 'status']);
    expect(status.stdout).toMatch(/claude paused by a usage limit until \d\d:\d\d \(five_hour\)/);

    // a restart during the pause keeps it
    await d.stop();
    d = await startEngineDaemon({ root: d.root, config });
    expect((await cliPauses(d))[0]).toMatchObject({ cause: 'usage_limit', until: resetsAt * 1000 + 1000 });

    await waitFor(
      'all three done',
      () => [urgent, normal, low].every((t) => d!.ticketRow(t.key).column_id === 'done') && finished(d!.runs()),
      60_000,
    );
    const runs = d.runs();
    // one spawn hit the limit; none started until the pause was over; then one each, most urgent first
    expect(runs).toHaveLength(4);
    const after = runs.slice(1);
    for (const r of after) expect(r.created_at).toBeGreaterThanOrEqual(resetsAt * 1000 + 1000);
    expect(after.map((r) => r.ticket_id)).toEqual([urgent, normal, low].map((t) => d!.ticketRow(t.key).id));
    expect(after.every((r) => r.status === 'success' && r.cause === null)).toBe(true);
    expect(await cliPauses(d)).toEqual([]);
    // the limited run was neither a retry nor a breaker strike
    expect(comments(d, urgent.key).some((c) => /Gave up|Circuit breaker/.test(c.body))).toBe(false);
    const listed = JSON.parse(d.cli(['runs', 'list', '--cause', 'usage_limit', '--json']).stdout);
    expect(listed.runs.map((r: any) => [r.id, r.cause])).toEqual([[limited.id, 'usage_limit']]);
  }, 120_000);

  test('CLI 2.1.328: the same pause from its differently ordered result line', async () => {
    d = await startEngineDaemon({ config: { agents: { usage_limit_margin_seconds: 0 } } });
    await d.project('limits2', 'research', 'lt');
    // the limit is set once the daemon is up, so its reset lies seconds after the first run whatever the machine's load
    const resetsAt = Math.ceil(Date.now() / 1000) + 6;
    const env = { FAKE_CLAUDE_API: JSON.stringify({ answer: 'usage_limit', resetsAt, version: '2.1.328' }) };
    expect((await d.api('PATCH', '/api/config', { agents: { env } })).status).toBe(200);
    const t = await d.ticket('lt', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    await waitFor('done after the reset', () => d!.ticketRow(t.key).column_id === 'done' && finished(d!.runs()), 60_000);
    const runs = d.runs(t.key);
    expect(runs.map((r) => [r.status, r.cause])).toEqual([
      ['failed', 'usage_limit'],
      ['success', null],
    ]);
    expect(runs[1].created_at).toBeGreaterThanOrEqual(resetsAt * 1000);
    const page = await fetch(`${d.url}/runs?cause=usage_limit`).then((r) => r.text());
    expect(page).toContain(runs[0].id);
    expect(page).not.toContain(runs[1].id);
    expect(await fetch(`${d.url}/runs/${runs[0].id}`).then((r) => r.text())).toContain('data-cause="usage_limit"');
    expect((await fetch(`${d.url}/runs?cause=bogus`)).status).toBe(400);
  }, 120_000);
});

describe('retries and pauses by cause', () => {
  let d: EngineDaemon | null = null;
  afterEach(async () => {
    await d?.stop();
    d = null;
  });

  test('529: retried after a growing backoff, and the free retries do not count against max_retries', async () => {
    const counter = path.join(tempDir(), 'calls');
    d = await startEngineDaemon({
      config: {
        agents: { retry_backoff_seconds: 1, env: { FAKE_CLAUDE_API: JSON.stringify({ answer: 'overloaded', times: 2, counter }) } },
      },
    });
    await d.project('busy', 'research', 'bu');
    expect((await d.api('PATCH', '/api/agent-types/researcher', { max_retries: 0 })).status).toBe(200);
    const t = await d.ticket('bu', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    await waitFor('done', () => d!.ticketRow(t.key).column_id === 'done' && finished(d!.runs()), 60_000);
    const runs = d.runs(t.key);
    expect(runs.map((r) => [r.status, r.cause])).toEqual([
      ['failed', 'rate_limited'],
      ['failed', 'rate_limited'],
      ['success', null],
    ]);
    // 1 s then 4 s, each with a jitter of at most a fifth
    expect(runs[1].created_at - runs[0].ended_at).toBeGreaterThanOrEqual(800);
    expect(runs[2].created_at - runs[1].ended_at).toBeGreaterThanOrEqual(3200);
    expect(await cliPauses(d)).toEqual([]);
  }, 120_000);

  test('401: no retry, dispatching pauses with the fix named, and a changed setting resumes it', async () => {
    d = await startEngineDaemon({ config: { agents: { env: { FAKE_CLAUDE_API: JSON.stringify({ answer: 'unauthorized' }) } } } });
    await d.project('login', 'research', 'lo');
    const first = await d.ticket('lo', 'researcher', { researcher: [{ do: 'move', to: 'done' }] }, 'first');
    await waitFor('the refused run', () => finished(d!.runs()));
    const second = await d.ticket('lo', 'researcher', { researcher: [{ do: 'move', to: 'done' }] }, 'second');
    expect(d.runs(first.key).map((r) => [r.status, r.cause])).toEqual([['failed', 'auth']]);
    const [pause] = await cliPauses(d);
    expect(pause).toMatchObject({ cause: 'auth', until: null, fix: 'not logged in: run claude once, or set ai.api_key' });
    expect(await fetch(`${d.url}/inbox`).then((r) => r.text())).toContain('not logged in: run claude once, or set ai.api_key');
    expect(d.runs(second.key)).toEqual([]);
    expect(d.ticketRow(first.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });
    // the login is fixed (here: the agent environment no longer makes the API refuse)
    expect((await d.api('PATCH', '/api/config', { agents: { env: {} } })).status).toBe(200);
    await waitFor('both done', () => [first, second].every((t) => d!.ticketRow(t.key).column_id === 'done') && finished(d!.runs()), 60_000);
    expect(await cliPauses(d)).toEqual([]);
  }, 120_000);

  test('a missing agent binary: no retry, a pause naming claude_binary; Retry from the banner, then the setting fixes it', async () => {
    const missing = path.join(tempDir(), 'no-such-claude');
    d = await startEngineDaemon({ config: { claude_binary: missing }, env: { DISPATCH_CLAUDE_BIN: undefined } });
    await d.project('setup', 'research', 'se');
    const t = await d.ticket('se', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    await waitFor('the failed launch', () => finished(d!.runs()));
    expect(d.runs(t.key).map((r) => [r.status, r.cause])).toEqual([['failed', 'config']]);
    expect((await cliPauses(d))[0]).toMatchObject({ cause: 'config', fix: `claude_binary ${missing} not found` });
    expect(d.cli(['daemon', 'status']).stdout).toContain(`claude paused by a setup problem: claude_binary ${missing} not found`);
    // Retry (the banner's button, `dispatch resume`) tries again: still missing, so it pauses again
    expect(d.cli(['resume']).status).toBe(0);
    await waitFor('the second failed launch', () => d!.runs(t.key).length === 2 && finished(d!.runs()));
    expect((await cliPauses(d))[0]).toMatchObject({ cause: 'config' });
    expect(d.ticketRow(t.key).column_id).toBe('researcher');
    expect((await d.api('PATCH', '/api/config', { claude_binary: fakeClaude })).status).toBe(200);
    await waitFor('done', () => d!.ticketRow(t.key).column_id === 'done', 60_000);
    expect(await cliPauses(d)).toEqual([]);
  }, 120_000);

  test('a run that ends without moving its ticket is not respawned at once, and the next one is told why', async () => {
    const taskFile = path.join(tempDir(), 'tasks.txt');
    d = await startEngineDaemon({ config: { agents: { no_move_wait_seconds: 1, circuit_breaker_max_runs: 3 } } });
    await d.project('idle', 'research', 'id');
    const t = await d.ticket('id', 'researcher', { researcher: [{ do: 'task', file: taskFile }] });
    await waitFor('the breaker', () => d!.ticketRow(t.key).column_id === 'human', 60_000);
    const runs = d.runs(t.key);
    expect(runs.map((r) => r.status)).toEqual(['success', 'success', 'success']);
    // 1 s, then 5 s
    expect(runs[1].created_at - runs[0].ended_at).toBeGreaterThanOrEqual(1000);
    expect(runs[2].created_at - runs[1].ended_at).toBeGreaterThanOrEqual(5000);
    const tasks = fs.readFileSync(taskFile, 'utf8').split('----\n').filter(Boolean);
    expect(tasks).toHaveLength(3);
    expect(tasks[0]).not.toContain('ended without moving it');
    expect(tasks[1]).toContain(`The previous run on this ticket (${runs[0].id}) ended without moving it.`);
    expect(tasks[1]).toContain(`That run's last words were:\nDone with ${t.key}.`);
    expect(comments(d, t.key).at(-1).body).toMatch(/Circuit breaker: researcher ran 3 times/);
  }, 120_000);
});
