// The engine: durable queues, the heartbeat scheduler, the worker pools and the agent
// runtime, wired for the daemon. Start order matters: recovery MUST finish before any pool takes a
// job. A wake marks the project due in the database (the durable record) and pokes the scheduler
// (the fast path), so a ticket entering an agent column reaches a spawn in milliseconds.
import { AgentRuntime, type KillOptions } from '../lib/agentRuntime.js';
import { agentsPaused } from '../lib/globalPause.js';
import { activeCliPauses, clearCliPauses, nextPauseEnd } from '../lib/cliPause.js';
import { backoffOf, nextAttemptAt } from '../lib/runCause.js';
import { getHeartbeat } from '../lib/heartbeats.js';
import { markDue, markWaitingProjectsDue } from '../lib/heartbeats.js';
import { jobKeys, pruneQueueHistory, type PruneReport, type QueueBackend, type QueueName } from '../lib/queue/index.js';
import { recover } from '../lib/recovery.js';
import { capsFrom } from '../lib/caps.js';
import { createScheduler } from '../lib/scheduler.js';
import { prepareWorkspace, pruneWorktrees } from '../lib/workspace.js';
import { commandEnv } from '../lib/checks.js';
import { createSparePool } from '../lib/spares.js';
import { effectiveParallelCoding, getProject } from '../lib/projects.js';
import { createNotifier, pruneNotifications, type Notifier } from '../lib/notifications.js';
import { noteBudgetsReached } from '../lib/budget.js';
import { workerBuilders } from '../workers/index.js';
import type { Config, ConfigStore } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Paths } from '../lib/paths.js';
import type { Pool } from '../lib/pool.js';
import type { Run } from '../lib/runs.js';
import type { Workspace } from '../lib/workspace.js';
import type { Store } from '../lib/store.js';

export interface EngineDeps {
  store: Store;
  config: ConfigStore;
  paths: Paths;
  logger: Logger;
  /** the durable queues (opened by the daemon from config; the engine does not close them) */
  queue: QueueBackend;
  /** the daemon's HTTP port, given to agents as DISPATCH_PORT */
  port: () => number;
}

export interface Engine {
  start(): Promise<void>;
  /** Stops the scheduler and the pools: scan and merge jobs in flight get up to `waitMs` to end; agent runs stay detached. */
  stop(opts?: { waitMs?: number }): Promise<void>;
  wake(projectId: number): void;
  killRun(runId: string, opts?: KillOptions): Promise<boolean>;
  activeRuns(): ReturnType<AgentRuntime['activeRuns']>;
  health(): { pools: { name: string; active: number; last_error: string | null }[]; scheduler_error: string | null };
  pokeQueue(name: QueueName): void;
  /** Queue housekeeping: how long history is kept and what the last pass removed. */
  housekeeping(): { keep_days: number; last: PruneReport | null; last_error: string | null };
  readonly queue: QueueBackend;
  /** Turns new notification rows into delivery jobs. */
  readonly notifier: Notifier;
  /** Runs on runners (lib/agentRuntime.ts): the runner API's side of them. */
  readonly remote: Pick<AgentRuntime, 'claimRemote' | 'beatRemote' | 'endRemote'>;
  port(): number;
}

/**
 * How long a stop waits for scan and merge jobs in flight (a merge may be running the user's git
 * hooks): well below the 15 s after which bin/daemon.ts exits whatever is left.
 */
export const JOB_STOP_WAIT_MS = 10_000;

/** How often old job history and failed jobs are pruned (also once at start). */
const HOUSEKEEPING_MS = 6 * 3600_000;

