// The queue contract, run against both backends (sqlite: liteque on a real tasks.db; redis: BullMQ
// on a real redis-server on an ephemeral port): enqueue, claim, delay, lease expiry and heartbeat,
// retry with backoff, idempotency, stats and the inspector's queries, and recovery after a process
// holding a job is killed with SIGKILL. Plus what only one backend has: liteque's table checked
// against the adapter's SQL, and the refusal to switch backends while jobs wait.
import path from 'node:path';
import { spawn } from 'node:child_process';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { startRedis, type RunningRedis } from './helpers/redis.js';
import { waitFor } from './helpers/engine.js';
import { repoRoot } from './helpers/daemon.js';
import { jobEvents, openQueueBackend, type QueueBackend } from '../lib/queue/index.js';
import { checkTasksTable, openSqliteBackend, TASKS_COLUMNS } from '../lib/queue/sqlite.js';
import { openRedisBackend } from '../lib/queue/redis.js';
import { openDb } from '../lib/db/connection.js';
import { defaultConfig } from '../lib/config.js';

const LEASE_MS = 1000;
let redis: RunningRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

type Kind = 'sqlite' | 'redis';
const open = (kind: Kind, h: TestHome, leaseMs = LEASE_MS): Promise<QueueBackend> =>
  kind === 'redis' ? openRedisBackend(h.db, redis.url, { leaseMs }) : Promise.resolve(openSqliteBackend(h.db, { leaseMs }));

