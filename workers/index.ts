// The typed registry of workers, keyed by queue name. Each worker file exports a builder that
// returns a pool over its queue; the engine starts them after recovery and stops them on shutdown.
import type { AgentRuntime } from '../lib/agentRuntime.js';
import type { ConfigStore } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Paths } from '../lib/paths.js';
import type { Pool } from '../lib/pool.js';
import type { QueueBackend, QueueName } from '../lib/queue/index.js';
import type { Store } from '../lib/store.js';
import { buildAgentRunWorker } from './agent-run.js';
import { buildScanWorker } from './scan.js';
import { buildMergeWorker } from './merge.js';
import { buildNotifyWorker } from './notify.js';

export interface WorkerDeps {
  store: Store;
  config: ConfigStore;
  paths: Paths;
  logger: Logger;
  queue: QueueBackend;
  runtime: AgentRuntime;
  pokeAgents(): void;
  pokeMerges(): void;
  /** the daemon's HTTP port (links in notifications) */
  port(): number;
}

export const workerBuilders = {
  scan: buildScanWorker,
  'agent-run': buildAgentRunWorker,
  merge: buildMergeWorker,
  notify: buildNotifyWorker,
} as const satisfies Record<QueueName, (deps: WorkerDeps) => Pool>;
