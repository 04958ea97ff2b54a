// The typed registry of workers. Each worker file exports a builder that returns a pool over its
// queue; the engine (daemon/engine.ts) starts them after recovery and stops them on shutdown.
import type { Pool } from '../lib/pool.js';
import type { WorkerDeps } from './types.js';
import { buildAgentRunWorker } from './agentRun.js';
import { buildScanWorker } from './scan.js';
import { buildMergeWorker } from './merge.js';

export const workerBuilders = {
  scan: buildScanWorker,
  agentRun: buildAgentRunWorker,
  merge: buildMergeWorker,
} as const satisfies Record<string, (deps: WorkerDeps) => Pool>;

export type WorkerName = keyof typeof workerBuilders;
