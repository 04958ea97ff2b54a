// The agent runtime: takes a reserved run to its end. It spawns the agent (or adopts one that
// survived a daemon restart), enforces the agent type's timeout, stops runs whose ticket left
// their column (an agent that finished but never exits), lets the user kill a run, and finalizes every run exactly once from its
// exit and transcript. Agents are detached: stopping the daemon leaves them running, and the next
// daemon adopts them by pid (checked against the process start time, so a reused pid is not ours).
import fs from 'node:fs';
import path from 'node:path';
import { getAgentType, readPrompt } from './agentTypes.js';
import { agentEnv, checkTicketTool, isAgentAlive, killTree, RunProcesses, spawnAgent, taskMessage, trackRuns } from './agentProcess.js';
import {
  finalizeRun,
  getRun,
  issueRunSecret,
  liveRunChecks,
  markRemoteRunStarted,
  markRunStarted,
  recordBeat,
  RUN_STATUS,
  type FinalStatus,
  type Finalized,
  type Run,
  type RunOutcome,
} from './runs.js';
import { readTranscriptEnd } from './transcript.js';
import { lastRunWithoutMove } from './runCause.js';
import { binarySetting, cliAdapter, cliBinary } from './clis/index.js';
import { storageError } from './db/connection.js';
import { getProject, type Project } from './projects.js';
import { addSystemComment, requireTicket, undoRunMove } from './tickets.js';
import { canBranch, ticketBranch } from './workspace.js';
import { detectMainBranch } from './git.js';
import { fetchTicketBranch, pushTicketBranch } from './remoteBranch.js';
import { assignRun, touchRunner, type Runner } from './runners.js';
import { ConflictError, UserError } from './errors.js';
import type { ConfigStore } from './config.js';
import type { Logger } from './logger.js';
import type { Paths } from './paths.js';
import type { Store } from './store.js';
import type { Workspace } from './workspace.js';
import type { RunSpec, TranscriptPiece } from './runner/protocol.js';

/** How long an agent that moved its own ticket may take to exit before it is stopped. */
export const SELF_MOVE_GRACE_MS = 15_000;
/** How often live runs are checked against their timeout and their ticket's column. */
const WATCH_INTERVAL_MS = 1_000;
/** How often the processes of live agents are recorded (a read of all of /proc), in watch ticks. */
const TRACK_EVERY_TICKS = 2;
const MAX_TIMEOUT_MS = 7 * 24 * 3600_000;
/** The longest wait between attempts to record a run's end on a disk that refuses writes. */
const MAX_FINALIZE_WAIT_MS = 30_000;

export interface RuntimeDeps {
  store: Store;
  config: ConfigStore;
  paths: Paths;
  logger: Logger;
  port: () => number;
  /** where the run's agent works; the git layer gives a ticket worktree when parallel coding is on */
  workspace: (run: Run) => Promise<Workspace>;
  onFinalized: (f: Finalized) => void;
  env?: NodeJS.ProcessEnv;
}

export interface KillOptions {
  /** why the run is stopped, recorded as its error (default: stopped by the user) */
  why?: string;
  /** leave the ticket in its column, unclaimed, instead of parking it in human (a pause, an archive) */
  keepInColumn?: boolean;
}

/** How a run on a runner came to its end, as the runtime learns it. */
type RemoteEnd =
  | { kind: 'end'; exitCode: number | null; signal: string | null; push: { ok: boolean; error?: string } }
  /** the runner fell silent longer than the lease, or did not report the end after it was told to stop */
  | { kind: 'lost'; why: string }
  /** stopped before any runner took it */
  | { kind: 'withdrawn' };

interface Remote {
  /** the offer, while no runner has taken it; null once taken (or for a run adopted after a restart) */
  spec: RunSpec | null;
  runnerId: number | null;
  /** the last heartbeat (or the claim), in ms; a restarted daemon counts from its own start */
  lastBeat: number;
  /** when a beat first answered `stop` */
  stopSentAt: number | null;
  finished: boolean;
  jobId: string | null;
  finish: (end: RemoteEnd) => void;
  ended: Promise<RemoteEnd>;
}

/** The longest a claim call waits for an offer (the runner then asks again). */
export const CLAIM_WAIT_MAX_MS = 20_000;

