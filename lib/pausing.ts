// Stop means stop: pausing a project (optionally stopping its running agents), archiving one (which
// always stops them), and the global pause of every agent. A run is stopped through the runtime's
// kill path, so it is finalized as `killed` exactly once; with `keepInColumn` its ticket stays in
// its column, unclaimed, and the run counts toward no retry or circuit breaker. The status or the
// switch is written first: from then on reserveRun refuses new runs, so none can start between
// the change and the stopping of the runs that were live.
import { setProjectStatus, getProject, type Project } from './projects.js';
import { getGlobalPause, setGlobalPause, type GlobalPause } from './globalPause.js';
import { clearCliPauses, cliPauseView } from './cliPause.js';
import { markWaitingProjectsDue } from './heartbeats.js';
import { capsFrom } from './caps.js';
import type { KillOptions } from './agentRuntime.js';
import type { Config } from './config.js';
import type { Db } from './db/connection.js';
import type { Store } from './store.js';

/** What this module needs from the engine. */
export interface RunControls {
  killRun(runId: string, opts?: KillOptions): Promise<boolean>;
  wake(projectId: number): void;
}

/** Ids of the live (queued or running) runs of one project, or of every project. */
export function liveRunIds(db: Db, projectId?: number): string[] {
  return db
    .prepare(
      `SELECT id FROM runs WHERE status IN ('queued', 'running') AND (@project IS NULL OR project_id = @project) ORDER BY created_at`,
    )
    .pluck()
    .all({ project: projectId ?? null }) as string[];
}

/** Live runs per project id (projects without one are absent). */
export function liveRunCounts(db: Db): Map<number, number> {
  const rows = db.prepare(`SELECT project_id, COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running') GROUP BY project_id`).all() as {
    project_id: number;
    n: number;
  }[];
  return new Map(rows.map((r) => [r.project_id, r.n]));
}

/** Stops the runs, leaving their tickets in their columns; returns how many were stopped. */
async function stopRuns(engine: RunControls, ids: string[], why: string): Promise<number> {
  const stopped = await Promise.all(ids.map((id) => engine.killRun(id, { why, keepInColumn: true })));
  return stopped.filter(Boolean).length;
}

export interface StatusChange {
  project: Project;
  /** runs stopped by the change */
  stopped: number;
}

/** Pauses a project: no new runs; with `stopRunning` its running agents are stopped too. */
export async function pauseProject(
  store: Store,
  engine: RunControls,
  ref: string | number,
  opts: { stopRunning: boolean },
): Promise<StatusChange> {
  const project = setProjectStatus(store, ref, 'dormant');
  const why = `the project ${project.abbreviation} was paused`;
  const stopped = opts.stopRunning ? await stopRuns(engine, liveRunIds(store.db, project.id), why) : 0;
  return { project: getProject(store.db, project.id), stopped };
}

/** Resumes a paused (or restores an archived) project; its waiting tickets are looked at now. */
export function resumeProject(store: Store, ref: string | number): StatusChange {
  return { project: setProjectStatus(store, ref, 'active'), stopped: 0 };
}

/** The question asked before archiving: "Archive web? 2 agents are running on it and will be stopped." */
export function archiveQuestion(name: string, running: number): string {
  if (running === 0) return `Archive ${name}? No agent is running on it.`;
  return `Archive ${name}? ${running === 1 ? '1 agent is' : `${running} agents are`} running on it and will be stopped.`;
}

/** Archives a project and stops its running agents. */
export async function archiveProject(store: Store, engine: RunControls, ref: string | number): Promise<StatusChange> {
  const project = setProjectStatus(store, ref, 'archived');
  const stopped = await stopRuns(engine, liveRunIds(store.db, project.id), `the project ${project.abbreviation} was archived`);
  return { project: getProject(store.db, project.id), stopped };
}

export interface PauseState {
  paused: GlobalPause | null;
  /** agent CLI pauses in force (a usage limit, a login or setup problem) */
  cli_paused: ReturnType<typeof cliPauseView>;
  /** live runs now (after stopping, the ones that were not stopped) */
  running: number;
  stopped: number;
}

export function pauseState(db: Db): Omit<PauseState, 'stopped'> {
  return { paused: getGlobalPause(db), cli_paused: cliPauseView(db), running: liveRunIds(db).length };
}

/** Pauses every agent: no new run anywhere; with `stopRunning` every running agent is stopped. */
export async function pauseAll(store: Store, engine: RunControls, opts: { stopRunning: boolean }): Promise<PauseState> {
  setGlobalPause(store.db, true);
  const stopped = opts.stopRunning ? await stopRuns(engine, liveRunIds(store.db), 'all agents were paused') : 0;
  return { ...pauseState(store.db), stopped };
}

/**
 * Ends the global pause and any agent CLI pause (a usage limit, a login or setup problem: the banner's
 * Retry), and wakes, at once, the projects with tickets waiting that the caps let start.
 */
export function resumeAll(store: Store, engine: RunControls, config: Config): PauseState {
  store.db
    .transaction(() => {
      setGlobalPause(store.db, false);
      clearCliPauses(store.db);
    })
    .immediate();
  for (const id of markWaitingProjectsDue(store.db, capsFrom(config))) engine.wake(id);
  return { ...pauseState(store.db), stopped: 0 };
}
