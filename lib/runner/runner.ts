// `dispatch runner`: runs agents for a daemon, on this machine or another (docs/RUNNERS.md). The
// daemon decides everything (which run, when it stops, how it ended); the runner takes runs while
// it has free slots, prepares each one's worktree from the project's remote, spawns the agent with
// the same CLI adapter and environment rules as the daemon's own runs, reports it alive with its
// transcript every beat, and after the agent exits pushes the ticket branch and reports the end.
//
// The daemon may be away at any moment: agents keep running, the transcript stays on disk until
// acknowledged, and the end report is held (in the runner's folder, lib/runner/state.ts) and sent
// again every few seconds until the daemon answers, also by the next runner process when this one
// is stopped. A runner killed with -9 leaves its agents behind; the next one started on the same
// folder kills them (the daemon has finalized, or will finalize, their runs as crashed).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { baseAgentEnv, isAgentAlive, killTree, RunProcesses, spawnAgent } from '../agentProcess.js';
import { cliAdapter } from '../clis/index.js';
import { acquirePidFile, releasePidFile } from '../pidfile.js';
import { packageVersion } from '../paths.js';
import { UserError } from '../errors.js';
import { RunnerClient, Unreachable, type EndReport, type Hello, type RunSpec } from './protocol.js';
import { RunnerState, transcriptPiece, type RunState } from './state.js';
import { prepareRunnerWorkspace, pushTicketBranch } from './workspace.js';

/** The most transcript one call carries. */
const PIECE_BYTES = 256 * 1024;
/** How long the runner waits before calling an unreachable daemon again. */
const RETRY_MS = 3000;

export type RunnerLog = (event: string, fields?: Record<string, unknown>) => void;

export interface RunnerOptions {
  daemonUrl: string;
  token: string;
  slots: number;
  /** the name the token was made for; when given, a token of another runner is refused */
  name?: string;
  dir: string;
  /** the environment agents inherit their allowlisted variables from */
  env: NodeJS.ProcessEnv;
  log: RunnerLog;
}

interface ActiveRun {
  spec: RunSpec;
  state: RunState;
  procs: RunProcesses | null;
  /** the daemon no longer counts this run as ours (409 or a refused token): no push, no end */
  disowned: boolean;
  /** why the run must stop, when that was asked before its agent started */
  halt: string | null;
  /** stops the agent (before it started: makes sure it never starts) */
  kill: (why: string) => Promise<void>;
  /** heartbeats go from the moment the run is taken (preparing the workspace is part of its lease) until the agent ended */
  beating: boolean;
  stopBeating: () => void;
  done: Promise<void>;
}

export class Runner {
  private readonly client: RunnerClient;
  private readonly state: RunnerState;
  private readonly active = new Map<string, ActiveRun>();
  private readonly deliveries = new Set<Promise<void>>();
  private hello: Hello | null = null;
  private stopping = false;
  private forced = false;
  private reachable = true;
  private exitCode = 0;
  private claimAbort: AbortController | null = null;
  private wakers = new Set<() => void>();
  private readonly lockFile: string;

  constructor(private readonly opts: RunnerOptions) {
    this.client = new RunnerClient(opts.daemonUrl, opts.token);
    this.state = new RunnerState(opts.dir);
    this.lockFile = path.join(opts.dir, 'runner.pid');
  }

  /** Runs until stopped; resolves with the process's exit code. */
  async run(): Promise<number> {
    acquirePidFile(this.lockFile, (h) => `another runner is already using ${this.opts.dir} (pid ${h.pid}); give this one another --dir`);
    try {
      await this.recover();
      await this.greet();
      if (!this.stopping) this.opts.log('ready', { name: this.hello!.name, slots: this.opts.slots, dir: this.opts.dir });
      await this.takeWork();
      await Promise.all([...this.active.values()].map((a) => a.done));
      await Promise.all([...this.deliveries]);
      const held = this.state.list().length;
      this.opts.log('stopped', held ? { held_reports: held } : {});
      return this.exitCode;
    } finally {
      releasePidFile(this.lockFile);
    }
  }

  /** First call: take no more work, let the agents finish and report. Second: kill the agents too. */
  stop(signal: string): void {
    if (!this.stopping) {
      this.stopping = true;
      this.opts.log('stopping', { signal, running: this.active.size, note: 'a second signal kills the agents' });
    } else if (!this.forced) {
      this.forced = true;
      this.opts.log('killing agents', { signal, running: this.active.size });
      for (const a of this.active.values()) void a.kill(`the runner got a second ${signal}`);
    }
    this.claimAbort?.abort();
    for (const wake of this.wakers) wake();
  }

