// Queue scale: enqueue and drain scan jobs through the real queue code (lib/queue/sqlite.ts,
// lib/pool.ts createPool) with a no-op handler, in this process. Then the database gets
// BENCH_QUEUE_ROWS failed jobs (rows the daemon's pools never pick up) and as many completed job
// events, written in one statement each, and a real daemon serves the queue inspector
// (/api/queues, /api/queues/jobs, and the /queues page once it exists).
import { createPool } from '../dist/lib/pool.js';
import { jobKeys, scanPayload } from '../dist/lib/queue/index.js';
import { openSqliteBackend } from '../dist/lib/queue/sqlite.js';
import { prepareHome } from '../dist/lib/home.js';
import { pathsFor } from '../dist/lib/paths.js';
import { note, percentile, prepareRoot, report, sleep, startDaemon, tempRoot, timeGets } from './lib.js';

const INSPECTOR = { op: '<', value: 100 };
const quiet = { error() {}, warn() {}, info() {}, debug() {} };

async function timeCalls(fn, n) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return times;
}

export async function queue({
  jobs = Number(process.env.BENCH_QUEUE_JOBS ?? 3000),
  rows = Number(process.env.BENCH_QUEUE_ROWS ?? 100_000),
  requests = Number(process.env.BENCH_PAGE_REQUESTS ?? 50),
} = {}) {
  console.log(`\nqueue scale (${jobs} scan jobs enqueued and drained by a pool of 2 with a no-op handler; inspector over ${rows} rows)`);
  const root = tempRoot('pd-bench-queue-');
  const env = prepareRoot(root);
  const paths = pathsFor(env.DISPATCH_HOME);
  const { db } = prepareHome(paths);
  const queue = openSqliteBackend(db);

  let t = Date.now();
  for (let i = 0; i < jobs; i++) {
    const payload = { projectId: 1, wakeSeq: i };
    await queue.enqueue('scan', payload, { key: jobKeys.scan(payload, i) });
  }
  const enqueueMs = Date.now() - t;
  report('queue', 'enqueue rate (one transaction per job)', (jobs / enqueueMs) * 1000, 'jobs/s');

  const pool = createPool({
    name: 'scan',
    schema: scanPayload,
    backend: queue,
    logger: quiet,
    concurrency: () => 2,
    handler: async () => {},
  });
  const remaining = db.prepare(`SELECT COUNT(*) AS n FROM tasks`);
  t = Date.now();
  pool.start();
  pool.poke();
  while (remaining.get().n > 0) await sleep(200);
  const drainMs = Date.now() - t;
  await pool.stop();
  report('queue', 'drain rate (dequeue, job_events start/end, finalize)', (jobs / drainMs) * 1000, 'jobs/s');
  note(
    `enqueue took ${(enqueueMs / 1000).toFixed(1)} s, drain ${(drainMs / 1000).toFixed(1)} s; job_events now holds ${db.prepare('SELECT COUNT(*) AS n FROM job_events').get().n} rows`,
  );

  // failed jobs stay for the inspector; completed job events are what a long drain leaves behind
  db.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
     INSERT INTO tasks (queue, payload, createdAt, status, expireAt, allocationId, numRunsLeft, maxNumRuns, availableAt, priority, idempotencyKey)
     SELECT 'scan', json_object('projectId', 1, 'wakeSeq', i), unixepoch(), 'failed', NULL, 'bench-' || i, 0, 3, NULL, 0, 'bench-failed:' || i FROM n`,
  ).run(rows);
  db.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
     INSERT INTO job_events (job_id, queue, attempt, outcome, payload, started_at, ended_at)
     SELECT 'bench-' || i, 'scan', 1, 'completed', '{}', ?, ? FROM n`,
  ).run(rows, Date.now() - 1000, Date.now());
  for (const [name, fn] of [
    ['list (newest 50), p95', () => queue.list({})],
    ['list status=failed, p95', () => queue.list({ status: 'failed' })],
    ['list queue=scan status=pending, p95', () => queue.list({ queue: 'scan', status: 'pending' })],
    ['counts, p95', () => queue.counts()],
  ]) {
    report('queue', `in-process ${name} over ${rows} rows`, percentile(await timeCalls(fn, 20), 95), 'ms', INSPECTOR);
  }
  // what every pool pass pays with that many failed rows kept: a dequeue that finds nothing
  const dequeueTimes = [];
  for (let i = 0; i < 20; i++) {
    const t1 = process.hrtime.bigint();
    if (await queue.claim('scan')) throw new Error('a failed job was claimed');
    dequeueTimes.push(Number(process.hrtime.bigint() - t1) / 1e6);
  }
  report('queue', `empty dequeue with ${rows} failed rows kept, p95`, percentile(dequeueTimes, 95), 'ms');

  db.close();

  const d = await startDaemon(root);
  try {
    for (const p of [
      { name: '/api/queues/jobs (newest 50)', path: '/api/queues/jobs' },
      { name: '/api/queues/jobs?status=failed', path: '/api/queues/jobs?status=failed' },
      { name: '/api/queues/jobs?queue=scan&status=pending', path: '/api/queues/jobs?queue=scan&status=pending' },
      { name: '/api/queues (counts and recent events)', path: '/api/queues' },
      { name: '/queues page', path: '/queues', html: true },
    ]) {
      const probe = await timeGets(d.url + p.path, 1);
      if (probe.last.status === 404 && p.html) {
        note(`${p.path} answered 404: the page has not landed yet, skipped`);
        continue;
      }
      if (probe.last.status !== 200) throw new Error(`${p.path} answered ${probe.last.status}`);
      const { times } = await timeGets(d.url + p.path, requests);
      report('queue', `${p.name} with ${rows} failed rows, p95`, percentile(times, 95), 'ms', INSPECTOR);
    }
  } finally {
    await d.stop();
  }
}
