// The queue backend the tests run on, chosen by one environment variable (jest.config.js sets it per
// project through helpers/environment.js): DISPATCH_TEST_QUEUE=redis puts every daemon the helpers
// start on Redis; unset (or `sqlite`) leaves the default embedded queue. On Redis,
// each test file gets one redis-server of its own on an ephemeral port (started at the first need,
// stopped after the file by helpers/environment.js) and each daemon home one Redis database of it,
// so that daemons of one file never see each other's jobs and a home keeps its jobs across restarts.
// A config that names a `queue` section itself is left alone: that test chose its backend.
import fs from 'node:fs';
import path from 'node:path';
import { startRedis, type RunningRedis } from './redis.js';
import type { RunningDaemon } from './daemon.js';
import { openDb } from '../../lib/db/connection.js';
import { openQueueBackend, type JobRow, type QueueCounts, type QueueName } from '../../lib/queue/index.js';

const chosen = process.env.DISPATCH_TEST_QUEUE || 'sqlite';
if (chosen !== 'sqlite' && chosen !== 'redis') throw new Error(`DISPATCH_TEST_QUEUE must be sqlite or redis, not ${chosen}`);
export const testQueue: 'sqlite' | 'redis' = chosen;

/** Where helpers/environment.js finds the file's redis-server to stop it once the file is done. */
const REDIS_GLOBAL = '__dispatchTestRedis';
/** Databases of the file's redis-server: one per daemon home or queue a file opens. */
const REDIS_DATABASES = 512;

let server: Promise<RunningRedis> | null = null;
const databases = new Map<string, number>();

/** The `queue` config section that puts `home` on the test backend; undefined on sqlite (the default needs none). */
export async function testQueueConfig(home: string): Promise<{ backend: 'redis'; redis_url: string } | undefined> {
  if (testQueue === 'sqlite') return undefined;
  server ??= startRedis({ databases: REDIS_DATABASES }).then((r) => ((globalThis as Record<string, unknown>)[REDIS_GLOBAL] = r));
  const redis = await server;
  let index = databases.get(home);
  if (index === undefined) {
    index = databases.size;
    if (index >= REDIS_DATABASES) throw new Error(`a test file opened more than ${REDIS_DATABASES} homes on Redis`);
    databases.set(home, index);
  }
  return { backend: 'redis', redis_url: `${redis.url}/${index}` };
}

/** `config` with the test backend's queue section added, unless it names one itself. */
export async function withTestQueue(home: string, config: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  if (config.queue !== undefined) return config;
  const queue = await testQueueConfig(home);
  return queue ? { ...config, queue } : config;
}

/**
 * Puts the home's config.json on the test backend before a daemon starts there, keeping what the
 * file says (a file that is not valid JSON is left as it is: that test is about the broken file).
 * Tests that start the daemon themselves (`dispatch daemon start`) call this first.
 */
export async function useTestQueue(home: string): Promise<void> {
  if (testQueue === 'sqlite') return;
  const file = path.join(home, 'config.json');
  let config: Record<string, unknown> = {};
  if (fs.existsSync(file)) {
    try {
      config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
  }
  const next = await withTestQueue(home, config);
  if (next !== config) {
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(next, null, 2));
  }
}

/** The inspector's status of a job enqueued with a delay: `pending` on sqlite, `pending_retry` (BullMQ's delayed) on redis. */
export const DELAYED_STATUS = testQueue === 'redis' ? 'pending_retry' : 'pending';

/** A test of the embedded queue's own behaviour: it runs in the sqlite run only (named in README's testing rule). */
export const sqliteOnlyTest = testQueue === 'sqlite' ? test : test.skip;

/** Each queue's counts, read through the running daemon's API (the same on both backends). */
export async function queueCounts(d: RunningDaemon): Promise<Record<QueueName, QueueCounts>> {
  const res = await d.api<{ queues: QueueCounts[] }>('GET', '/api/queues');
  if (res.status !== 200) throw new Error(`GET /api/queues answered ${res.status}`);
  return Object.fromEntries(res.body.queues.map((q) => [q.queue, q])) as Record<QueueName, QueueCounts>;
}

/** A queue's waiting, running and failed jobs, read through the running daemon's API. */
export async function queueJobs(d: RunningDaemon, queue: QueueName): Promise<JobRow[]> {
  const res = await d.api<{ jobs: JobRow[] }>('GET', `/api/queues/jobs?queue=${queue}&limit=500`);
  if (res.status !== 200) throw new Error(`GET /api/queues/jobs answered ${res.status}`);
  return res.body.jobs;
}

/** Each queue's counts in a stopped daemon's home, read from the backend it ran on. */
export async function homeQueueCounts(home: string): Promise<Record<QueueName, QueueCounts>> {
  const db = openDb(path.join(home, 'tasks.db'));
  try {
    const queue = await openQueueBackend(db, (await testQueueConfig(home)) ?? { backend: 'sqlite', redis_url: '' });
    try {
      return Object.fromEntries((await queue.counts()).map((q) => [q.queue, q])) as Record<QueueName, QueueCounts>;
    } finally {
      await queue.close();
    }
  } finally {
    db.close();
  }
}