interface Active {
  run: Run;
  /** set for a run of a project whose agents run on runners */
  remote: Remote | null;
  pid: number | null;
  procStart: string | null;
  stop: { status: FinalStatus; why: string; keepInColumn?: boolean } | null;
  /** every process the agent starts, ended with the run */
  procs: RunProcesses | null;
  /** the agent moved its own ticket; it gets a grace period to exit */
  selfMoved: boolean;
  done: Promise<void>;
  timers: NodeJS.Timeout[];
}

export class AgentRuntime {
  private readonly active = new Map<string, Active>();
  private watchTimer: NodeJS.Timeout | null = null;
  private ticks = 0;
  private started = false;
  /** when this runtime started: a restarted daemon gives the runners of its live remote runs one lease from here */
  private startedAt = Date.now();
  /** claim calls waiting for an offer */
  private readonly claimWaiters = new Set<() => void>();

  constructor(private readonly deps: RuntimeDeps) {}

  start(): void {
    this.started = true;
    this.startedAt = Date.now();
    this.armWatch();
  }

  /** Forgets timers; agents keep running and are adopted by the next daemon. */
  stop(): void {
    this.started = false;
    this.disarmWatch();
    for (const a of this.active.values()) a.timers.forEach(clearTimeout);
  }

  /** The periodic watch runs only while a run is live: an idle daemon must not wake every second (BENCHMARKS.md). */
  private armWatch(): void {
    if (!this.started || this.watchTimer || this.active.size === 0) return;
    this.watchTimer = setInterval(() => {
      this.watch();
      if (++this.ticks % TRACK_EVERY_TICKS === 0) this.track();
    }, WATCH_INTERVAL_MS);
    this.watchTimer.unref();
  }

  private disarmWatch(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = null;
  }

  /** Records the processes of every live agent, so those that leave its tree still end with the run. */
  private track(): void {
    try {
      trackRuns([...this.active.values()].flatMap((a) => (a.procs && !a.stop ? [a.procs] : [])));
    } catch (err) {
      this.deps.logger.error('tracking agent processes failed', { error: (err as Error).message });
    }
  }

  /** Ends every process the run's agent left behind; `longGone`: the agent ended while the daemon was down. */
  private async endProcesses(entry: Active, longGone = false): Promise<void> {
    if (!entry.procs) return;
    const killed = await entry.procs.end(longGone);
    if (killed) this.deps.logger.info('stopped processes the agent left running', { run: entry.run.id, count: killed });
  }

  activeRuns(): { id: string; pid: number | null; ticket_id: number; agent_type_id: string; started_at: number | null }[] {
    return [...this.active.values()].map((a) => ({
      id: a.run.id,
      pid: a.pid,
      ticket_id: a.run.ticket_id,
      agent_type_id: a.run.agent_type_id,
      started_at: a.run.started_at,
    }));
  }

  /**
   * Drives one run to its end: spawns a queued run, adopts or buries a running one, and returns
   * at once for a finished one. Safe to call twice for the same run (the second call waits).
   */
  async drive(runId: string, jobId: string | null): Promise<void> {
    const existing = this.active.get(runId);
    if (existing) return existing.done;
    const run = getRun(this.deps.store.db, runId);
    if (!run || (run.status !== RUN_STATUS.queued && run.status !== RUN_STATUS.running)) return;
    const procs = run.pid ? new RunProcesses(run.id, run.pid, run.proc_start) : null;
    const entry: Active = {
      run,
      remote: null,
      pid: run.pid,
      procStart: run.proc_start,
      stop: null,
      procs,
      selfMoved: false,
      done: Promise.resolve(),
      timers: [],
    };
    this.active.set(runId, entry);
    this.armWatch();
    // a run a runner took is never adopted by pid: its runner has one lease to be heard from
    const driven =
      run.runner_id !== null
        ? this.awaitRemote(entry, null, jobId)
        : run.status === RUN_STATUS.queued
          ? this.launch(entry, jobId)
          : this.adopt(entry);
    entry.done = driven.finally(() => {
      entry.timers.forEach(clearTimeout);
      this.active.delete(runId);
      if (this.active.size === 0) this.disarmWatch();
    });
    return entry.done;
  }