describe.each<Kind>(['sqlite', 'redis'])('queue contract on %s', (kind) => {
  let h: TestHome;
  let q: QueueBackend;
  const extra: QueueBackend[] = [];
  beforeEach(async () => {
    await redis.flushAll();
    h = makeTestHome();
    q = await open(kind, h);
  });
  afterEach(async () => {
    for (const b of [q, ...extra.splice(0)]) await b.close();
    h.cleanup();
  });

  test('enqueue and claim: one holder at a time, the payload as JSON, the attempt opened in job_events', async () => {
    const id = await q.enqueue('agent-run', { runId: 'r1' });
    const job = (await q.claim('agent-run'))!;
    expect(job).toMatchObject({ id, queue: 'agent-run', attempt: 1, final: false });
    expect(JSON.parse(job.payload)).toEqual({ runId: 'r1' });
    expect(await q.claim('agent-run')).toBeNull();
    expect(await q.claim('merge')).toBeNull();
    expect(jobEvents(h.db, id)).toEqual([expect.objectContaining({ queue: 'agent-run', attempt: 1, outcome: 'running' })]);
    await q.finish(job, { outcome: 'completed' });
    expect(await q.get(id)).toBeUndefined();
    expect(jobEvents(h.db, id)[0]).toMatchObject({ outcome: 'completed', error: null });
    expect(await q.unfinished()).toBe(0);
  });

  test('a delayed job waits for its time', async () => {
    const id = await q.enqueue('scan', { projectId: 1, wakeSeq: 0 }, { delayMs: 1500 });
    const enqueued = Date.now();
    expect(await q.claim('scan')).toBeNull();
    const next = (await q.nextAvailableAt('scan'))!;
    expect(next).toBeGreaterThan(enqueued);
    const job = await waitFor('the delayed job', () => q.claim('scan'), 20_000, 100);
    expect(job.id).toBe(id);
    expect(Date.now()).toBeGreaterThanOrEqual(next - 1000);
  });

  test('idempotency: a key is held while its job waits, runs or is kept as failed, and free once it completed', async () => {
    const a = await q.enqueue('merge', { ticketId: 1 }, { key: 'merge:1:100' });
    const b = await q.enqueue('merge', { ticketId: 1 }, { key: 'merge:1:100' });
    expect(b).toBe(a);
    expect((await q.list({ queue: 'merge' })).map((j) => j.id)).toEqual([a]);
    expect((await q.byKey('merge', 'merge:1:100'))?.id).toBe(a);
    const job = (await q.claim('merge'))!;
    expect(await q.enqueue('merge', { ticketId: 1 }, { key: 'merge:1:100' })).toBe(a);
    await q.finish(job, { outcome: 'completed' });
    const c = await q.enqueue('merge', { ticketId: 1 }, { key: 'merge:1:100' });
    expect((await q.get(c))?.status).toBe('pending');
    await expect(q.enqueue('merge', { ticketId: 1 }, { key: 'bad key' })).rejects.toThrow(/invalid job key/);
  });

  test('retry with backoff, then failed after the last attempt; errors kept per attempt', async () => {
    const id = await q.enqueue('agent-run', { runId: 'r2' });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const job = await waitFor(`attempt ${attempt}`, () => q.claim('agent-run'), 20_000, 100);
      expect(job).toMatchObject({ id, attempt, final: attempt === 3 });
      if (job.final) {
        await q.finish(job, { outcome: 'failed', error: `boom ${attempt}` });
        break;
      }
      const retryAt = Date.now() + 1200;
      await q.finish(job, { outcome: 'retry', error: `boom ${attempt}`, retryAt });
      expect((await q.get(id))?.status).toBe('pending_retry');
      expect(await q.claim('agent-run')).toBeNull(); // the backoff holds it
      expect((await q.nextAvailableAt('agent-run'))!).toBeGreaterThanOrEqual(retryAt - 1000);
    }
    expect(await q.get(id)).toMatchObject({ status: 'failed', attempts: 3, max_runs: 3 });
    expect(await q.claim('agent-run')).toBeNull();
    expect(jobEvents(h.db, id).map((e) => [e.attempt, e.outcome, e.error])).toEqual([
      [1, 'retry', 'boom 1'],
      [2, 'retry', 'boom 2'],
      [3, 'failed', 'boom 3'],
    ]);
  });

  test('lease: heartbeats keep the job; without them the lease runs out, another claim takes it, the old holder cannot end it', async () => {
    const id = await q.enqueue('scan', { projectId: 2, wakeSeq: 0 });
    const first = (await q.claim('scan'))!;
    // renewed every third of the lease for three leases: nobody else gets it
    const until = Date.now() + 3 * LEASE_MS;
    while (Date.now() < until) {
      expect(await q.extend(first)).toBe(true);
      await new Promise((r) => setTimeout(r, LEASE_MS / 3));
      expect(await q.claim('scan')).toBeNull();
    }
    // no more heartbeats: the lease runs out and another claim takes the job
    const second = await waitFor('the expired job claimed again', () => q.claim('scan'), 30_000, 200);
    expect(second.id).toBe(id);
    expect(second.token).not.toBe(first.token);
    expect(await q.extend(first)).toBe(false);
    await q.finish(first, { outcome: 'completed' });
    expect((await q.get(id))?.status).toBe('running');
    await q.finish(second, { outcome: 'completed' });
    expect(await q.get(id)).toBeUndefined();
  });

  test('stats and the inspector: counts per state, list by queue and state, get, retry and delete', async () => {
    const waiting = await q.enqueue('scan', { projectId: 3, wakeSeq: 0 }, { key: 'scan:3:0:1' });
    const running = await q.enqueue('merge', { ticketId: 3 });
    const failed = await q.enqueue('agent-run', { runId: 'r3' });
    expect((await q.claim('merge'))!.id).toBe(running);
    const f = (await q.claim('agent-run'))!;
    await q.finish({ ...f, final: true }, { outcome: 'failed', error: 'no' });
    const counts = Object.fromEntries((await q.counts()).map((c) => [c.queue, c]));
    expect(counts.scan).toMatchObject({ pending: 1, pending_retry: 0, running: 0, failed: 0 });
    expect(counts.merge).toMatchObject({ pending: 0, running: 1, failed: 0 });
    expect(counts['agent-run']).toMatchObject({ pending: 0, running: 0, failed: 1 });
    expect(await q.unfinished()).toBe(2);

    expect((await q.list()).map((j) => j.id).sort()).toEqual([waiting, running, failed].sort());
    expect((await q.list({ status: 'failed' })).map((j) => j.id)).toEqual([failed]);
    expect((await q.list({ queue: 'scan', status: 'pending' })).map((j) => j.id)).toEqual([waiting]);
    expect(await q.list({ queue: 'scan', status: 'failed' })).toEqual([]);
    expect(await q.list({ limit: 1, offset: 5 })).toEqual([]);
    expect(await q.list({ limit: 2 })).toHaveLength(2);
    const w = (await q.get(waiting))!;
    expect(w).toMatchObject({ queue: 'scan', status: 'pending', attempts: 0, max_runs: 3, idempotency_key: 'scan:3:0:1' });
    expect(JSON.parse(w.payload)).toEqual({ projectId: 3, wakeSeq: 0 });
    expect((await q.get(running))!.expire_at).toBeGreaterThan(Date.now());

    // retry: only a failed job, which gets one more attempt
    expect(await q.retry(waiting)).toBe(false);
    expect(await q.retry(failed)).toBe(true);
    expect(['pending', 'pending_retry']).toContain((await q.get(failed))!.status);
    const again = (await q.claim('agent-run'))!;
    expect(again).toMatchObject({ id: failed, attempt: 2 });
    // delete: never a running job
    expect(await q.remove(failed)).toBe(false);
    expect(await q.remove(running)).toBe(false);
    expect(await q.remove(waiting)).toBe(true);
    expect(await q.get(waiting)).toBeUndefined();
    expect(await q.remove(waiting)).toBe(false);
    expect(await q.get('424242')).toBeUndefined();
    expect(await q.get('scan.k.nope')).toBeUndefined();
  });

  test('recovery after kill -9: the job held by a killed process is back at once, its attempt refunded and marked crashed', async () => {
    const id = await q.enqueue('agent-run', { runId: 'r4' });
    const claimer = path.join(repoRoot, '__tests__', 'fixtures', 'queue-claimer.mjs');
    const child = spawn(process.execPath, [claimer, kind, h.db.name, 'agent-run', redis.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    await waitFor('the child to claim the job', () => out.includes(`claimed ${id}`) || child.exitCode !== null, 30_000);
    expect(out).toContain(`claimed ${id}`);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    // the child's lease is a minute long: nothing gets the job before recovery
    expect(await q.claim('agent-run')).toBeNull();
    expect((await q.get(id))?.status).toBe('running');

    // the next start: recovery runs before anything claims
    await q.close();
    q = await open(kind, h);
    expect(await q.resetOrphaned()).toBe(1);
    expect(jobEvents(h.db, id).map((e) => e.outcome)).toEqual(['crashed']);
    const job = (await q.claim('agent-run'))!;
    expect(job).toMatchObject({ id, attempt: 1 });
    await q.finish(job, { outcome: 'completed' });
    expect(await q.unfinished()).toBe(0);
  });
});

describe('liteque table contract', () => {
  test("the installed liteque's tasks table is the one lib/queue/sqlite.ts was written for", () => {
    const h = makeTestHome();
    try {
      openSqliteBackend(h.db);
      expect(() => checkTasksTable(h.db)).not.toThrow();
      const cols = (h.db.prepare(`PRAGMA table_info(tasks)`).all() as { name: string }[]).map((c) => c.name).sort();
      expect(cols).toEqual(Object.keys(TASKS_COLUMNS).sort());
    } finally {
      h.cleanup();
    }
  });

  test('a changed table stops the backend from opening, naming the column', () => {
    const h = makeTestHome();
    try {
      openSqliteBackend(h.db);
      h.db.exec(`ALTER TABLE tasks RENAME COLUMN expireAt TO expiresAt`);
      expect(() => openSqliteBackend(h.db)).toThrow(
        /liteque's tasks table changed \(column expireAt is missing; unknown column expiresAt\)/,
      );
    } finally {
      h.cleanup();
    }
  });
});

describe('switching backends', () => {
  test('refused while jobs wait in the previous backend, with their count; allowed once drained', async () => {
    await redis.flushAll();
    const h = makeTestHome();
    const base = defaultConfig().queue;
    const toRedis = { ...base, backend: 'redis' as const, redis_url: redis.url };
    try {
      const sqlite = await openQueueBackend(h.db, base);
      await sqlite.enqueue('scan', { projectId: 1, wakeSeq: 0 });
      await sqlite.enqueue('merge', { ticketId: 1 });
      await expect(openQueueBackend(h.db, toRedis)).rejects.toThrow(
        new RegExp(
          'queue\\.backend changed from sqlite to redis at redis://127\\.0\\.0\\.1:\\d+/?, but 2 jobs still wait in sqlite\\. ' +
            'To drain them: set the queue settings back, start the daemon, run `dispatch queue stats`',
        ),
      );
      for (const name of ['scan', 'merge'] as const) await sqlite.finish((await sqlite.claim(name))!, { outcome: 'completed' });
      const r = await openQueueBackend(h.db, toRedis);
      expect(r.kind).toBe('redis');
      await r.enqueue('merge', { ticketId: 2 });
      await r.close();
      // and back: the job waiting in Redis is counted the same way
      await expect(openQueueBackend(h.db, base)).rejects.toThrow(/but 1 job still wait in redis at/);
      const again = await openQueueBackend(h.db, toRedis);
      await again.finish((await again.claim('merge'))!, { outcome: 'completed' });
      await again.close();
      expect((await openQueueBackend(h.db, base)).kind).toBe('sqlite');
    } finally {
      h.cleanup();
    }
  });

  test('a Redis that cannot be reached is named in one clear error', async () => {
    const h = makeTestHome();
    const db = openDb(h.db.name);
    try {
      await expect(openRedisBackend(db, 'redis://127.0.0.1:1')).rejects.toThrow(
        /queue\.redis_url redis:\/\/127\.0\.0\.1:1\/?: cannot use Redis: connect ECONNREFUSED/,
      );
    } finally {
      db.close();
      h.cleanup();
    }
  });
});