export function createEngine(deps: EngineDeps): Engine {
  const { store, logger } = deps;
  const { queue } = deps;
  const pools = new Map<QueueName, Pool>();
  const spares = createSparePool({ store, config: deps.config, paths: deps.paths, logger });
  const workspace = (run: Run): Promise<Workspace> => {
    const parallelCoding = effectiveParallelCoding(getProject(store.db, run.project_id), deps.config.get().agents.parallel_coding);
    const env = commandEnv(deps.config.get());
    return prepareWorkspace({ store, paths: deps.paths, projectId: run.project_id, ticketId: run.ticket_id, parallelCoding, env, spares });
  };

  const scheduler = createScheduler({ db: store.db, queue, logger, onEnqueued: () => pools.get('scan')?.poke() });
  const runtime = new AgentRuntime({
    store,
    config: deps.config,
    paths: deps.paths,
    logger,
    port: deps.port,
    workspace,
    // a slot is free: the projects that can use it get a look now
    onFinalized: (f) => {
      // the run may have parked its ticket, paused dispatching, or used up a daily budget with its cost
      try {
        noteBudgetsReached(store.db, deps.config.get().budgets.daily_usd, Date.now());
      } catch (err) {
        logger.error('could not record a budget notification', { error: (err as Error).message });
      }
      notifier.poke();
      armPauseEnd();
      scheduleNextAttempt(f.run);
      wakeWaiting();
    },
  });
  /** Marks due the waiting projects that caps and budgets allow to start a run now (none while agents are paused: resuming wakes them). */
  function wakeWaiting(): void {
    if (agentsPaused(store.db) || activeCliPauses(store.db).length) return;
    if (markWaitingProjectsDue(store.db, capsFrom(deps.config.get())).length) scheduler.poke();
  }
  /**
   * When a ticket's next run must wait (after a failure or a run that did not move it), a scan of its
   * project is queued for the end of the wait: a delayed durable job, so a restart keeps it.
   */
  function scheduleNextAttempt(run: Run): void {
    try {
      const t = store.db.prepare(`SELECT id, column_id, column_entered_at, archived_at FROM tickets WHERE id = ?`).get(run.ticket_id) as
        { id: number; column_id: string; column_entered_at: number; archived_at: number | null } | undefined;
      if (!t || t.column_id !== run.column_id || t.archived_at !== null) return;
      const at = nextAttemptAt(store.db, t, backoffOf(deps.config.get().agents));
      if (at === null || at <= Date.now()) return;
      const payload = { projectId: run.project_id, wakeSeq: getHeartbeat(store.db, run.project_id)?.wake_seq ?? 0 };
      void queue.enqueue('scan', payload, { key: jobKeys.scanAfterWait(run.id), delayMs: at - Date.now() }).then(
        () => pools.get('scan')?.poke(),
        (err: unknown) => logger.error('could not queue the next attempt', { run: run.id, error: (err as Error).message }),
      );
    } catch (err) {
      logger.error('could not queue the next attempt', { run: run.id, error: (err as Error).message });
    }
  }
  /** A usage-limit pause ends by itself: the waiting projects are woken at that moment (one timer, no polling). */
  let pauseEnd: NodeJS.Timeout | null = null;
  function armPauseEnd(): void {
    if (pauseEnd) clearTimeout(pauseEnd);
    pauseEnd = null;
    const end = nextPauseEnd(store.db);
    if (end === null) return;
    pauseEnd = setTimeout(
      () => {
        clearCliPauses(store.db, { causes: [] }); // removes the ones whose time is over
        logger.info('agent CLI pause over; dispatching resumes');
        wakeWaiting();
        armPauseEnd();
      },
      Math.min(Math.max(0, end - Date.now()), 2 ** 31 - 1),
    );
    pauseEnd.unref();
  }
  // a raised (or removed) daily budget lets held-back tickets start at once, not at midnight; a
  // changed binary, login or agent environment ends a pause for a login or setup problem
  const onConfigChange = (next: Config, prev: Config) => {
    const setup = (c: Config) => JSON.stringify([c.claude_binary, c.clis, c.ai, c.agents.env]);
    const setupChanged = setup(next) !== setup(prev);
    if (setupChanged && clearCliPauses(store.db, { causes: ['auth', 'config'] })) logger.info('setting changed; agent CLI pause cleared');
    if (next.budgets.daily_usd !== prev.budgets.daily_usd || setupChanged) wakeWaiting();
  };
  const workerDeps = {
    store,
    config: deps.config,
    paths: deps.paths,
    logger,
    queue,
    runtime,
    pokeAgents: () => pools.get('agent-run')?.poke(),
    pokeMerges: () => pools.get('merge')?.poke(),
    port: deps.port,
  };
  const notifier = createNotifier({ db: store.db, queue, config: deps.config, logger, onQueued: () => pools.get('notify')?.poke() });

  let housekeeping: { last: PruneReport | null; last_error: string | null; timer: NodeJS.Timeout | null } = {
    last: null,
    last_error: null,
    timer: null,
  };
  const prune = async () => {
    try {
      const report = await pruneQueueHistory(queue, store.db, deps.config.get().queue.keep_days);
      pruneNotifications(store.db, deps.config.get().queue.keep_days);
      housekeeping = { ...housekeeping, last: report, last_error: null };
      if (report.events || report.failed_jobs)
        logger.info('queue history pruned', { events: report.events, failed_jobs: report.failed_jobs });
    } catch (err) {
      housekeeping.last_error = err instanceof Error ? err.message : String(err);
      logger.error('queue housekeeping failed', { error: housekeeping.last_error });
    }
  };

  let stopping: Promise<void> | null = null;
  return {
    queue,
    notifier,
    remote: runtime,
    port: deps.port,
    async start() {
      await recover(store.db, queue, logger);
      await pruneWorktrees({ store, paths: deps.paths, logger });
      spares.start(); // in the background
      runtime.start();
      for (const [name, build] of Object.entries(workerBuilders) as [QueueName, (typeof workerBuilders)[QueueName]][]) {
        const pool = build(workerDeps);
        pools.set(name, pool);
        pool.start();
      }
      scheduler.start();
      notifier.start();
      armPauseEnd();
      deps.config.on('change', onConfigChange);
      await prune();
      housekeeping.timer = setInterval(() => void prune(), HOUSEKEEPING_MS);
      housekeeping.timer.unref();
    },
    stop({ waitMs = JOB_STOP_WAIT_MS } = {}) {
      stopping ??= (async () => {
        if (housekeeping.timer) clearInterval(housekeeping.timer);
        if (pauseEnd) clearTimeout(pauseEnd);
        deps.config.off('change', onConfigChange);
        await scheduler.stop();
        await notifier.stop();
        await spares.stop();
        // an agent-run job lasts as long as its agent, which outlives the daemon: never waited for
        const stops = [...pools.entries()].map(([name, p]) => p.stop({ waitMs: name === 'agent-run' ? 0 : waitMs }));
        const left = await Promise.all(stops.map((s) => s.catch(() => 0)));
        if (left.some((n) => n > 0))
          logger.info('engine stopped', { jobs_left: Object.fromEntries([...pools.keys()].map((k, i) => [k, left[i]])) });
        runtime.stop();
      })();
      return stopping;
    },
    wake(projectId) {
      markDue(store.db, projectId);
      scheduler.poke();
      notifier.poke(); // a wake follows every move, also an agent's move into human
      runtime.watch();
    },
    killRun: (runId, opts) => runtime.kill(runId, opts),
    pokeQueue(name) {
      for (const pool of pools.values()) if (pool.name === name) pool.poke();
    },
    activeRuns: () => runtime.activeRuns(),
    housekeeping: () => ({ keep_days: deps.config.get().queue.keep_days, last: housekeeping.last, last_error: housekeeping.last_error }),
    health: () => ({
      pools: [...pools.values()].map((p) => ({ name: p.name, active: p.active(), last_error: p.lastError })),
      scheduler_error: scheduler.lastError,
    }),
  };
}
