// What every worker is built from. Apart from workers/index.ts (the registry that imports each
// worker), so a worker's import of these types does not make a cycle with the registry.
import type { AgentRuntime } from '../lib/agentRuntime.js';
import type { ConfigStore } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Paths } from '../lib/paths.js';
import type { QueueBackend } from '../lib/queue/index.js';
import type { Store } from '../lib/store.js';

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