  /**
   * Stops a run with its process tree and waits until it is finalized as `killed`. By default that
   * is the user's kill (the ticket is parked in human); a pause or an archive passes `keepInColumn`
   * and its reason. False when no live run has that id.
   */
  async kill(runId: string, opts: KillOptions = {}): Promise<boolean> {
    const why = opts.why ?? 'stopped by the user';
    const entry = this.active.get(runId);
    if (entry) {
      await this.stopRun(entry, RUN_STATUS.killed, why, opts.keepInColumn);
      await entry.done;
      return true;
    }
    const run = getRun(this.deps.store.db, runId);
    if (run?.status !== RUN_STATUS.queued) return false;
    const outcome = { status: RUN_STATUS.killed, exitCode: null, error: `${why} before it started`, keepInColumn: opts.keepInColumn };
    await this.finalize(run, outcome);
    return true;
  }

  /**
   * Checks every live run against its agent type's timeout and its ticket's column. Both are read
   * from the database each time, so a changed timeout applies at once and a laptop's sleep cannot
   * stretch a run past its limit.
   */
  watch(): void {
    try {
      const now = Date.now();
      for (const c of liveRunChecks(this.deps.store.db, [...this.active.keys()])) {
        const entry = this.active.get(c.id);
        if (!entry || entry.stop || (!entry.pid && !entry.remote)) continue;
        const limitMs = Math.min(MAX_TIMEOUT_MS, c.timeout_minutes * 60_000);
        if (c.started_at !== null && now - c.started_at > limitMs) {
          void this.stopRun(entry, RUN_STATUS.timeout, `ran past its ${c.timeout_minutes}-minute timeout`);
        } else if (c.closed) {
          void this.stopRun(entry, RUN_STATUS.killed, 'the ticket was closed while the agent ran');
        } else if (c.off_column && c.moved_by === `${entry.run.agent_type_id}:${entry.run.id}`) {
          if (entry.selfMoved) continue;
          entry.selfMoved = true;
          entry.timers.push(
            setTimeout(() => {
              void this.stopRun(
                entry,
                RUN_STATUS.success,
                `the agent moved the ticket to ${c.ticket_column} but did not exit within ${SELF_MOVE_GRACE_MS / 1000} s; stopped`,
              );
            }, SELF_MOVE_GRACE_MS),
          );
        } else if (c.off_column) {
          void this.stopRun(
            entry,
            RUN_STATUS.killed,
            `the ticket was moved to ${c.ticket_column} by ${c.moved_by ?? 'someone'} while the agent ran`,
          );
        }
      }
      this.watchLeases(now);
    } catch (err) {
      this.deps.logger.error('run watch failed', { error: (err as Error).message });
    }
  }

  /** A run on a runner that has not been heard from for a lease ends as crashed (or as it was stopped), once. */
  private watchLeases(now: number): void {
    const leaseMs = this.deps.config.get().runners.lease_seconds * 1000;
    for (const entry of this.active.values()) {
      const r = entry.remote;
      if (!r || r.finished || r.runnerId === null) continue;
      if (now - Math.max(r.lastBeat, this.startedAt) > leaseMs) {
        r.finish({ kind: 'lost', why: `its runner sent no heartbeat for ${leaseMs / 1000} s (runners.lease_seconds)` });
      } else if (r.stopSentAt !== null && now - r.stopSentAt > leaseMs) {
        r.finish({ kind: 'lost', why: 'its runner did not report the end after it was told to stop' });
      }
    }
  }

  private async stopRun(entry: Active, status: FinalStatus, why: string, keepInColumn?: boolean): Promise<void> {
    if (entry.stop) return;
    entry.stop = { status, why, keepInColumn };
    this.deps.logger.info('stopping agent', { run: entry.run.id, ticket: entry.run.ticket_id, pid: entry.pid, reason: why });
    if (entry.pid) await killTree(entry.pid);
    // an offer no runner took yet is withdrawn; a taken one is stopped by its runner at its next beat
    if (entry.remote && entry.remote.runnerId === null) entry.remote.finish({ kind: 'withdrawn' });
  }

