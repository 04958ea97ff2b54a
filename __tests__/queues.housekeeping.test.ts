// Queue housekeeping: attempt history and failed jobs older than `queue.keep_days` are pruned,
// everything newer, waiting or running is kept. On a real tasks.db, with the sqlite backend's own
// claim and finish, then through the real daemon, which prunes at start and says so on the Queues page.
import fs from 'node:fs';
import path from 'node:path';
import { makeTestHome, tempDir, type TestHome } from './helpers/home.js';
import { jobEvents, pruneQueueHistory, type QueueBackend } from '../lib/queue/index.js';
import { openSqliteBackend } from '../lib/queue/sqlite.js';
import { prepareHome } from '../lib/home.js';
import { pathsFor } from '../lib/paths.js';
import { startTestDaemon } from './helpers/daemon.js';

const DAY = 86_400_000;

describe('pruneQueueHistory', () => {
  let home: TestHome;
  let queue: QueueBackend;
  beforeEach(() => {
    home = makeTestHome();
    queue = openSqliteBackend(home.db);
  });
  afterEach(() => home.cleanup());

  /** Dates a job's attempts (and a failed job's last change) back to `at`. */
  function backdate(id: string, at: number): void {
    home.db
      .prepare(`UPDATE job_events SET started_at = ?, ended_at = CASE WHEN ended_at IS NULL THEN NULL ELSE ? END WHERE job_id = ?`)
      .run(at, at + 1000, id);
    home.db.prepare(`UPDATE tasks SET availableAt = ?, createdAt = ? WHERE id = ?`).run(at + 1000, Math.floor(at / 1000), Number(id));
  }

  /** Enqueues a merge job and claims it; its attempt ends as given (or stays running), dated `at`. */
  async function attempt(ticketId: number, at: number, end: 'completed' | 'failed' | 'running'): Promise<string> {
    await queue.enqueue('merge', { ticketId }, { key: `t-${ticketId}-${at}` });
    const job = (await queue.claim('merge'))!;
    expect(job).not.toBeNull();
    if (end === 'completed') await queue.finish(job, { outcome: 'completed' });
    if (end === 'failed') await queue.finish(job, { outcome: 'failed', error: 'boom' });
    backdate(job.id, at);
    return job.id;
  }

  test('removes what ended before the window and keeps the rest', async () => {
    const now = Date.UTC(2026, 10, 30, 12);
    const oldDone = await attempt(1, now - 20 * DAY, 'completed');
    const oldFailed = await attempt(2, now - 20 * DAY, 'failed');
    const newFailed = await attempt(3, now - 2 * DAY, 'failed');
    const stillRunning = await attempt(4, now - 30 * DAY, 'running');
    await queue.enqueue('merge', { ticketId: 5 }, { key: 'waiting' });

    const report = await pruneQueueHistory(queue, home.db, 14, now);
    expect(report).toEqual({ at: now, events: 2, failed_jobs: 1 });

    expect(jobEvents(home.db, oldDone)).toEqual([]);
    expect(jobEvents(home.db, oldFailed)).toEqual([]);
    expect(jobEvents(home.db, newFailed)).toHaveLength(1);
    expect(jobEvents(home.db, stillRunning)).toHaveLength(1);
    const left = (await queue.list()).map((j) => [j.id, j.status]);
    expect(left).toEqual(
      expect.arrayContaining([
        [newFailed, 'failed'],
        [stillRunning, 'running'],
      ]),
    );
    expect(left.map(([id]) => id)).not.toContain(oldFailed);
    expect(await queue.list({ status: 'pending' })).toHaveLength(1);

    // a second pass finds nothing more; a shorter window takes the recent failure too
    expect(await pruneQueueHistory(queue, home.db, 14, now)).toEqual({ at: now, events: 0, failed_jobs: 0 });
    expect(await pruneQueueHistory(queue, home.db, 1, now)).toEqual({ at: now, events: 1, failed_jobs: 1 });
    expect(jobEvents(home.db, stillRunning)).toHaveLength(1);
  });

  test('a failed job retried inside the window is kept with its history', async () => {
    const now = Date.UTC(2026, 10, 30, 12);
    const id = await attempt(7, now - 20 * DAY, 'failed');
    // retried from the inspector yesterday, failed again
    home.db.prepare(`DELETE FROM job_events WHERE job_id = ?`).run(id);
    expect(await queue.retry(id)).toBe(true);
    const again = (await queue.claim('merge'))!;
    expect(again.id).toBe(id);
    await queue.finish(again, { outcome: 'failed', error: 'boom again' });
    backdate(id, now - DAY);
    home.db.prepare(`UPDATE tasks SET createdAt = ? WHERE id = ?`).run(Math.floor((now - 20 * DAY) / 1000), Number(id));
    home.db
      .prepare(
        `INSERT INTO job_events (job_id, queue, attempt, outcome, payload, error, started_at, ended_at) VALUES (?, 'merge', 1, 'failed', '{}', 'boom', ?, ?)`,
      )
      .run(id, now - 20 * DAY, now - 20 * DAY + 1000);

    expect(await pruneQueueHistory(queue, home.db, 14, now)).toEqual({ at: now, events: 1, failed_jobs: 0 });
    expect((await queue.list({ status: 'failed' })).map((j) => j.id)).toEqual([id]);
    expect(jobEvents(home.db, id).map((e) => e.error)).toEqual(['boom again']);
  });
});

describe('the daemon prunes queue history', () => {
  test('at start, and the Queues page says what it kept and removed', async () => {
    const root = tempDir('pd-housekeeping-');
    const paths = pathsFor(path.join(root, 'home'));
    fs.mkdirSync(paths.home, { recursive: true });
    const { db } = prepareHome(paths);
    openSqliteBackend(db);
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
