// What routes get to work with. Routes validate input, call lib/, and shape the answer; they
// never hold SQL. `engine` is the running daemon's scheduler and worker pools.
import type { ConfigStore } from '../lib/config.js';
import type { Paths } from '../lib/paths.js';
import type { Store } from '../lib/store.js';

export interface EngineControls {
  /** Scan a project now (a ticket entered one of its agent columns). */
  wake(projectId: number): void;
  /** Stops a running agent run with its whole process tree; false when it is not running here. */
  killRun(runId: string): Promise<boolean>;
}

export interface AppContext {
  store: Store;
  config: ConfigStore;
  paths: Paths;
  engine: EngineControls;
  version: string;
  startedAt: number;
}