  private async launch(entry: Active, jobId: string | null): Promise<void> {
    const { store, config, paths, logger } = this.deps;
    const { db } = store;
    const run = entry.run;
    const cfg = config.get();
    const fail = (error: string) => this.finalize(run, { status: RUN_STATUS.failed, exitCode: null, error, cause: 'agent' });
    // the agent CLI cannot work at all until someone fixes this: no retry, the CLI's dispatching pauses
    const setupFail = (error: string, fix: string) => {
      const pause = { cause: 'config' as const, until: null, fix };
      return this.finalize(run, { status: RUN_STATUS.failed, exitCode: null, error, cause: 'config', pause });
    };
    let spawned;
    let offer: RunSpec | null = null;
    const transcriptPath = path.join(paths.runs, `${run.id}.log`);
    try {
      const ticket = requireTicket(db, run.ticket_id);
      const project = getProject(db, run.project_id);
      const agentType = getAgentType(db, run.agent_type_id);
      if (!fs.existsSync(project.path)) return fail(`the project folder is missing: ${project.path}`);
      const prompt = readPrompt(paths.prompts, agentType.id);
      if (prompt === null) {
        const file = path.join(paths.prompts, `${agentType.id}.md`);
        return setupFail(`the prompt file is missing: ${file}`, `prompt file ${file} is missing`);
      }
      const toolProblem = checkTicketTool();
      if (toolProblem) return setupFail(toolProblem, toolProblem);
      const key = `${ticket.abbreviation}-${ticket.number}`;
      const previous = lastRunWithoutMove(
        db,
        { id: ticket.id, column_id: run.column_id, column_entered_at: ticket.column_entered_at },
        run.id,
      );
      // an agent that changes the code may run the project's check, exactly as the merge queue runs it
      const check = agentType.edits_working_tree ? project.check_command : null;
      const allowedTools = check ? [...agentType.allowed_tools, `Bash(${check})`] : agentType.allowed_tools;
      const task = taskMessage({ key, title: ticket.title, column: run.column_id, project: project.name, previous, check });
      if (project.runs_on === 'runners') {
        // the same prompt and task, offered to the runners instead of spawned here
        const agent = { id: agentType.id, model: agentType.model, permission_mode: agentType.permission_mode, allowed_tools: allowedTools };
        offer = await this.prepareOffer(run, project, key, { ...agent, prompt, task }, agentType.timeout_minutes);
        if (offer === null) return; // finalized meanwhile (killed before it started)
      } else {
        const workspace = await this.deps.workspace(run);
        const promptFile = path.join(paths.runs, `${run.id}.prompt.md`);
        fs.mkdirSync(paths.runs, { recursive: true });
        fs.writeFileSync(promptFile, prompt, { mode: 0o600 });
        // written before the spawn: the agent may call ticket.cjs before markRunStarted lands
        const runSecret = issueRunSecret(db, run.id);
        if (runSecret === null) return; // finalized meanwhile (killed before it started)
        const adapter = cliAdapter(run.cli);
        const binary = cliBinary(cfg, adapter.name);
        const setting = binarySetting(adapter.name);
        const launch = adapter.launch({
          model: agentType.model,
          permissionMode: agentType.permission_mode,
          allowedTools,
          promptFile,
          prompt,
          task,
          dataDir: path.dirname(paths.db),
        });
        const ctx = {
          dbPath: paths.db,
          ticketKey: key,
          projectKey: project.abbreviation!,
          runId: run.id,
          runSecret,
          agentType: agentType.id,
          port: this.deps.port(),
        };
        const env = agentEnv(cfg, this.deps.env ?? process.env, ctx, adapter, launch.env);
        try {
          spawned = await spawnAgent({ binary, args: launch.args, env, cwd: workspace.cwd, transcriptPath, stdin: launch.stdin });
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          if (e.code === 'ENOENT') {
            const env = adapter.name === 'claude' ? ' (or DISPATCH_CLAUDE_BIN)' : '';
            const why = `the agent binary "${binary}" was not found; install the ${adapter.name} CLI or set ${setting} in config.json${env}`;
            return setupFail(why, `${setting} ${binary} not found`);
          }
          if (e.code === 'EACCES') {
            return setupFail(`the agent binary "${binary}" is not executable`, `${setting} ${binary} is not executable`);
          }
          return fail(`could not start the agent: ${e.message}`);
        }
        entry.pid = spawned.pid;
        entry.procStart = spawned.procStart;
        entry.procs = new RunProcesses(run.id, spawned.pid, spawned.procStart, true);
        if (!markRunStarted(db, run.id, { pid: spawned.pid, procStart: spawned.procStart, transcriptPath, cwd: workspace.cwd, jobId })) {
          // the run was finalized meanwhile (killed before it started): the agent must not work on
          await killTree(spawned.pid);
          await this.endProcesses(entry);
          return;
        }
        entry.run = getRun(db, run.id)!;
        // a kill that arrived while the process was starting
        if (entry.stop) await killTree(spawned.pid);
        logger.info('agent spawned', { run: run.id, ticket: key, agent: agentType.id, pid: spawned.pid, cwd: workspace.cwd });
      }
    } catch (err) {
      return fail(`could not prepare the run: ${(err as Error).message}`);
    }
    if (offer) return this.awaitRemote(entry, offer, jobId);
    // the watch interval (armed while any run is live) checks it from here on
    const exit = await spawned!.exited;
    await this.endProcesses(entry);
    await this.conclude(entry, exit.code, exit.signal);
  }

