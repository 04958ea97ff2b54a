// The heartbeat scheduler. The heartbeats table is the one source of truth for when each project
// is next scanned; this loop only turns due rows into scan jobs and sleeps until the next due time
// (never longer than a minute, so a clock change or a row written by another process is noticed).
// `poke()` runs a pass at once: that is how a wake reaches the scan pool in milliseconds.
// A pass that fails (a full disk refuses the enqueue) is retried after a growing pause, not at
// once: retrying a due heartbeat at once spun the daemon at 100% CPU. The failure is logged once
// with a count (RepeatedFailure), and the loop comes back by itself when the disk does.
import { deferHeartbeat, dueHeartbeats, nextDueAt } from './heartbeats.js';
import { jobKeys, type QueueBackend } from './queue/index.js';
import { RepeatedFailure, type Logger } from './logger.js';
import type { Db } from './db/connection.js';

const MAX_SLEEP_MS = 60_000;
/** The pause after the first failed pass; it doubles with each failure in a row, up to MAX_SLEEP_MS. */
const FIRST_RETRY_MS = 1000;

export interface Scheduler {
  start(): void;
  poke(): void;
  stop(): Promise<void>;
  lastError: string | null;
}

export function createScheduler(deps: {
  db: Db;
  queue: QueueBackend;
  logger: Logger;
  onEnqueued: () => void;
  /** the clock heartbeats fall due by (ms) @defaultValue Date.now */
  now?: () => number;
}): Scheduler {
  const now = deps.now ?? Date.now;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  let failures = 0;
  const failure = new RepeatedFailure(deps.logger, 'scheduler pass failed');

  async function pass(): Promise<void> {
    const due = dueHeartbeats(deps.db, now());
    for (const h of due) {
      const payload = { projectId: h.project_id, wakeSeq: h.wake_seq };
      // enqueue first, then defer: a crash in between costs a duplicate scan, never a lost one
      await deps.queue.enqueue('scan', payload, { key: jobKeys.scan(payload, h.next_check_at) });
      deferHeartbeat(deps.db, h, now());
    }
    if (due.length) deps.onEnqueued();
  }

  function arm(): void {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    let wait: number;
    if (failures > 0) {
      wait = Math.min(MAX_SLEEP_MS, FIRST_RETRY_MS * 2 ** (failures - 1));
    } else {
      try {
        const next = nextDueAt(deps.db);
        wait = next === null ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, Math.max(0, next - now()));
      } catch (err) {
        failures += 1;
        failure.fail(err);
        wait = FIRST_RETRY_MS;
      }
    }
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
            failures = 0;
            failure.ok();
            scheduler.lastError = null;
          } catch (err) {
            failures += 1;
            failure.fail(err);
            scheduler.lastError = (err as Error).message;
          }
        } while (again && !stopped && failures === 0);
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
