// The engine on the redis backend: the real daemon with queue.backend = 'redis' against a real
// redis-server, the fake agent carrying a ticket through every column (coding → review → security
// → done), every job of the way held in Redis, and the Queues and Settings pages on that backend.
// Redis restarted under the running daemon keeps its jobs and the engine carries on. Then the
// starts the daemon refuses: an unreachable Redis, and a switch while jobs wait.
import path from 'node:path';
import { startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { startRedis, type RunningRedis } from './helpers/redis.js';
import { startTestDaemon } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';
import { getPage } from './helpers/web.js';
import { openDb } from '../lib/db/connection.js';
import { openSqliteBackend } from '../lib/queue/sqlite.js';
import { openRedisBackend } from '../lib/queue/redis.js';

const FLOW = {
  'coding-agent': [
    { do: 'comment', type: 'journal', body: 'implemented it' },
    { do: 'move', to: 'code-reviewer' },
  ],
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
    const events = d.db().prepare(`SELECT job_id, outcome FROM job_events WHERE queue = 'agent-run' ORDER BY id`).all() as {
      job_id: string;
      outcome: string;
    }[];
    expect(events.map((e) => e.job_id)).toEqual(runs.map((r) => `agent-run.k.run.${r.id}`));
    expect(events.every((e) => e.outcome === 'completed')).toBe(true);
    const scans = d.db().prepare(`SELECT COUNT(*) AS n FROM job_events WHERE queue = 'scan' AND job_id LIKE 'scan.%'`).get() as {
      n: number;
    };
    expect(scans.n).toBeGreaterThan(0);
    // nothing went through the embedded queue
    expect((d.db().prepare(`SELECT COUNT(*) AS n FROM tasks`).get() as { n: number }).n).toBe(0);
  });

  test('the inspector reads Redis: counts, a job page with its attempts, and the API', async () => {
    const stats = await d.api('GET', '/api/queues');
    expect(stats.status).toBe(200);
    expect(stats.body.queues.map((q: { queue: string }) => q.queue)).toEqual(['scan', 'agent-run', 'merge', 'notify']);
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
    expect(settings.html).toMatch(/Queue backend <span class="tag restart">restart<\/span><\/label>/);
    expect(settings.html).toMatch(/Redis URL <span class="tag restart">restart<\/span><\/label>/);
  });

  test('Redis restarted under the daemon: a waiting job is kept (AOF on) and the engine carries on', async () => {
    // a job that waits an hour, added over a connection of its own
    const db = openDb(path.join(tempDir('pd-redis-side-'), 'side.db'));
    const side = await openRedisBackend(db, redis.url);
    const id = await side.enqueue('merge', { ticketId: 999 }, { key: 'merge:999:1', delayMs: 3_600_000 });
    await side.close();
    db.close();
    await redis.restart();
    const kept = await d.api('GET', `/api/queues/jobs/${id}`);
    expect(kept.status).toBe(200);
    expect(kept.body.job).toMatchObject({ queue: 'merge', status: 'pending_retry', idempotency_key: 'merge:999:1' });
    const t = await d.ticket('sh', 'coding-agent', FLOW, 'after the restart');
    await waitFor('done after the restart', () => d.ticketRow(t.key).column_id === 'done', 120_000);
    await waitFor('runs finalized', () => d.runs(t.key).length === 3 && d.runs(t.key).every((r) => r.status === 'success'), 60_000);
  });
});

describe('starting on the redis backend', () => {
  test('an unreachable Redis stops the start with one line naming it', async () => {
    await expect(startTestDaemon({ config: { queue: { backend: 'redis', redis_url: 'redis://127.0.0.1:1' } } })).rejects.toThrow(
      /queue\.redis_url redis:\/\/127\.0\.0\.1:1\/?: cannot use Redis: connect ECONNREFUSED/,
    );
  });

  test('a switch from sqlite while a job waits there is refused with the count; the daemon starts again on sqlite', async () => {
    const redis = await startRedis();
    const root = tempDir('pd-switch-');
    try {
      const first = await startTestDaemon({ root });
      await first.stop();
      const db = openDb(path.join(root, 'home', 'tasks.db'));
      await openSqliteBackend(db).enqueue('merge', { ticketId: 1 }, { delayMs: 3_600_000 });
      db.close();
      await expect(startTestDaemon({ root, config: { queue: { backend: 'redis', redis_url: redis.url } } })).rejects.toThrow(
        /queue\.backend changed from sqlite to redis at redis:\/\/127\.0\.0\.1:\d+\/?, but 1 job still wait in sqlite\. To drain them/,
      );
      const back = await startTestDaemon({ root, config: { queue: { backend: 'sqlite' } } });
      const stats = await back.api('GET', '/api/queues');
      expect(stats.body.queues.find((q: { queue: string }) => q.queue === 'merge').pending).toBe(1);
      await back.stop();
    } finally {
      await redis.stop();
    }
  });
});
