// The engine end to end through the real daemon process and the fake claude: tickets flow through
// agent columns by the agents' own moves, reviewers send work back, failures are retried and then
// surfaced, and a ticket that never moves trips the circuit breaker.
import { comments, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

const FLOW = {
  'coding-agent': [
    { do: 'comment', type: 'journal', body: 'implemented it' },
    { do: 'move', to: 'code-reviewer' },
  ],
  'code-reviewer': [{ do: 'move', to: 'security-reviewer', comment: 'looks right' }],
  'security-reviewer': [{ do: 'move', to: 'done', comment: 'no issues' }],
};

describe('engine pipeline', () => {
  let d: EngineDaemon;
  beforeAll(async () => {
    d = await startEngineDaemon({ config: { agents: { circuit_breaker_max_runs: 3 } } });
    await d.project('shop', 'software-dev', 'sh');
  });
  afterAll(() => d.stop());

  test('a ticket filed into coding-agent flows coding → review → security → done', async () => {
    const t = await d.ticket('sh', 'coding-agent', FLOW, 'add payment collection');
    await waitFor('done', () => d.ticketRow(t.key).column_id === 'done');
    await waitFor('runs finalized', () => d.runs(t.key).every((r) => r.status !== 'running' && r.status !== 'queued'));
    const runs = d.runs(t.key);
    expect(runs.map((r) => [r.agent_type_id, r.column_id, r.status])).toEqual([
      ['coding-agent', 'coding-agent', 'success'],
      ['code-reviewer', 'code-reviewer', 'success'],
      ['security-reviewer', 'security-reviewer', 'success'],
    ]);
    for (const r of runs) {
      expect(r.exit_code).toBe(0);
      expect(r.tokens_in).toBeGreaterThan(0);
      expect(r.tokens_out).toBeGreaterThan(0);
      expect(r.cost_usd).toBeGreaterThan(0);
      expect(r.transcript_path).toContain(`${r.id}.log`);
    }
    const moves = comments(d, t.key)
      .filter((c) => c.type === 'move')
      .map((c) => [c.from_column, c.to_column, c.author.split(':')[0]]);
    expect(moves).toEqual([
      [null, 'coding-agent', 'human'],
      ['coding-agent', 'code-reviewer', 'coding-agent'],
      ['code-reviewer', 'security-reviewer', 'code-reviewer'],
      ['security-reviewer', 'done', 'security-reviewer'],
    ]);
    expect(comments(d, t.key).some((c) => c.type === 'journal' && c.body === 'implemented it')).toBe(true);
    expect(d.ticketRow(t.key).claimed_by_run).toBeNull();
  });

  test('a reviewer sends the ticket back with a finding and it returns', async () => {
    const script = {
      'coding-agent': [
        [{ do: 'move', to: 'code-reviewer' }],
        [
          { do: 'comment', type: 'journal', body: 'fixed the finding' },
          { do: 'move', to: 'code-reviewer' },
        ],
      ],
      'code-reviewer': [
        [
          { do: 'finding', severity: 'high', title: 'SQL built by string concatenation', body: 'use parameters' },
          { do: 'move', to: 'coding-agent', comment: 'see finding' },
        ],
        [{ do: 'move', to: 'security-reviewer' }],
      ],
      'security-reviewer': [{ do: 'move', to: 'done' }],
    };
    const t = await d.ticket('sh', 'coding-agent', script, 'invoice export');
    await waitFor('done', () => d.ticketRow(t.key).column_id === 'done');
    await waitFor('runs finalized', () => d.runs(t.key).every((r) => r.status === 'success'));
    expect(d.runs(t.key).map((r) => r.agent_type_id)).toEqual([
      'coding-agent',
      'code-reviewer',
      'coding-agent',
      'code-reviewer',
      'security-reviewer',
    ]);
    const finding = comments(d, t.key).find((c) => c.type === 'finding');
    expect(finding).toMatchObject({
      severity: 'high',
      title: 'SQL built by string concatenation',
      author: expect.stringMatching(/^code-reviewer:/),
    });
  });

  test('an agent that never moves its ticket trips the circuit breaker into human', async () => {
    const t = await d.ticket('sh', 'code-reviewer', { 'code-reviewer': [{ do: 'comment', type: 'journal', body: 'hmm' }] }, 'stuck review');
    await waitFor('human', () => d.ticketRow(t.key).column_id === 'human');
    const runs = d.runs(t.key);
    expect(runs).toHaveLength(3);
    expect(runs.every((r) => r.status === 'success')).toBe(true);
    const last = comments(d, t.key)
      .filter((c) => c.type === 'move')
      .at(-1);
    expect(last).toMatchObject({ to_column: 'human', author: 'system' });
    expect(last.body).toMatch(/Circuit breaker: code-reviewer ran 3 times/);
    expect(d.ticketRow(t.key).claimed_by_run).toBeNull();
  });

  test('a failing agent is retried max_retries times, then the ticket goes to human with the error', async () => {
    const patch = await d.api('PATCH', '/api/agent-types/security-reviewer', { max_retries: 1 });
    expect(patch.status).toBe(200);
    const t = await d.ticket('sh', 'security-reviewer', { 'security-reviewer': [{ do: 'fail', message: '529 overloaded' }] }, 'flaky');
    await waitFor('human', () => d.ticketRow(t.key).column_id === 'human');
    const runs = d.runs(t.key);
    expect(runs.map((r) => [r.status, r.exit_code])).toEqual([
      ['failed', 1],
      ['failed', 1],
    ]);
    expect(runs[0].error).toContain('API Error: 529 overloaded');
    const thread = comments(d, t.key);
    expect(thread.filter((c) => c.type === 'system' && /failed \(exit code 1\)/.test(c.body))).toHaveLength(2);
    expect(thread.at(-1)).toMatchObject({ type: 'move', to_column: 'human' });
    expect(thread.at(-1).body).toMatch(/Gave up after 2 failed security-reviewer runs in a row \(max_retries is 1\)/);
  });

  test('an agent that crashes without a result is a failed run with its exit code', async () => {
    await d.api('PATCH', '/api/agent-types/researcher', { max_retries: 0 });
    await d.project('notes', 'research', 'nt');
    const t = await d.ticket('nt', 'researcher', {
      researcher: [
        { do: 'garbage', bytes: 5000 },
        { do: 'crash', code: 7 },
      ],
    });
    await waitFor('human', () => d.ticketRow(t.key).column_id === 'human');
    const [run] = d.runs(t.key);
    expect(run).toMatchObject({ status: 'failed', exit_code: 7, error: 'exited with code 7 and no result' });
  });

  test('the runs and queue API and the CLI show what happened', async () => {
    const list = await d.api('GET', '/api/runs?limit=5');
    expect(list.status).toBe(200);
    expect(list.body.runs.length).toBe(5);
    const run = list.body.runs[0];
    expect(run.ticket_key).toMatch(/^(sh|nt)-\d+$/);
    const transcript = await d.api('GET', `/api/runs/${run.id}/transcript`);
    expect(transcript.body.done).toBe(true);
    expect(transcript.body.text.split('\n')[0]).toContain('"subtype":"init"');
    expect((await d.api('GET', '/api/runs/..%2F..%2Fetc%2Fpasswd/transcript')).status).toBe(404);
    const queues = await d.api('GET', '/api/queues');
    expect(queues.body.queues.map((q: { queue: string }) => q.queue).sort()).toEqual(['agent-run', 'merge', 'notify', 'scan']);
    expect(queues.body.queues.find((q: { queue: string }) => q.queue === 'agent-run').completed_24h).toBeGreaterThanOrEqual(10);
    const cli = d.cli(['runs', 'list', '--json']);
    expect(cli.status).toBe(0);
    expect(JSON.parse(cli.stdout).runs.length).toBeGreaterThan(5);
    const show = d.cli(['runs', 'show', run.id]);
    expect(show.stdout).toContain(run.id);
    const stats = d.cli(['queue', 'stats']);
    expect(stats.status).toBe(0);
    expect(stats.stdout).toMatch(/agent-run/);
  });
});
