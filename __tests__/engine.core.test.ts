// The engine's core without a daemon: job claim and end (lease, retry, last attempt), a worker pool
// (retry backoff, permanent failures, graceful stop) and the heartbeat scheduler, on a real SQLite
// home, with the clock injected so leases and backoffs are checked without waiting them out.
import path from 'node:path';
import { jobEvents, scanPayload, type ClaimedJob, type JobOutcome, type QueueBackend } from '../lib/queue/index.js';
import { openSqliteBackend } from '../lib/queue/sqlite.js';
import { createPool, PermanentError, type Pool } from '../lib/pool.js';
import { createScheduler } from '../lib/scheduler.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { ConfigStore } from '../lib/config.js';
import { AgentRuntime } from '../lib/agentRuntime.js';
import { prepareWorkspace } from '../lib/workspace.js';
import { effectiveParallelCoding, getProject } from '../lib/projects.js';
import { getHeartbeat, markDue } from '../lib/heartbeats.js';
import { buildScanWorker } from '../workers/scan.js';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { waitFor } from './helpers/engine.js';

let h: TestHome;
let backend: QueueBackend;
let logger: Logger;
let clock: number;
const now = () => clock;
const pools: Pool[] = [];
beforeEach(() => {
  h = makeTestHome();
  backend = openSqliteBackend(h.db, { leaseMs: 60_000, now });
  logger = createLogger({ logsDir: path.join(h.root, 'logs'), console: false });
  clock = Date.now() + 60_000; // ahead of the real clock, by which jobs enqueued now become available
});
afterEach(async () => {
  for (const p of pools.splice(0)) await p.stop();
  h.cleanup();
});

const row = (id: string) =>
  h.db.prepare(`SELECT status, availableAt, numRunsLeft FROM tasks WHERE id = ?`).get(Number(id)) as
    { status: string; availableAt: number | null; numRunsLeft: number } | undefined;
const SECOND = 1000;

/** Enqueues a scan job; `id` as the inspector shows it. */
async function enqueueScan(payload: { projectId: number; wakeSeq: number }): Promise<{ id: string }> {
  return { id: await backend.enqueue('scan', payload) };
}
/** A claim or an end at time `t` on the injected clock. */
async function claimAt(t: number): Promise<ClaimedJob | null> {
  const saved = clock;
  clock = t;
  try {
    return await backend.claim('scan');
  } finally {
    clock = saved;
  }
}
async function finishAt(job: ClaimedJob, end: JobOutcome, t: number): Promise<void> {
  const saved = clock;
  clock = t;
  try {
    await backend.finish(job, end);
  } finally {
    clock = saved;
  }
}

describe('the sqlite backend: claim and finish', () => {
  test('a claimed job is leased: no second claim while the lease runs, claimed again once it ran out', async () => {
    const job = (await enqueueScan({ projectId: 1, wakeSeq: 0 }))!;
    const first = (await claimAt(clock))!;
    expect([first.id, first.attempt, row(job.id)!.status]).toEqual([job.id, 1, 'running']);
    expect(await claimAt(clock + 59 * SECOND)).toBeNull();
    // the lease is kept in whole seconds: it has surely run out a second after its 60 s
    const again = (await claimAt(clock + 62 * SECOND))!;
    expect([again.id, again.attempt]).toEqual([job.id, 2]);
    // the first claim's late end does not touch the job the second claim holds; its event is closed
    await finishAt(first, { outcome: 'completed' }, clock + 63 * SECOND);
    expect(row(job.id)!.status).toBe('running');
    expect(jobEvents(h.db, String(job.id)).map((e) => e.outcome)).toEqual(['completed', 'running']);
  });

  test('a retry waits until its time; completed removes the row; the last attempt fails the job', async () => {
    const job = (await enqueueScan({ projectId: 1, wakeSeq: 0 }))!;
    const max = row(job.id)!.numRunsLeft;
    for (let attempt = 1; attempt < max; attempt++) {
      const claimed = (await claimAt(clock))!;
      expect(claimed.attempt).toBe(attempt);
      await finishAt(claimed, { outcome: 'retry', error: 'not yet', retryAt: clock + 5 * SECOND }, clock);
      expect(row(job.id)).toMatchObject({ status: 'pending_retry', availableAt: clock + 5 * SECOND });
      expect(await claimAt(clock + 5 * SECOND - 1)).toBeNull();
      clock += 5 * SECOND;
    }
    const last = (await claimAt(clock))!;
    expect([last.attempt, last.final]).toEqual([max, true]);
    await finishAt(last, { outcome: 'failed', error: 'gave up' }, clock);
    expect(row(job.id)!.status).toBe('failed');
    expect(await claimAt(clock + 3600 * SECOND)).toBeNull();

    const done = (await enqueueScan({ projectId: 2, wakeSeq: 0 }))!;
    await finishAt((await claimAt(clock))!, { outcome: 'completed' }, clock);
    expect(row(done.id)).toBeUndefined();
    expect(jobEvents(h.db, String(done.id)).map((e) => [e.outcome, e.ended_at])).toEqual([['completed', clock]]);
  });
});

