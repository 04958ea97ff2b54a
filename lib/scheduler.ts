// The heartbeat scheduler. The heartbeats table is the one source of truth for when each project
// is next scanned; this loop only turns due rows into scan jobs and sleeps until the next due time
// (never longer than a minute, so a clock change or a row written by another process is noticed).
// `poke()` runs a pass at once: that is how a wake reaches the scan pool in milliseconds.
import { deferHeartbeat, dueHeartbeats, nextDueAt } from './heartbeats.js';
import { jobKeys, type Queues } from './queues.js';
import type { Db } from './db/connection.js';
import type { Logger } from './logger.js';

const MAX_SLEEP_MS = 60_000;

export interface Scheduler {
  start(): void;
  poke(): void;
  stop(): Promise<void>;
  lastError: string | null;
}

export function createScheduler(deps: { db: Db; queues: Queues; logger: Logger; onEnqueued: () => void }): Scheduler {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  async function pass(): Promise<void> {
    const due = dueHeartbeats(deps.db);
    for (const h of due) {
      const payload = { projectId: h.project_id, wakeSeq: h.wake_seq };
      // enqueue first, then defer: a crash in between costs a duplicate scan, never a lost one
      await deps.queues.scan.enqueue(payload, { idempotencyKey: jobKeys.scan(payload, h.next_check_at) });
      deferHeartbeat(deps.db, h);
    }
    if (due.length) deps.onEnqueued();
  }

  function arm(): void {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    const next = nextDueAt(deps.db);
    const wait = next === null ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, Math.max(0, next - Date.now()));
    timer = setTimeout(() => scheduler.poke(), wait);
    timer.unref();
  }

  const scheduler: Scheduler = {
    lastError: null,
    start() {
      stopped = false;
      scheduler.poke();
    },
    poke() {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      running = (async () => {
        do {
          again = false;
          try {
            await pass();
          } catch (err) {
            scheduler.lastError = (err as Error).message;
            deps.logger.error('scheduler pass failed', { error: (err as Error).stack ?? String(err) });
          }
        } while (again && !stopped);
        running = null;
        arm();
      })();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
  return scheduler;
}