  /** Waits `ms`, or less when the runner is told to stop. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private unreachable(err: Unreachable): void {
    if (this.reachable) this.opts.log('daemon unreachable', { error: err.message, retry_every_ms: RETRY_MS });
    this.reachable = false;
  }

  private answered(): void {
    if (!this.reachable) this.opts.log('daemon reachable');
    this.reachable = true;
  }

  /** What a previous runner process left: its agents are killed, its held end reports sent. */
  private async recover(): Promise<void> {
    for (const s of this.state.list((file, why) => this.opts.log('unreadable run state', { file, error: why }))) {
      if (s.end) {
        this.opts.log('end report held', { run: s.run_id, ticket: s.ticket_key });
        this.track(this.deliver(s));
        continue;
      }
      if (s.pid) {
        const procs = new RunProcesses(s.run_id, s.pid, s.proc_start);
        const alive = isAgentAlive(s.pid, s.proc_start);
        if (alive) {
          procs.track();
          await killTree(s.pid);
        }
        const others = await procs.end(!alive);
        if (alive || others) this.opts.log('killed leftover agent', { run: s.run_id, ticket: s.ticket_key, pid: s.pid, children: others });
      }
      this.state.remove(s.run_id);
    }
  }

  private track(p: Promise<void>): void {
    this.deliveries.add(p);
    void p.finally(() => this.deliveries.delete(p));
  }

  private async greet(): Promise<void> {
    const body = { slots: this.opts.slots, host: os.hostname(), version: packageVersion() };
    while (!this.stopping) {
      let ans;
      try {
        ans = await this.client.hello(body);
      } catch (err) {
        if (!(err instanceof Unreachable)) throw err;
        this.unreachable(err);
        await this.pause(RETRY_MS);
        continue;
      }
      this.answered();
      if (ans.status === 401 || ans.status === 403) throw new UserError(`the daemon refused the runner token (HTTP ${ans.status})`);
      const h = ans.body;
      if (ans.status !== 200 || !h || typeof h.name !== 'string' || !(h.beat_ms > 0)) {
        throw new UserError(`the daemon answered hello with HTTP ${ans.status}; is ${this.opts.daemonUrl} a dispatch daemon?`);
      }
      if (this.opts.name && this.opts.name !== h.name) {
        throw new UserError(`this token belongs to runner "${h.name}", not "${this.opts.name}"`);
      }
      this.hello = h;
      return;
    }
  }

