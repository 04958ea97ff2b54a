// The engine: heartbeat scheduler, durable queues and worker pools (SPEC 2). This module wires
// them together for the daemon; see lib/scheduler.ts, lib/queues.ts and workers/.
import type { ConfigStore } from './config.js';
import type { Logger } from './logger.js';
import type { Paths } from './paths.js';
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
}

export function createEngine(_deps: EngineDeps): Engine {
  return {
    async start() {},
    async stop() {},
    wake() {},
    async killRun() {
      return false;
    },
  };
}
