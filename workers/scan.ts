// The scan worker: one project's heartbeat. It first releases claims whose run is not live (they
// would strand their tickets), then reserves runs for unclaimed tickets in agent columns
// (most urgent first) until a cap is reached, hands each reservation to the agent-run queue,
// enqueues a merge for each done ticket whose branch is not merged yet, and records the scan so
// the heartbeat backs off when there was nothing to do (or only tickets a daily budget holds back).
import { recordScan, getHeartbeat } from '../lib/heartbeats.js';
import { claimableTickets, releaseStaleClaims, reserveRun } from '../lib/runs.js';
import { effectiveParallelCoding, findProject } from '../lib/projects.js';
import { canBranch } from '../lib/workspace.js';
import { mergeCandidates } from '../lib/tickets.js';
import { priorityRank } from '../lib/checks.js';
import { nextLocalMidnight } from '../lib/costs.js';
import { noteBudgetsReached } from '../lib/budget.js';
import { capsFrom } from '../lib/caps.js';
import { createPool, PermanentError, type Pool } from '../lib/pool.js';
import { jobKeys, scanPayload, type ScanPayload } from '../lib/queue/index.js';
import type { WorkerDeps } from './types.js';

/** Reservations that no other ticket of the scan would get either: the scan stops there. */
const BLOCKING = new Set(['global-cap', 'project-cap', 'paused', 'budget', 'cli-paused']);

export interface ScanResult {
  waiting: number;
  reserved: string[];
  blockedBy: string | null;
}

async function scanProject(deps: WorkerDeps, p: ScanPayload): Promise<ScanResult> {
  const { db } = deps.store;
  const cfg = deps.config.get();
  // a project deleted after its scan was queued: retrying cannot bring it back
  const project = findProject(db, p.projectId);
  if (!project) throw new PermanentError(`project not found: ${p.projectId}`);
  const result: ScanResult = { waiting: 0, reserved: [], blockedBy: null };
  if (project.status !== 'active') return result;
  releaseStaleClaims(db, project.id); // before reading the wake sequence: its wake is this scan
  const seq = getHeartbeat(db, project.id)?.wake_seq ?? p.wakeSeq;
  const waiting = claimableTickets(db, project.id);
  result.waiting = waiting.length;
  const caps = capsFrom(cfg);
  // a usage limit: look again when it ends (the engine also wakes waiting projects then)
  let lookAgainAt: number | null = null;
  // with parallel coding on, a folder that is not a repository with a commit still has its agents
  // share it, so the serial rule must hold there too
  const inFolder = waiting.length > 0 && effectiveParallelCoding(project, caps.parallelCoding) && !(await canBranch(project.path));
  for (const t of waiting) {
    const args = { ticketId: t.ticket_id, columnId: t.column_id, agentTypeId: t.agent_type_id, model: t.model, caps, inFolder };
    const r = reserveRun(deps.store, args);
    if (r.kind === 'reserved') {
      result.reserved.push(r.run.id);
      await deps.queue.enqueue('agent-run', { runId: r.run.id }, { key: jobKeys.agentRun({ runId: r.run.id }) });
    } else if (BLOCKING.has(r.kind)) {
      result.blockedBy = r.kind;
      if (r.kind === 'cli-paused') lookAgainAt = r.pause.until;
      break;
    }
  }
  const merges = mergeCandidates(db, project.id);
  // the merge queue's order: priority, then time in done (a job's age)
  for (const m of merges) {
    const key = jobKeys.merge({ ticketId: m.id }, m.column_entered_at);
    await deps.queue.enqueue('merge', { ticketId: m.id }, { key, priority: priorityRank(m.priority) });
  }
  if (merges.length) deps.pokeMerges();
  // while agents are paused, waiting tickets are no work: the heartbeat backs off, and resuming wakes
  // the project. Tickets held back by a used-up budget are not work either: back off, but look again
  // at midnight, when the day's spend starts from 0 (a raised budget wakes the project before that)
  const now = Date.now();
  const budgetHeld = result.blockedBy === 'budget';
  if (budgetHeld) noteBudgetsReached(db, cfg.budgets.daily_usd, now);
  const held = result.blockedBy === 'paused' || result.blockedBy === 'cli-paused';
  const foundWork = (waiting.length > 0 && !budgetHeld && !held) || merges.length > 0;
  recordScan(db, project.id, seq, foundWork, cfg.heartbeat, now, budgetHeld ? nextLocalMidnight(now) : lookAgainAt);
  if (result.reserved.length) deps.pokeAgents();
  return result;
}

export function buildScanWorker(deps: WorkerDeps): Pool {
  return createPool({
    name: 'scan',
    schema: scanPayload,
    backend: deps.queue,
    logger: deps.logger,
    // as many scans at once as runs may start: when a usage limit ends (or agents resume) every
    // waiting project is woken at once, and with two scans at a time the agents started by the first
    // scans took the CPU from the rest, so filling the global cap took over a second (BENCHMARKS.md)
    concurrency: () => deps.config.get().agents.max_concurrent_global,
    handler: async (data) => {
      await scanProject(deps, data);
    },
  });
}