describe('createPool', () => {
  function pool(handler: (data: { projectId: number }) => Promise<void>): Pool {
    const p = createPool({ name: 'scan', schema: scanPayload, backend, logger, concurrency: () => 1, handler, now });
    pools.push(p);
    return p;
  }

  test('a failing job is retried after a wait that doubles with each attempt, then fails for good', async () => {
    const job = (await enqueueScan({ projectId: 1, wakeSeq: 0 }))!;
    const max = row(job.id)!.numRunsLeft;
    let calls = 0;
    const p = pool(async () => {
      calls += 1;
      throw new Error(`boom ${calls}`);
    });
    p.start();
    for (let attempt = 1; attempt < max; attempt++) {
      await waitFor(`attempt ${attempt}`, () => row(job.id)?.status === 'pending_retry' && calls === attempt, 30_000);
      expect(row(job.id)!.availableAt).toBe(clock + 1000 * 2 ** attempt);
      clock += 1000 * 2 ** attempt; // the wait is over by the pool's clock
      p.poke();
    }
    await waitFor('the last attempt', () => row(job.id)?.status === 'failed', 30_000);
    expect(calls).toBe(max);
    expect(jobEvents(h.db, String(job.id)).map((e) => [e.attempt, e.outcome, e.error])).toEqual(
      Array.from({ length: max }, (_, i) => [i + 1, i + 1 < max ? 'retry' : 'failed', `boom ${i + 1}`]),
    );
  });

  test('a PermanentError fails the job at once, attempts left or not', async () => {
    const job = (await enqueueScan({ projectId: 1, wakeSeq: 0 }))!;
    pool(async () => {
      throw new PermanentError('that project is gone');
    }).start();
    await waitFor('the job to fail', () => row(job.id)?.status === 'failed', 30_000);
    expect(row(job.id)!.numRunsLeft).toBeGreaterThan(0);
    expect(jobEvents(h.db, String(job.id)).map((e) => [e.outcome, e.error])).toEqual([['failed', 'that project is gone']]);
  });

  test('stop({ waitMs }) waits for the job in flight and records its end; stop() without waitMs leaves it running', async () => {
    let release!: () => void;
    let entered = 0;
    const p = pool(
      () =>
        new Promise<void>((resolve) => {
          entered += 1;
          release = resolve;
        }),
    );
    const a = (await enqueueScan({ projectId: 1, wakeSeq: 0 }))!;
    p.start();
    await waitFor('the job to start', () => entered === 1);
    const stopped = p.stop({ waitMs: 60_000 });
    release();
    expect(await stopped).toBe(0);
    expect(row(a.id)).toBeUndefined(); // completed: its end was recorded before stop() resolved

    const q = pool(
      () =>
        new Promise<void>(() => {
          entered += 1;
        }),
    );
    const b = (await enqueueScan({ projectId: 2, wakeSeq: 0 }))!;
    q.start();
    await waitFor('the second job to start', () => entered === 2);
    expect(await q.stop()).toBe(1);
    expect(row(b.id)!.status).toBe('running'); // the next start's recovery puts it back in line
  });

  test('a scan of a project that no longer exists fails once and is not retried', async () => {
    const config = new ConfigStore(h.paths.config);
    const runtime = new AgentRuntime({
      store: h.store,
      config,
      paths: h.paths,
      logger,
      port: () => 0,
      workspace: (run) => {
        const parallelCoding = effectiveParallelCoding(getProject(h.db, run.project_id), config.get().agents.parallel_coding);
        return prepareWorkspace({ store: h.store, paths: h.paths, projectId: run.project_id, ticketId: run.ticket_id, parallelCoding });
      },
      onFinalized: () => {},
    });
    const deps = { store: h.store, config, paths: h.paths, logger, queue: backend, runtime, pokeAgents: () => {}, pokeMerges: () => {} };
    const job = (await enqueueScan({ projectId: 4242, wakeSeq: 0 }))!;
    const p = buildScanWorker(deps);
    pools.push(p);
    p.start();
    await waitFor('the scan to fail', () => row(job.id)?.status === 'failed', 30_000);
    expect(jobEvents(h.db, String(job.id)).map((e) => [e.attempt, e.outcome, e.error])).toEqual([[1, 'failed', 'project not found: 4242']]);
    config.close();
  });
});

describe('the scheduler', () => {
  test('a heartbeat becomes one scan job when it falls due by the clock, not before; a failed pass is retried', async () => {
    const project = h.addProject('alpha'); // its heartbeat is due now (real time)
    const scans = () => h.db.prepare(`SELECT COUNT(*) AS n FROM tasks WHERE queue = 'scan'`).get() as { n: number };
    let enqueued = 0;
    clock = Date.now() - 3600 * SECOND; // an hour before the heartbeat is due
    const scheduler = createScheduler({ db: h.db, queue: backend, logger, onEnqueued: () => (enqueued += 1), now });
    try {
      scheduler.start();
      scheduler.poke();
      await new Promise((r) => setTimeout(r, 200));
      expect([scans().n, enqueued]).toEqual([0, 0]);

      clock = getHeartbeat(h.db, project.id)!.next_check_at;
      scheduler.poke();
      await waitFor('the scan job', () => scans().n === 1);
      const h1 = getHeartbeat(h.db, project.id)!;
      expect(h1.next_check_at).toBe(clock + h1.interval_seconds * SECOND); // deferred one interval by the scheduler's clock
      scheduler.poke();
      await new Promise((r) => setTimeout(r, 200));
      expect(scans().n).toBe(1);

      // a pass the database refuses: kept as lastError, retried by itself, and over once the write works again
      h.db.exec(`CREATE TRIGGER refuse_jobs BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'disk refused the job'); END`);
      markDue(h.db, project.id, clock);
      scheduler.poke();
      await waitFor('the failure to be seen', () => scheduler.lastError?.includes('disk refused the job'));
      h.db.exec(`DROP TRIGGER refuse_jobs`);
      await waitFor('the retried pass', () => scans().n === 2 && scheduler.lastError === null, 30_000);
      expect(enqueued).toBe(2);
    } finally {
      await scheduler.stop();
    }
  });
});