  /**
   * Readies a run for the runners: its project's remote gets the local ticket branch (when there is
   * one), the run its secret. Null when the run was finalized meanwhile. Throws what stops it.
   */
  private async prepareOffer(
    run: Run,
    project: Project,
    key: string,
    agent: RunSpec['agent'],
    timeoutMinutes: number,
  ): Promise<RunSpec | null> {
    const remote = project.remote_url;
    if (!remote) throw new Error(`project ${project.abbreviation} runs on runners but has no remote_url`);
    if (!(await canBranch(project.path))) {
      throw new Error(`project ${project.abbreviation} runs on runners, but ${project.path} is not a git repository with a commit`);
    }
    const branch = ticketBranch(key);
    try {
      await pushTicketBranch(project.path, remote, branch);
    } catch (err) {
      throw new Error(`could not push ${branch} to ${remote}: ${(err as Error).message}`);
    }
    const main = await detectMainBranch(project.path, project.main_branch);
    const runSecret = issueRunSecret(this.deps.store.db, run.id);
    if (runSecret === null) return null;
    return {
      run_id: run.id,
      ticket_key: key,
      branch,
      project: { abbreviation: project.abbreviation!, name: project.name, remote_url: remote, main_branch: main },
      cli: run.cli,
      agent,
      env: { ...this.deps.config.get().agents.env },
      run_secret: runSecret,
      timeout_minutes: timeoutMinutes,
    };
  }

