// The caps on agent runs, in one place: how they are read from config (`capsFrom`) and the SQL
// fragments that both the reservation (lib/runs.ts reserveRun, the authority) and the wake of
// waiting projects (lib/heartbeats.ts markWaitingProjectsDue, a cheap prediction of who could start)
// use, so the two cannot drift apart.
//
// How the worker pools relate: their p-limit concurrency (the agent-run pool at the global cap, a
// per-project limiter at the per-project cap) only bounds how many handlers run at once in this
// process. What a run may start is decided by reserveRun's IMMEDIATE transaction, which counts live
// runs in the runs table; a run only reaches a pool after it was reserved there.
import { backoffOf, type Backoff } from './runCause.js';
import { LIVE_RUN_STATUSES } from './ticketRules.js';
import type { Config } from './config.js';

export interface Caps {
  global: number;
  perProject: number;
  /**
   * agents.parallel_coding, the default of projects without their own setting. A project whose
   * agents work in its folder (the setting off) runs one agent that edits the working tree at a time.
   */
  parallelCoding: boolean;
  /** budgets.daily_usd: no new run once today's recorded cost reaches it (0 or absent = no budget) */
  dailyBudgetUsd?: number;
  /** runs a ticket may get between two stays in human (agents.max_runs_per_ticket) */
  perTicket: number;
  /** the waits between runs of one ticket (absent: none) */
  backoff?: Backoff;
}

/** The caps a wake looks at: who could start a run now (the per-ticket rules are checked by the scan). */
export type WakeCaps = Pick<Caps, 'global' | 'perProject' | 'parallelCoding' | 'dailyBudgetUsd'>;

export function capsFrom(config: Pick<Config, 'agents' | 'budgets'>): Caps {
  const { agents, budgets } = config;
  return {
    global: agents.max_concurrent_global,
    perProject: agents.max_concurrent_per_project,
    parallelCoding: agents.parallel_coding, // the default; a project's own setting is read with its row
    dailyBudgetUsd: budgets.daily_usd,
    perTicket: agents.max_runs_per_ticket,
    backoff: backoffOf(agents),
  };
}

/** A run that holds a slot under the caps (over `runs`, unaliased or aliased `r`: give the prefix). */
export const liveRun = (alias = ''): string =>
  `${alias ? `${alias}.` : ''}status IN (${LIVE_RUN_STATUSES.map((s) => `'${s}'`).join(', ')})`;

/**
 * A ticket's priority as a number, most urgent first (over `tickets t`). The same expression as the
 * tickets_inbox_order index, so a list ordered by it can walk that index.
 */
export const PRIORITY_RANK = `(CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END)`;

/**
 * The serial rule's test of an agent type: 1 when the agent type whose id is the SQL expression
 * `agentTypeId` edits the working tree, else 0 (an unknown type counts as not editing).
 */
export const editsWorkingTree = (agentTypeId: string): string =>
  `COALESCE((SELECT edits_working_tree FROM agent_types WHERE id = ${agentTypeId}), 0)`;
