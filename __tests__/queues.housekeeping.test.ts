// Queue housekeeping: attempt history and failed jobs older than `queue.keep_days` are pruned,
// everything newer, waiting or running is kept. On a real tasks.db, with the pool's own claim and
// finish, then through the real daemon, which prunes at start and says so on the Queues page.
import fs from 'node:fs';
import path from 'node:path';
import { makeTestHome, tempDir, type TestHome } from './helpers/home.js';
import { claimJob, finishJob, jobEvents, listJobs, openQueues, pruneQueueHistory, QUEUE } from '../lib/queues.js';
import { prepareHome } from '../lib/home.js';
import { pathsFor } from '../lib/paths.js';
import { startTestDaemon } from './helpers/daemon.js';

const DAY = 86_400_000;

describe('pruneQueueHistory', () => {
  let home: TestHome;
  beforeEach(() => {
    home = makeTestHome();
  });
  afterEach(() => home.cleanup());

  /** Enqueues a merge job and claims it now; its attempt ends at `at` as given (or stays running). */
  async function attempt(ticketId: number, at: number, end: 'completed' | 'failed' | 'running'): Promise<number> {
    const queues = openQueues(home.db);
    await queues.merge.enqueue({ ticketId }, { idempotencyKey: `t-${ticketId}-${at}` });
    const job = claimJob(home.db, QUEUE.merge, 60)!;
    expect(job).not.toBeNull();
    if (end === 'completed') finishJob(home.db, job, { outcome: 'completed' }, at + 1000);
    if (end === 'failed') finishJob(home.db, job, { outcome: 'failed', error: 'boom' }, at + 1000);
    return job.id;
  }

  test('removes what ended before the window and keeps the rest', async () => {
    const now = Date.UTC(2026, 10, 30, 12);
    const oldDone = await attempt(1, now - 20 * DAY, 'completed');
    const oldFailed = await attempt(2, now - 20 * DAY, 'failed');
    const newFailed = await attempt(3, now - 2 * DAY, 'failed');
    const stillRunning = await attempt(4, now - 30 * DAY, 'running');
    const queues = openQueues(home.db);
    await queues.merge.enqueue({ ticketId: 5 }, { idempotencyKey: 'waiting' });

    const report = pruneQueueHistory(home.db, 14, now);
    expect(report).toEqual({ at: now, events: 2, failed_jobs: 1 });

    expect(jobEvents(home.db, String(oldDone))).toEqual([]);
    expect(jobEvents(home.db, String(oldFailed))).toEqual([]);
    expect(jobEvents(home.db, String(newFailed))).toHaveLength(1);
    expect(jobEvents(home.db, String(stillRunning))).toHaveLength(1);
    const left = listJobs(home.db).map((j) => [j.id, j.status]);
    expect(left).toEqual(
      expect.arrayContaining([
        [newFailed, 'failed'],
        [stillRunning, 'running'],
      ]),
    );
    expect(left.map(([id]) => id)).not.toContain(oldFailed);
    expect(listJobs(home.db, { status: 'pending' })).toHaveLength(1);

    // a second pass finds nothing more; a shorter window takes the recent failure too
    expect(pruneQueueHistory(home.db, 14, now)).toEqual({ at: now, events: 0, failed_jobs: 0 });
    expect(pruneQueueHistory(home.db, 1, now)).toEqual({ at: now, events: 1, failed_jobs: 1 });
    expect(jobEvents(home.db, String(stillRunning))).toHaveLength(1);
  });

  test('a failed job retried inside the window is kept with its history', async () => {
    const now = Date.UTC(2026, 10, 30, 12);
    const id = await attempt(7, now - 20 * DAY, 'failed');
    // retried from the inspector yesterday, failed again
    home.db.prepare(`UPDATE tasks SET status = 'pending_retry', numRunsLeft = 1, availableAt = ? WHERE id = ?`).run(now - DAY, id);
    const again = claimJob(home.db, QUEUE.merge, 60, now - DAY)!;
    finishJob(home.db, again, { outcome: 'failed', error: 'boom again' }, now - DAY + 1000);

    expect(pruneQueueHistory(home.db, 14, now)).toEqual({ at: now, events: 1, failed_jobs: 0 });
    expect(listJobs(home.db, { status: 'failed' }).map((j) => j.id)).toEqual([id]);
    expect(jobEvents(home.db, String(id)).map((e) => e.error)).toEqual(['boom again']);
  });
});

describe('the daemon prunes queue history', () => {
  test('at start, and the Queues page says what it kept and removed', async () => {
    const root = tempDir('pd-housekeeping-');
    const paths = pathsFor(path.join(root, 'home'));
    fs.mkdirSync(paths.home, { recursive: true });
    const { db } = prepareHome(paths);
    openQueues(db);
    const old = Date.now() - 10 * DAY;
    const insert = db.prepare(
      `INSERT INTO job_events (job_id, queue, attempt, outcome, payload, started_at, ended_at) VALUES (?, 'scan', 1, 'completed', '{}', ?, ?)`,
    );
    for (let i = 0; i < 30; i++) insert.run(String(1000 + i), old, old + 10);
    insert.run('2000', Date.now() - DAY, Date.now() - DAY + 10);
    db.close();

    const d = await startTestDaemon({ root, config: { queue: { keep_days: 3 } } });
    try {
      const page = await fetch(`${d.url}/queues`).then((r) => r.text());
      expect(page).toMatch(/kept for 3 days/);
      expect(page).toMatch(/removed 30 attempts and 0 failed jobs/);
      const job = await d.api('GET', '/api/queues/jobs/2000');
      expect(job.status).toBe(200);
      expect((await d.api('GET', '/api/queues/jobs/1000')).status).toBe(404);
    } finally {
      await d.stop();
    }
  });
});
