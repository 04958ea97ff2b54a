// What routes get to work with. Routes validate input, call lib/, and shape the answer; they
// never hold SQL. `engine` is the running daemon's scheduler and worker pools.
import type { ConfigStore } from '../lib/config.js';
import type { Paths } from '../lib/paths.js';
import type { Store } from '../lib/store.js';
import type { QueueBackend, QueueName } from '../lib/queue/index.js';
import type { AgentRuntime, KillOptions } from '../lib/agentRuntime.js';
import type { HealthReport } from '../lib/health.js';

export interface EngineControls {
  /** Scan a project now (a ticket entered one of its agent columns). */
  wake(projectId: number): void;
  /** Stops a running agent run with its whole process tree; false when it is not running here. */
  killRun(runId: string, opts?: KillOptions): Promise<boolean>;
  /** Agent runs this daemon is driving now. */
  activeRuns(): { id: string; pid: number | null; ticket_id: number; agent_type_id: string; started_at: number | null }[];
  /** The pools' state, for the queue inspector. */
  health(): { pools: { name: string; active: number; last_error: string | null }[]; scheduler_error: string | null };
  /** Makes a queue's pool look for jobs now (after a retry from the inspector). */
  pokeQueue(name: QueueName): void;
  /** Queue housekeeping: how long history is kept and what the last pass removed. */
  housekeeping(): { keep_days: number; last: { at: number; events: number; failed_jobs: number } | null; last_error: string | null };
  /** The durable queues (whichever backend holds them), for the inspector. */
  readonly queue: QueueBackend;
  /** Runs on runners: offers taken, heartbeats and ends (the runner API, docs/RUNNERS.md). */
  readonly remote: RemoteRunControls;
  /** The daemon's HTTP port on 127.0.0.1 (the ticket tool run for a remote agent pings it). */
  port(): number;
}

export type RemoteRunControls = Pick<AgentRuntime, 'claimRemote' | 'beatRemote' | 'endRemote'>;

/** The health checks' last results, and a way to run them now (lib/health.ts HealthMonitor). */
export interface HealthControls {
  report(): HealthReport;
  check(): Promise<HealthReport>;
}

export interface AppContext {
  store: Store;
  config: ConfigStore;
  paths: Paths;
  engine: EngineControls;
  health: HealthControls;
  version: string;
  startedAt: number;
}