  private slotFreed(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.wakers.delete(done);
        resolve();
      };
      this.wakers.add(done);
    });
  }

  private async takeWork(): Promise<void> {
    while (!this.stopping) {
      const free = this.opts.slots - this.active.size;
      if (free <= 0) {
        await this.slotFreed();
        continue;
      }
      this.claimAbort = new AbortController();
      let ans;
      try {
        ans = await this.client.claim(free, this.claimAbort.signal);
      } catch (err) {
        if (!(err instanceof Unreachable)) throw err;
        if (this.stopping) break;
        this.unreachable(err);
        await this.pause(RETRY_MS);
        continue;
      } finally {
        this.claimAbort = null;
      }
      this.answered();
      if (ans.status === 200 && ans.body?.run) this.start(ans.body.run);
      else if (ans.status === 401 || ans.status === 403) {
        this.opts.log('token refused', { status: ans.status, note: 'no more work is taken' });
        this.exitCode = 1;
        this.stopping = true;
      } else if (ans.status !== 204) {
        this.opts.log('claim refused', { status: ans.status });
        await this.pause(RETRY_MS);
      }
    }
  }

  private start(spec: RunSpec): void {
    const state: RunState = {
      run_id: spec.run_id,
      ticket_key: spec.ticket_key,
      repo: '',
      branch: spec.branch,
      pid: null,
      proc_start: null,
      acked: 0,
      end: null,
    };
    const a: ActiveRun = {
      spec,
      state,
      procs: null,
      disowned: false,
      halt: null,
      kill: async (why) => {
        a.halt ??= why;
      },
      beating: false,
      stopBeating: () => {},
      done: Promise.resolve(),
    };
    this.active.set(spec.run_id, a);
    this.opts.log('run taken', { run: spec.run_id, ticket: spec.ticket_key, agent: spec.agent.id, project: spec.project.abbreviation });
    a.done = this.drive(a)
      .catch((err: unknown) => this.opts.log('run failed in the runner', { run: spec.run_id, error: (err as Error).message }))
      .finally(() => {
        this.active.delete(spec.run_id);
        for (const wake of this.wakers) wake();
      });
  }

  /** Ends a run that never got an agent: the reason goes into its transcript, the end to the daemon. */
  private async notStarted(a: ActiveRun, why: string): Promise<void> {
    this.opts.log('agent not started', { run: a.spec.run_id, ticket: a.spec.ticket_key, error: why });
    fs.appendFileSync(this.state.transcriptPath(a.spec.run_id), `runner: ${why}\n`, { mode: 0o600 });
    a.state.end = { exit_code: null, signal: null, push: { ok: false, error: `the agent did not start: ${why}` } };
    this.state.save(a.state);
    await this.deliver(a.state);
  }

  private async drive(a: ActiveRun): Promise<void> {
    const { spec, state } = a;
    const transcriptPath = this.state.transcriptPath(spec.run_id);
    this.state.save(state);
    const beats = this.beatWhileLive(a, transcriptPath);
    const giveUp = async (why: string | null) => {
      a.stopBeating();
      await beats;
      if (a.disowned) {
        this.opts.log('run given up', { run: spec.run_id, ticket: spec.ticket_key, reason: 'the daemon no longer counts it as ours' });
        this.state.remove(spec.run_id);
        return;
      }
      return this.notStarted(a, why ?? a.halt ?? 'stopped before the agent started');
    };
    let ws;
    try {
      ws = await prepareRunnerWorkspace(this.opts.dir, spec.project, spec.ticket_key, spec.branch);
    } catch (err) {
      return giveUp(`could not prepare the workspace: ${(err as Error).message}`);
    }
    state.repo = ws.repo;
    this.opts.log('workspace ready', { run: spec.run_id, cwd: ws.cwd, from: ws.from });
    if (a.disowned || a.halt) return giveUp(a.halt && `stopped before the agent started: ${a.halt}`);
    const promptFile = this.state.promptPath(spec.run_id);
    fs.writeFileSync(promptFile, spec.agent.prompt, { mode: 0o600 });
    const adapter = cliAdapter(spec.cli);
    const launch = adapter.launch({
      model: spec.agent.model,
      permissionMode: spec.agent.permission_mode,
      allowedTools: spec.agent.allowed_tools,
      promptFile,
      prompt: spec.agent.prompt,
      task: spec.agent.task,
      dataDir: this.opts.dir,
    });
    const ids = {
      ticketKey: spec.ticket_key,
      projectKey: spec.project.abbreviation,
      runId: spec.run_id,
      runSecret: spec.run_secret,
      agentType: spec.agent.id,
    };
    const env = baseAgentEnv(this.opts.env, adapter, [spec.env, launch.env], ids, { DISPATCH_API_URL: this.opts.daemonUrl });
    let spawned;
    try {
      spawned = await spawnAgent({
        binary: adapter.defaultBinary,
        args: launch.args,
        env,
        cwd: ws.cwd,
        transcriptPath,
        stdin: launch.stdin,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return giveUp(
        e.code === 'ENOENT'
          ? `the agent binary "${adapter.defaultBinary}" was not found on this runner's PATH`
          : `could not start the agent: ${e.message}`,
      );
    }
    state.pid = spawned.pid;
    state.proc_start = spawned.procStart;
    this.state.save(state);
    a.procs = new RunProcesses(spec.run_id, spawned.pid, spawned.procStart, true);
    let killing: Promise<void> | null = null;
    a.kill = (why) => {
      if (!killing) {
        this.opts.log('killing agent', { run: spec.run_id, ticket: spec.ticket_key, pid: spawned.pid, reason: why });
        killing = killTree(spawned.pid);
      }
      return killing;
    };
    this.opts.log('agent spawned', { run: spec.run_id, ticket: spec.ticket_key, pid: spawned.pid });
    if (a.halt)
      void a.kill(a.halt); // asked while the agent was starting
    else if (this.forced) void a.kill('the runner is stopping');
    const { code, signal } = await spawned.exited;
    // its pid may be another process's from now on; the heartbeats go on (the push is part of the run)
    a.kill = async () => {};
    state.pid = null;
    await a.procs.end();
    this.opts.log('agent exited', { run: spec.run_id, ticket: spec.ticket_key, exit_code: code, signal });
    if (a.disowned) {
      a.stopBeating();
      await beats;
      this.state.remove(spec.run_id);
      return;
    }
    const push = await pushTicketBranch(ws);
    this.opts.log(push.ok ? 'branch pushed' : 'push failed', {
      run: spec.run_id,
      branch: ws.branch,
      ...(push.error ? { error: push.error } : {}),
    });
    a.stopBeating();
    await beats;
    state.end = { exit_code: code, signal, push } satisfies EndReport;
    this.state.save(state);
    await this.deliver(state);
  }

  /** Heartbeats every `beat_ms` until `stopBeating`: the run's lease, its agent's pid while it runs, and its transcript. */
  private async beatWhileLive(a: ActiveRun, transcriptPath: string): Promise<void> {
    a.beating = true;
    const stopped = new Promise<void>((resolve) => {
      a.stopBeating = () => {
        a.beating = false;
        resolve();
      };
    });
    while (a.beating) {
      a.procs?.track();
      await this.beat(a, transcriptPath);
      if (!a.beating) break;
      await Promise.race([stopped, new Promise((r) => setTimeout(r, this.hello?.beat_ms ?? 5000))]);
    }
  }

  /** One heartbeat of a live run: its pid and the transcript the daemon does not have yet. */
  private async beat(a: ActiveRun, transcriptPath: string): Promise<void> {
    const { state } = a;
    const piece = transcriptPiece(transcriptPath, state.acked, PIECE_BYTES, true);
    let ans;
    try {
      const pid = state.pid ?? undefined;
      ans = await this.client.beat(state.run_id, { ...(pid ? { pid } : {}), ...(piece ? { transcript: piece } : {}) });
    } catch (err) {
      if (!(err instanceof Unreachable)) throw err;
      this.unreachable(err);
      return;
    }
    this.answered();
    if (ans.status === 200) {
      if (piece) {
        state.acked = piece.offset + Buffer.byteLength(piece.data);
        this.state.save(state);
      }
      const stop = ans.body?.stop;
      if (stop) void a.kill(`the daemon stopped the run: ${stop.why}`);
    } else if (ans.status === 409 || ans.status === 404 || ans.status === 401 || ans.status === 403) {
      a.disowned = true;
      void a.kill(`the daemon refused the heartbeat (HTTP ${ans.status}): the run is no longer this runner's`);
    }
  }

  /**
   * Sends the end report with the rest of the transcript, again every few seconds until the daemon
   * answers. A report the daemon refuses (the run is not this runner's any more) is dropped. When
   * the runner is forced to stop, an undelivered report stays on disk for the next runner process.
   */
  private async deliver(state: RunState): Promise<void> {
    const transcriptPath = this.state.transcriptPath(state.run_id);
    let held = false;
    for (;;) {
      try {
        const answer = await this.sendEnd(state, transcriptPath);
        this.answered();
        if (answer === 'retry') throw new Unreachable('the daemon did not take the report');
        if (answer.ok) this.opts.log('end delivered', { run: state.run_id, ticket: state.ticket_key, status: answer.status });
        else this.opts.log('end refused', { run: state.run_id, ticket: state.ticket_key, http: answer.http });
        this.state.remove(state.run_id);
        return;
      } catch (err) {
        if (!(err instanceof Unreachable)) throw err;
        this.unreachable(err);
        if (!held) this.opts.log('end report held', { run: state.run_id, ticket: state.ticket_key, retry_every_ms: RETRY_MS });
        held = true;
        if (this.forced) return;
        await this.pause(RETRY_MS);
      }
    }
  }

  private async sendEnd(
    state: RunState,
    transcriptPath: string,
  ): Promise<'retry' | { ok: true; status: string } | { ok: false; http: number }> {
    const size = fs.existsSync(transcriptPath) ? fs.statSync(transcriptPath).size : 0;
    // what does not fit in the end report goes first, in heartbeats
    while (size - state.acked > PIECE_BYTES) {
      const piece = transcriptPiece(transcriptPath, state.acked, PIECE_BYTES, false);
      if (!piece) break;
      const ans = await this.client.beat(state.run_id, { transcript: piece });
      if (ans.status === 409 || ans.status === 404) return { ok: false, http: ans.status };
      if (ans.status !== 200) return 'retry';
      state.acked = piece.offset + Buffer.byteLength(piece.data);
      this.state.save(state);
    }
    const piece = transcriptPiece(transcriptPath, state.acked, PIECE_BYTES, false);
    const ans = await this.client.end(state.run_id, { ...state.end!, ...(piece ? { transcript: piece } : {}) });
    if (ans.status === 200) return { ok: true, status: ans.body?.status ?? '?' };
    if (ans.status >= 400 && ans.status < 500 && ans.status !== 408 && ans.status !== 429) return { ok: false, http: ans.status };
    return 'retry';
  }
}
