// The engine on the redis backend: the real daemon with queue.backend = 'redis' against a real
// redis-server, the fake agent carrying a ticket through every column (coding → review → security
// → done), every job of the way held in Redis, and the Queues and Settings pages on that backend.
import { startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { startRedis, type RunningRedis } from './helpers/redis.js';
import { getPage } from './helpers/web.js';

const FLOW = {
  'coding-agent': [{ do: 'comment', type: 'journal', body: 'implemented it' }, { do: 'move', to: 'code-reviewer' }],
  'code-reviewer': [{ do: 'move', to: 'security-reviewer', comment: 'looks right' }],
  'security-reviewer': [{ do: 'move', to: 'done', comment: 'no issues' }],
};

describe('engine on the redis backend', () => {
  let redis: RunningRedis;
  let d: EngineDaemon;
  beforeAll(async () => {
    redis = await startRedis();
    d = await startEngineDaemon({ config: { queue: { backend: 'redis', redis_url: redis.url } } });
    await d.project('shop', 'software-dev', 'sh');
  });
  afterAll(async () => {
    await d?.stop();
    await redis?.stop();
  });

  test('a ticket flows coding → review → security → done with its jobs in Redis', async () => {
    const t = await d.ticket('sh', 'coding-agent', FLOW, 'add payment collection');
    await waitFor('done', () => d.ticketRow(t.key).column_id === 'done', 90_000);
    await waitFor('runs finalized', () => d.runs(t.key).every((r) => r.status !== 'running' && r.status !== 'queued'), 60_000);
    const runs = d.runs(t.key);
    expect(runs.map((r) => [r.agent_type_id, r.column_id, r.status])).toEqual([
      ['coding-agent', 'coding-agent', 'success'],
      ['code-reviewer', 'code-reviewer', 'success'],
      ['security-reviewer', 'security-reviewer', 'success'],
    ]);
    // each run was delivered by a BullMQ job keyed by its run id, and its attempt recorded
    const events = d.db().prepare(`SELECT job_id, outcome FROM job_events WHERE queue = 'agent-run' ORDER BY id`).all() as { job_id: string; outcome: string }[];
    expect(events.map((e) => e.job_id)).toEqual(runs.map((r) => `agent-run.k.run.${r.id}`));
    expect(events.every((e) => e.outcome === 'completed')).toBe(true);
    expect((d.db().prepare(`SELECT COUNT(*) AS n FROM job_events WHERE queue = 'scan' AND job_id LIKE 'scan.%'`).get() as { n: number }).n).toBeGreaterThan(0);
    // nothing went through the embedded queue
    expect((d.db().prepare(`SELECT COUNT(*) AS n FROM tasks`).get() as { n: number }).n).toBe(0);
  });

  test('the inspector reads Redis: counts, a job page with its attempts, and the API', async () => {
    const stats = await d.api('GET', '/api/queues');
    expect(stats.status).toBe(200);
    expect(stats.body.queues.map((q: { queue: string }) => q.queue)).toEqual(['scan', 'agent-run', 'merge']);
    expect(stats.body.queues.find((q: { queue: string }) => q.queue === 'agent-run').completed_24h).toBe(3);
    const run = d.runs()[0];
    const id = `agent-run.k.run.${run.id}`;
    const job = await d.api('GET', `/api/queues/jobs/${id}`);
    expect(job.status).toBe(200);
    expect(job.body.job).toBeNull(); // completed jobs are removed from Redis; the attempts stay
    expect(job.body.events).toEqual([expect.objectContaining({ queue: 'agent-run', attempt: 1, outcome: 'completed' })]);
    const page = await getPage(d, `/queues/jobs/${id}`);
    expect(page.status).toBe(200);
    expect(page.html).toContain(`run ${run.id}`);
    const settings = await getPage(d, '/settings');
    expect(settings.html).toMatch(/<code>queue\.backend<\/code> <span class="tag restart">restart<\/span>/);
    expect(settings.html).toMatch(/<code>queue\.redis_url<\/code> <span class="tag restart">restart<\/span>/);
  });
});
