// The engine: durable queues, the heartbeat scheduler, the worker pools and the agent
// runtime, wired for the daemon. Start order matters: recovery MUST finish before any pool takes a
// job. A wake marks the project due in the database (the durable record) and pokes the scheduler
// (the fast path), so a ticket entering an agent column reaches a spawn in milliseconds.
import { AgentRuntime, type KillOptions } from './agentRuntime.js';
import { agentsPaused } from './globalPause.js';
import { activeCliPauses, clearCliPauses, nextPauseEnd } from './cliPause.js';
import { backoffOf, nextAttemptAt } from './runCause.js';
import { getHeartbeat } from './heartbeats.js';
import { markDue, markWaitingProjectsDue } from './heartbeats.js';
import { jobKeys, openQueues, pruneQueueHistory, type PruneReport, type QueueName, type Queues } from './queues.js';
import { recover } from './recovery.js';
import { createScheduler } from './scheduler.js';
import { prepareWorkspace, pruneWorktrees } from './workspace.js';
import { commandEnv } from './checks.js';
import { effectiveParallelCoding, getProject } from './projects.js';
import { workerBuilders, type WorkerName } from '../workers/index.js';
import type { Config, ConfigStore } from './config.js';
import type { Logger } from './logger.js';
import type { Paths } from './paths.js';
import type { Pool } from './pool.js';
import type { Run } from './runs.js';
import type { Workspace } from './workspace.js';
import type { Store } from './store.js';

export interface EngineDeps {
  store: Store;
  config: ConfigStore;
  paths: Paths;
  logger: Logger;
  /** the daemon's HTTP port, given to agents as DISPATCH_PORT */
  port: () => number;
}

export interface Engine {
  start(): Promise<void>;
  stop(): Promise<void>;
  wake(projectId: number): void;
  killRun(runId: string, opts?: KillOptions): Promise<boolean>;
  activeRuns(): ReturnType<AgentRuntime['activeRuns']>;
  health(): { pools: { name: string; active: number; last_error: string | null }[]; scheduler_error: string | null };
  pokeQueue(name: QueueName): void;
  /** Queue housekeeping: how long history is kept and what the last pass removed. */
  housekeeping(): { keep_days: number; last: PruneReport | null; last_error: string | null };
  readonly queues: Queues;
}

/** How often old job history and failed jobs are pruned (also once at start). */
const HOUSEKEEPING_MS = 6 * 3600_000;

export function createEngine(deps: EngineDeps): Engine {
  const { store, logger } = deps;
  const queues = openQueues(store.db);
  const pools = new Map<WorkerName, Pool>();
  const workspace = (run: Run): Promise<Workspace> => {
    const parallelCoding = effectiveParallelCoding(getProject(store.db, run.project_id), deps.config.get().agents.parallel_coding);
    const env = commandEnv(deps.config.get());
    return prepareWorkspace({ store, paths: deps.paths, projectId: run.project_id, ticketId: run.ticket_id, parallelCoding, env });
  };

  const scheduler = createScheduler({ db: store.db, queues, logger, onEnqueued: () => pools.get('scan')?.poke() });
  const runtime = new AgentRuntime({
    store,
    config: deps.config,
    paths: deps.paths,
    logger,
    port: deps.port,
    workspace,
    // a slot is free: the projects that can use it get a look now
    onFinalized: (f) => {
      armPauseEnd();
      scheduleNextAttempt(f.run);
      wakeWaiting();
    },
  });
  /** Marks due the waiting projects that caps and budgets allow to start a run now (none while agents are paused: resuming wakes them). */
  function wakeWaiting(): void {
    if (agentsPaused(store.db) || activeCliPauses(store.db).length) return;
    const { agents: a, budgets } = deps.config.get();
    const caps = {
      global: a.max_concurrent_global,
      perProject: a.max_concurrent_per_project,
      parallelCoding: a.parallel_coding, // the default; a project's own setting is read with its row
      dailyBudgetUsd: budgets.daily_usd,
    };
    if (markWaitingProjectsDue(store.db, caps).length) scheduler.poke();
  }
  /**
   * When a ticket's next run must wait (after a failure or a run that did not move it), a scan of its
   * project is queued for the end of the wait: a delayed durable job, so a restart keeps it.
   */
  function scheduleNextAttempt(run: Run): void {
    try {
      const t = store.db.prepare(`SELECT id, column_id, column_entered_at, archived_at FROM tickets WHERE id = ?`).get(run.ticket_id) as
        | { id: number; column_id: string; column_entered_at: number; archived_at: number | null }
        | undefined;
      if (!t || t.column_id !== run.column_id || t.archived_at !== null) return;
      const at = nextAttemptAt(store.db, t, backoffOf(deps.config.get().agents));
      if (at === null || at <= Date.now()) return;
      const payload = { projectId: run.project_id, wakeSeq: getHeartbeat(store.db, run.project_id)?.wake_seq ?? 0 };
      void queues.scan
        .enqueue(payload, { idempotencyKey: jobKeys.scanAfterWait(run.id), delayMs: at - Date.now() })
        .then(() => pools.get('scan')?.poke());
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
    const setup = (c: Config) => JSON.stringify([c.claude_binary, c.ai, c.agents.env]);
    const setupChanged = setup(next) !== setup(prev);
    if (setupChanged && clearCliPauses(store.db, { causes: ['auth', 'config'] })) logger.info('setting changed; agent CLI pause cleared');
    if (next.budgets.daily_usd !== prev.budgets.daily_usd || setupChanged) wakeWaiting();
  };
  const workerDeps = { store, config: deps.config, paths: deps.paths, logger, queues, runtime, pokeAgents: () => pools.get('agentRun')?.poke(), pokeMerges: () => pools.get('merge')?.poke() };

  let housekeeping: { last: PruneReport | null; last_error: string | null; timer: NodeJS.Timeout | null } = { last: null, last_error: null, timer: null };
  const prune = () => {
    try {
      const report = pruneQueueHistory(store.db, deps.config.get().queue.keep_days);
      housekeeping = { ...housekeeping, last: report, last_error: null };
      if (report.events || report.failed_jobs) logger.info('queue history pruned', { events: report.events, failed_jobs: report.failed_jobs });
    } catch (err) {
      housekeeping.last_error = err instanceof Error ? err.message : String(err);
      logger.error('queue housekeeping failed', { error: housekeeping.last_error });
    }
  };

  let stopping: Promise<void> | null = null;
  return {
    queues,
    async start() {
      await recover(store.db, queues, logger);
      await pruneWorktrees({ store, paths: deps.paths, logger });
      runtime.start();
      for (const [name, build] of Object.entries(workerBuilders) as [WorkerName, (typeof workerBuilders)[WorkerName]][]) {
        const pool = build(workerDeps);
        pools.set(name, pool);
        pool.start();
      }
      scheduler.start();
      armPauseEnd();
      deps.config.on('change', onConfigChange);
      prune();
      housekeeping.timer = setInterval(prune, HOUSEKEEPING_MS);
      housekeeping.timer.unref();
    },
    stop() {
      stopping ??= (async () => {
        if (housekeeping.timer) clearInterval(housekeeping.timer);
        if (pauseEnd) clearTimeout(pauseEnd);
        deps.config.off('change', onConfigChange);
        await scheduler.stop();
        await Promise.all([...pools.values()].map((p) => p.stop().catch(() => {})));
        runtime.stop();
      })();
      return stopping;
    },
    wake(projectId) {
      markDue(store.db, projectId);
      scheduler.poke();
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
