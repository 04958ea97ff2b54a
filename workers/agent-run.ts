// The agent-run worker: one job per reserved run. The pool's concurrency is the global cap (read
// on every pass, so a settings change applies at once); a per-project p-limit bounds each project
// in-process as well. The reservation in the runs table is what makes both caps exact (lib/caps.ts).
import pLimit, { type LimitFunction } from 'p-limit';
import { createPool, type Pool } from '../lib/pool.js';
import { agentRunPayload } from '../lib/queue/index.js';
import { getRun } from '../lib/runs.js';
import type { WorkerDeps } from './types.js';

export function buildAgentRunWorker(deps: WorkerDeps): Pool {
  const perProject = new Map<number, LimitFunction>();
  const limiterFor = (projectId: number): LimitFunction => {
    const cap = deps.config.get().agents.max_concurrent_per_project;
    let limiter = perProject.get(projectId);
    if (!limiter) perProject.set(projectId, (limiter = pLimit(cap)));
    limiter.concurrency = cap;
    return limiter;
  };
  return createPool({
    name: 'agent-run',
    schema: agentRunPayload,
    backend: deps.queue,
    logger: deps.logger,
    concurrency: () => deps.config.get().agents.max_concurrent_global,
    handler: async (data, job) => {
      const run = getRun(deps.store.db, data.runId);
      if (!run) return; // deleted with its ticket: nothing to do
      await limiterFor(run.project_id)(() => deps.runtime.drive(run.id, job.id));
    },
  });
}
