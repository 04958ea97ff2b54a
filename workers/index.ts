// The typed registry of workers, keyed by queue name. Each worker file exports a builder that
// returns a pool over its queue; the engine (daemon/engine.ts) starts them after recovery and stops them on shutdown.
import type { Pool } from '../lib/pool.js';
import type { QueueName } from '../lib/queue/index.js';
import type { WorkerDeps } from './types.js';
import { buildAgentRunWorker } from './agent-run.js';
import { buildScanWorker } from './scan.js';
import { buildMergeWorker } from './merge.js';
import { buildNotifyWorker } from './notify.js';

export const workerBuilders = {
  scan: buildScanWorker,
  'agent-run': buildAgentRunWorker,
  merge: buildMergeWorker,
  notify: buildNotifyWorker,
} as const satisfies Record<QueueName, (deps: WorkerDeps) => Pool>;