  /**
   * Waits for a run on a runner to end: offered (`spec`) until a runner claims it, or already taken
   * (null: adopted after a restart, its runner has one lease from this daemon's start). Then fetches
   * its branch back and finalizes it through conclude(), as a local run.
   */
  private async awaitRemote(entry: Active, spec: RunSpec | null, jobId: string | null = null): Promise<void> {
    const { store, logger } = this.deps;
    let finish!: (end: RemoteEnd) => void;
    const ended = new Promise<RemoteEnd>((resolve) => (finish = resolve));
    const remote: Remote = {
      spec,
      runnerId: entry.run.runner_id,
      lastBeat: Date.now(),
      stopSentAt: null,
      finished: false,
      jobId,
      ended,
      finish: (end) => {
        if (remote.finished) return;
        remote.finished = true;
        remote.spec = null;
        finish(end);
      },
    };
    entry.remote = remote;
    if (entry.stop && remote.runnerId === null) remote.finish({ kind: 'withdrawn' });
    if (spec) {
      logger.info('run offered to runners', { run: entry.run.id, ticket: spec.ticket_key });
      for (const wake of [...this.claimWaiters]) wake();
    } else logger.info('waiting for the runner of a remote run', { run: entry.run.id, runner: remote.runnerId });
    this.armWatch();
    const end = await ended;
    const run = getRun(store.db, entry.run.id) ?? entry.run;
    entry.run = run;
    // a move the agent made whose work never reached the remote is taken back before the run is
    // finalized (its own move already ended its rights, so the agent cannot move the ticket again)
    const takeBack = (why: string) => {
      if (undoRunMove(store, run, why)) logger.info('took back the move of a run whose work was lost', { run: run.id });
    };
    if (end.kind === 'lost') {
      if (!entry.stop) entry.stop = { status: RUN_STATUS.crashed, why: `the run was lost: ${end.why}` };
      takeBack(`Moved back: run ${run.id} moved this ticket, but its runner was lost before the work reached the remote (${end.why}).`);
    }
    if (end.kind !== 'end') return this.conclude(entry, null, null);
    const ticket = requireTicket(store.db, run.ticket_id);
    const project = getProject(store.db, run.project_id);
    const branch = ticketBranch(`${ticket.abbreviation}-${ticket.number}`);
    const note = (text: string) => addSystemComment(store.db, ticket.id, 'system', text, 'system');
    if (!end.push.ok) {
      note(
        `The runner could not push ${branch} at the end of run ${run.id} (${end.push.error ?? 'no reason given'}); its work is not here.`,
      );
      takeBack(`Moved back: run ${run.id} moved this ticket, but its runner could not push ${branch}.`);
    } else if (project.remote_url) {
      try {
        await fetchTicketBranch(store.db, { repo: project.path, remote: project.remote_url, branch, ticketId: ticket.id });
      } catch (err) {
        note(`Run ${run.id} ended, but ${branch} could not be brought back from ${project.remote_url}: ${(err as Error).message}`);
      }
    }
    const signal = end.signal as NodeJS.Signals | null;
    await this.conclude(entry, end.exitCode, signal);
    // its done ticket waited for this fetch before merging (lib/tickets.ts mergeCandidates)
    store.notify(run.project_id);
  }

  /** The runs offered to runners and not taken yet, oldest first. */
  private offered(): Active[] {
    return [...this.active.values()]
      .filter((a) => a.remote?.spec && a.remote.runnerId === null && !a.remote.finished)
      .sort((a, b) => a.run.created_at - b.run.created_at);
  }

