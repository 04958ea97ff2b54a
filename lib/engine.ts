// The engine (SPEC 2): durable queues, the heartbeat scheduler, the worker pools and the agent
// runtime, wired for the daemon. Start order matters: recovery MUST finish before any pool takes a
// job. A wake marks the project due in the database (the durable record) and pokes the scheduler
// (the fast path), so a ticket entering an agent column reaches a spawn in milliseconds.
import { AgentRuntime } from './agentRuntime.js';
import { markDue, markWaitingProjectsDue } from './heartbeats.js';
import { openQueues, type QueueName, type Queues } from './queues.js';
import { recover } from './recovery.js';
import { createScheduler } from './scheduler.js';
import { prepareWorkspace, pruneWorktrees } from './workspace.js';
import { workerBuilders, type WorkerName } from '../workers/index.js';
import type { ConfigStore } from './config.js';
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
  killRun(runId: string): Promise<boolean>;
  activeRuns(): ReturnType<AgentRuntime['activeRuns']>;
  health(): { pools: { name: string; active: number; last_error: string | null }[]; scheduler_error: string | null };
  pokeQueue(name: QueueName): void;
  readonly queues: Queues;
}

export function createEngine(deps: EngineDeps): Engine {
  const { store, logger } = deps;
  const queues = openQueues(store.db);
  const pools = new Map<WorkerName, Pool>();
  const workspace = (run: Run): Promise<Workspace> =>
    prepareWorkspace({ store, paths: deps.paths, projectId: run.project_id, ticketId: run.ticket_id, parallelCoding: deps.config.get().agents.parallel_coding });

  const scheduler = createScheduler({ db: store.db, queues, logger, onEnqueued: () => pools.get('scan')?.poke() });
  const runtime = new AgentRuntime({
    store,
    config: deps.config,
    paths: deps.paths,
    logger,
    port: deps.port,
    workspace,
    onFinalized: () => {
      // a slot is free: the projects that can use it get a look now
      const a = deps.config.get().agents;
      if (markWaitingProjectsDue(store.db, { global: a.max_concurrent_global, perProject: a.max_concurrent_per_project, parallelCoding: a.parallel_coding }).length) scheduler.poke();
    },
  });
  const workerDeps = { store, config: deps.config, paths: deps.paths, logger, queues, runtime, pokeAgents: () => pools.get('agentRun')?.poke(), pokeMerges: () => pools.get('merge')?.poke() };

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
    },
    stop() {
      stopping ??= (async () => {
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
    killRun: (runId) => runtime.kill(runId),
    pokeQueue(name) {
      for (const pool of pools.values()) if (pool.name === name) pool.poke();
    },
    activeRuns: () => runtime.activeRuns(),
    health: () => ({
      pools: [...pools.values()].map((p) => ({ name: p.name, active: p.active(), last_error: p.lastError })),
      scheduler_error: scheduler.lastError,
    }),
  };
}