  /**
   * A runner asks for work: gives it an offered run (its slots enforced in the assignment's
   * transaction), waiting up to `waitMs` for an offer. Null: nothing for it (or its slots are full).
   */
  async claimRemote(runner: Runner, opts: { waitMs: number; aborted: () => boolean }): Promise<RunSpec | null> {
    const deadline = Date.now() + Math.min(Math.max(opts.waitMs, 0), CLAIM_WAIT_MAX_MS);
    touchRunner(this.deps.store.db, runner.id);
    for (;;) {
      const offers = this.offered();
      const taken = assignRun(
        this.deps.store.db,
        runner.id,
        offers.map((a) => a.run.id),
      );
      if (taken !== null && taken !== 'full') {
        const entry = this.active.get(taken)!;
        const r = entry.remote!;
        const spec = r.spec!;
        r.runnerId = runner.id;
        r.spec = null;
        r.lastBeat = Date.now();
        entry.run = getRun(this.deps.store.db, taken) ?? entry.run;
        this.deps.logger.info('runner took a run', { run: taken, runner: runner.name });
        return spec;
      }
      const left = deadline - Date.now();
      if (left <= 0 || opts.aborted() || !this.started) return null;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.claimWaiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 1000));
        this.claimWaiters.add(wake);
      });
    }
  }

  /** The run, if it is a live run of this runner; a ConflictError (409: the runner stops its agent) otherwise. */
  private runnersLiveRun(runner: Runner, runId: string): Run {
    const run = getRun(this.deps.store.db, runId);
    if (!run || run.runner_id !== runner.id || (run.status !== RUN_STATUS.queued && run.status !== RUN_STATUS.running)) {
      throw new ConflictError(`run ${runId} is not a live run of runner ${runner.name}: stop its agent`);
    }
    return run;
  }

  /** Appends a transcript chunk at its byte offset: only the part not held yet, so a chunk sent twice is written once. */
  private appendTranscript(run: Run, chunk: TranscriptPiece | undefined): { path: string; bytes: number } | undefined {
    if (!chunk) return undefined;
    const file = path.join(this.deps.paths.runs, `${run.id}.log`);
    let held = 0;
    try {
      held = fs.statSync(file).size;
    } catch {
      fs.mkdirSync(this.deps.paths.runs, { recursive: true });
    }
    const data = Buffer.from(chunk.data, 'utf8');
    if (chunk.offset > held) {
      throw new UserError(`transcript offset ${chunk.offset} is past the ${held} bytes the daemon holds: send from ${held}`, 'transcript');
    }
    const fresh = data.subarray(held - chunk.offset);
    if (fresh.length > 0) fs.appendFileSync(file, fresh, { mode: 0o600 });
    return { path: file, bytes: held + fresh.length };
  }

  /** A runner's heartbeat for one of its runs; answers whether the run must stop. */
  beatRemote(runner: Runner, runId: string, beat: { pid?: number; transcript?: TranscriptPiece }): { stop: { why: string } | null } {
    const { db } = this.deps.store;
    const run = this.runnersLiveRun(runner, runId);
    const now = Date.now();
    touchRunner(db, runner.id, now);
    const held = this.appendTranscript(run, beat.transcript);
    const transcriptPath = held?.path ?? path.join(this.deps.paths.runs, `${run.id}.log`);
    const entry = this.active.get(runId);
    if (beat.pid !== undefined && run.status === RUN_STATUS.queued) {
      markRemoteRunStarted(db, runId, { runnerPid: beat.pid, transcriptPath, jobId: entry?.remote?.jobId ?? null });
      this.deps.logger.info('agent started on a runner', { run: runId, runner: runner.name, pid: beat.pid });
    }
    recordBeat(db, runId, { at: now, transcriptPath: held?.path, transcriptBytes: held?.bytes });
    if (entry) entry.run = getRun(db, runId) ?? entry.run;
    const r = entry?.remote;
    if (r) r.lastBeat = now;
    if (entry?.stop && r) {
      r.stopSentAt ??= now;
      return { stop: { why: entry.stop.why } };
    }
    return { stop: null };
  }

  /**
   * A runner reports a run's end: its last transcript chunk is kept, the branch fetched back and the
   * run finalized; answers its final status. A repeated report gets the same answer. Null: the run
   * is not driven here yet (the daemon is starting), ask again.
   */
  async endRemote(
    runner: Runner,
    runId: string,
    end: { exitCode: number | null; signal: string | null; push: { ok: boolean; error?: string }; transcript?: TranscriptPiece },
  ): Promise<{ status: string } | null> {
    const { db } = this.deps.store;
    const before = getRun(db, runId);
    if (before && before.runner_id === runner.id && before.status !== RUN_STATUS.queued && before.status !== RUN_STATUS.running) {
      return { status: before.status };
    }
    const run = this.runnersLiveRun(runner, runId);
    touchRunner(db, runner.id);
    const held = this.appendTranscript(run, end.transcript);
    if (held) recordBeat(db, runId, { at: Date.now(), transcriptPath: held.path, transcriptBytes: held.bytes });
    const entry = this.active.get(runId);
    if (!entry?.remote) return null;
    entry.remote.finish({ kind: 'end', exitCode: end.exitCode, signal: end.signal, push: end.push });
    await entry.done;
    return { status: getRun(db, runId)!.status };
  }

  private async adopt(entry: Active): Promise<void> {
    const run = entry.run;
    if (!run.pid || !isAgentAlive(run.pid, run.proc_start)) {
      await this.endProcesses(entry, true);
      await this.conclude(entry, null, null, true);
      return;
    }
    this.deps.logger.info('agent adopted', { run: run.id, ticket: run.ticket_id, pid: run.pid });
    this.watch();
    while (isAgentAlive(run.pid, run.proc_start)) await new Promise((r) => setTimeout(r, 250));
    await this.endProcesses(entry);
    await this.conclude(entry, null, null, true);
  }

  /** Judges the run from how it ended and its transcript, then finalizes it. */
  private async conclude(entry: Active, code: number | null, signal: NodeJS.Signals | null, adopted = false): Promise<void> {
    const transcriptPath = entry.run.transcript_path ?? path.join(this.deps.paths.runs, `${entry.run.id}.log`);
    const adapter = cliAdapter(entry.run.cli);
    const end = readTranscriptEnd(transcriptPath, adapter.name);
    const result = end.result;
    const stop = entry.stop;
    let status: FinalStatus;
    let error: string | null = null;
    if (stop) {
      status = stop.status;
      error = stop.status === RUN_STATUS.success ? null : stop.why;
      if (stop.status === RUN_STATUS.success)
        this.deps.logger.info('agent stopped after moving its ticket', { run: entry.run.id, reason: stop.why });
    } else if (adopted && code === null) {
      // not our child: the exit code is lost, the transcript is all we know
      status = result ? (result.isError ? RUN_STATUS.failed : RUN_STATUS.success) : RUN_STATUS.crashed;
      error = result?.isError ? result.resultText : result ? null : 'the agent ended while the daemon was down and left no result';
    } else if (code === 0 && result && !result.isError) {
      status = RUN_STATUS.success;
    } else {
      status = RUN_STATUS.failed;
      error = result?.isError
        ? (result.resultText ?? 'the agent reported an error')
        : signal
          ? `killed by ${signal}`
          : code !== 0
            ? `exited with code ${code}${result ? '' : ' and no result'}`
            : 'exited without a result line';
    }
    let cause: RunOutcome['cause'] = null;
    let pause: RunOutcome['pause'];
    if (status === RUN_STATUS.timeout || status === RUN_STATUS.crashed) cause = 'agent';
    else if (status === RUN_STATUS.failed) {
      const c = adapter.classify(end, Date.now(), code);
      cause = c.cause;
      if (c.cause === 'usage_limit') {
        const resetsAt = c.resetsAt!;
        const until = resetsAt + this.deps.config.get().agents.usage_limit_margin_seconds * 1000;
        pause = { cause: 'usage_limit', until, resetsAt, limitType: c.limitType };
      } else if (c.cause === 'auth') {
        pause = { cause: 'auth', until: null, fix: adapter.authFix };
      } else if (c.cause === 'config') {
        pause = {
          cause: 'config',
          until: null,
          fix: `${adapter.name} reported a setup problem: ${(result?.resultText ?? error ?? '').split('\n')[0]!.slice(0, 200)}`,
        };
      }
    }
    await this.finalize(entry.run, {
      status,
      exitCode: code,
      error,
      keepInColumn: stop?.keepInColumn,
      cause,
      pause,
      resultText: result?.resultText ?? null,
      tokensIn: result?.tokensIn ?? null,
      tokensOut: result?.tokensOut ?? null,
      costUsd: result?.costUsd ?? null,
      transcriptPath,
    });
  }

  /**
   * Records the run's end. The outcome is known only here, in memory, so a write the disk refuses
   * (full, read-only, locked past busy_timeout) is retried until it lands: the run MUST NOT stay
   * live, holding its ticket's claim and a slot under the caps, until the next restart. Once the
   * runtime is stopped the next daemon's recovery judges the run from its transcript instead.
   */
  private async finalize(run: Run, outcome: RunOutcome): Promise<void> {
    const { store, config, logger } = this.deps;
    let done: Finalized | null = null;
    for (let waitMs = 1000; ; waitMs = Math.min(waitMs * 2, MAX_FINALIZE_WAIT_MS)) {
      let maxRetries = 0;
      try {
        maxRetries = getAgentType(store.db, run.agent_type_id).max_retries;
      } catch {
        // an agent type deleted meanwhile: no retries
      }
      try {
        done = finalizeRun(store, run.id, outcome, { circuitBreakerMaxRuns: config.get().agents.circuit_breaker_max_runs, maxRetries });
        break;
      } catch (err) {
        if (!storageError(err) || !this.started) throw err;
        logger.error('could not record the end of a run; will retry', {
          run: run.id,
          status: outcome.status,
          error: (err as Error).message,
          retry_in_ms: waitMs,
        });
        await new Promise((r) => setTimeout(r, waitMs).unref());
      }
    }
    if (!done) return;
    logger.info('agent run finished', {
      run: run.id,
      ticket: run.ticket_id,
      agent: run.agent_type_id,
      status: outcome.status,
      exit_code: outcome.exitCode,
      ...(outcome.error ? { error: outcome.error } : {}),
      ...(done.sentToHuman ? { sent_to_human: done.sentToHuman } : {}),
    });
    this.deps.onFinalized(done);
  }
}
