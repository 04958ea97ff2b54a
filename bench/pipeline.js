// Pipeline throughput: tickets written into coding-agent across 20 projects flow through
// coding-agent → code-reviewer → security-reviewer → done, each step done by the instant bench
// agent (it only runs `ticket move`), with caps 10 global / 3 per project. Reports tickets per
// minute, the daemon's work per run (its CPU time over the run divided by the runs), the wall time
// around each run (reservation → agent process start, plus agent's last line → run finalized),
// and the largest overlap of live runs from the runs table (the caps must hold).
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  benchAgent,
  cpuSchedSeconds,
  cpuSplit,
  maxOverlap,
  note,
  percentile,
  report,
  sleep,
  startDaemon,
  tempRoot,
  waitFor,
} from './lib.js';

const GLOBAL_CAP = 10;
const PROJECT_CAP = 3;

/**
 * Two runs. First the daemon's own work: the daemon on a CPU of its own and the agents on the others,
 * so its CPU time per run is not inflated by ten agents' Node starts preempting it and evicting its
 * caches (BENCH_PIPELINE_PINNED_TICKETS, 100). Then the full size with everything sharing every CPU,
 * as on a user's machine: throughput, and the caps holding throughout (BENCH_PIPELINE_TICKETS, 1,000).
 * Where the daemon cannot get a CPU of its own, the shared run carries the CPU target too.
 */
export async function pipeline() {
  const projects = Number(process.env.BENCH_PIPELINE_PROJECTS ?? 20);
  const parallelCoding = process.env.BENCH_PARALLEL_CODING !== '0';
  const split = process.env.BENCH_PIPELINE_PIN === '0' ? null : cpuSplit();
  if (split) await pipelineRun({ tickets: Number(process.env.BENCH_PIPELINE_PINNED_TICKETS ?? 100), projects, parallelCoding, split });
  else note('no CPU of its own for the daemon (one CPU, no taskset, or BENCH_PIPELINE_PIN=0): the shared run carries the CPU target');
  await pipelineRun({
    tickets: Number(process.env.BENCH_PIPELINE_TICKETS ?? 1000),
    projects,
    parallelCoding,
    split: null,
    cpuTarget: !split,
  });
}

async function pipelineRun({ tickets, projects, parallelCoding, split, cpuTarget = true }) {
  const where = split ? `daemon on CPU ${split.daemon}, agents on CPU ${split.agents}` : 'daemon and agents sharing every CPU';
  console.log(
    `\npipeline throughput (${tickets} tickets across ${projects} projects, 3 agent columns, caps ${GLOBAL_CAP}/${PROJECT_CAP}, parallel_coding ${parallelCoding ? 'on' : 'off'}; ${where})`,
  );
  const root = tempRoot('pd-bench-pipeline-');
  const log = path.join(root, 'agents.log');
  fs.writeFileSync(log, '');
  let agentBin = benchAgent;
  if (split) {
    agentBin = path.join(root, 'agent.sh');
    fs.writeFileSync(agentBin, `#!/bin/sh\nexec taskset -c ${split.agents} '${process.execPath}' '${benchAgent}' "$@"\n`, { mode: 0o755 });
  }
  const d = await startDaemon(root, {
    config: {
      agents: {
        max_concurrent_global: GLOBAL_CAP,
        max_concurrent_per_project: PROJECT_CAP,
        parallel_coding: parallelCoding,
        circuit_breaker_max_runs: 3,
        env: { BENCH_AGENT_LOG: log },
      },
    },
    env: { DISPATCH_CLAUDE_BIN: agentBin },
    cpus: split?.daemon ?? null,
  });
  try {
    const keys = [];
    for (let i = 0; i < projects; i++) keys.push((await d.project(`pipe${i}`, `pp${i}`)).abbreviation);
    const db = new Database(d.dbPath, { readonly: true });
    const doneCount = db.prepare(`SELECT COUNT(*) AS n FROM tickets WHERE column_id = 'done'`);
    const liveCount = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running')`);
    // progress is any run ending: slots go to the oldest waiting ticket, so with many tickets every
    // one is coded before the first is reviewed, and done stays empty for minutes
    const endedCount = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE ended_at IS NOT NULL`);
    const cpu0 = cpuSchedSeconds(d.pid);
    const redisCpu0 = d.redisPid ? cpuSchedSeconds(d.redisPid) : 0;
    const t0 = Date.now();
    // every ticket is written into coding-agent in one transaction (the same rows createTicket
    // writes, and every heartbeat marked due), then one project is woken through the API (the
    // scheduler then finds them all due): the clock measures the engine, not 1,000 HTTP requests
    const rw = new Database(d.dbPath);
    rw.pragma('busy_timeout = 10000');
    rw.transaction(() => {
      const number = rw.prepare(
        `UPDATE projects SET next_ticket_number = next_ticket_number + 1 WHERE abbreviation = ? RETURNING id, next_ticket_number - 1 AS n`,
      );
      const ticket = rw.prepare(
        `INSERT INTO tickets (project_id, number, title, body, column_id, priority, tags, created_by, created_at, updated_at, column_entered_at)
         VALUES (?, ?, ?, '', 'coding-agent', 'normal', '[]', 'human', ?, ?, ?)`,
      );
      const history = rw.prepare(
        `INSERT INTO comments (ticket_id, type, author, body, to_column, created_at) VALUES (?, 'move', 'human', 'created', 'coding-agent', ?)`,
      );
      for (let i = 0; i < tickets; i++) {
        const p = number.get(keys[i % projects]);
        const now = Date.now();
        const id = Number(ticket.run(p.id, p.n, `pipeline ticket ${i}`, now, now, now).lastInsertRowid);
        history.run(id, now);
      }
      rw.prepare(`UPDATE heartbeats SET next_check_at = ?, empty_streak = 0, wake_seq = wake_seq + 1`).run(Date.now());
    }).immediate();
    rw.close();
    // one wake through the API pokes the scheduler, which finds every heartbeat due (set above)
    const woke = await d.api('POST', `/api/projects/${keys[0]}/wake`, {});
    if (woke.status !== 202) throw new Error(`wake answered ${woke.status}`);
    // the API's answer time while the pipeline runs, sampled every 2 s (a sample waits at most 5 s)
    const health = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const t = Date.now();
        const ok = await Promise.race([
          d.api('GET', '/api/health').then(
            (r) => r.status === 200,
            () => false,
          ),
          sleep(5000).then(() => false),
        ]);
        health.push(ok ? Date.now() - t : Infinity);
        await sleep(2000);
      }
    })();
    const filedMs = Date.now() - t0;
    let lastProgress = { n: 0, at: Date.now() };
    await waitFor(
      `${tickets} tickets in done`,
      () => {
        const n = doneCount.get().n;
        const ended = endedCount.get().n;
        if (ended !== lastProgress.n) lastProgress = { n: ended, at: Date.now() };
        else if (Date.now() - lastProgress.at > 60_000)
          throw new Error(`no run ended for 60 s (${ended} runs ended, ${n}/${tickets} tickets done):\n${d.output().slice(-3000)}`);
        return n === tickets && liveCount.get().n === 0;
      },
      3_600_000,
      20,
    );
    const elapsedMs = Date.now() - t0;
    sampling = false;
    await sampler;
    const cpu = cpuSchedSeconds(d.pid) - cpu0;
    const redisCpu = d.redisPid ? cpuSchedSeconds(d.redisPid) - redisCpu0 : null;

    const runs = db.prepare(`SELECT id, project_id, status, created_at, started_at, ended_at FROM runs`).all();
    const agents = new Map();
    for (const line of fs.readFileSync(log, 'utf8').trim().split('\n')) {
      const f = line.split(' ');
      agents.set(f[0], { processStart: Number(f[3]), end: Number(f[5]) });
    }
    const bad = runs.filter((r) => r.status !== 'success');
    const overhead = [];
    const reserveToSpawn = [];
    const exitToFinal = [];
    for (const r of runs) {
      const a = agents.get(r.id);
      if (!a) continue;
      reserveToSpawn.push(a.processStart - r.created_at);
      exitToFinal.push(r.ended_at - a.end);
      overhead.push(a.processStart - r.created_at + (r.ended_at - a.end));
    }
    // a ticket's wait between one agent's move and the next agent's reservation
    const moveToReserve = db
      .prepare(
        `SELECT r.created_at - (SELECT MAX(c.created_at) FROM comments c WHERE c.ticket_id = r.ticket_id AND c.type = 'move' AND c.to_column = r.column_id AND c.created_at <= r.created_at) AS ms FROM runs r`,
      )
      .all()
      .map((r) => r.ms);
    const globalOverlap = maxOverlap(runs.map((r) => [r.created_at, r.ended_at]));
    let projectOverlap = 0;
    const byProject = new Map();
    for (const r of runs) byProject.set(r.project_id, [...(byProject.get(r.project_id) ?? []), [r.created_at, r.ended_at]]);
    for (const list of byProject.values()) projectOverlap = Math.max(projectOverlap, maxOverlap(list));

    const tag = split ? '' : ' [shared CPUs]';
    report('pipeline', `tickets through 3 agent columns per minute${tag}`, (tickets / elapsedMs) * 60_000, 'tickets/min');
    report('pipeline', `agent runs per minute${tag}`, (runs.length / elapsedMs) * 60_000, 'runs/min');
    report('pipeline', `runs not successful (must be 0)${tag}`, bad.length, 'runs', { op: '<=', value: 0 });
    report('pipeline', `runs recorded (expected ${tickets * 3})${tag}`, runs.length, 'runs');
    report(
      'pipeline',
      `daemon work: CPU per run (all threads, /proc schedstat)${tag}`,
      (cpu * 1000) / runs.length,
      'ms',
      cpuTarget ? { op: '<', value: 30 } : null,
    );
    if (redisCpu !== null)
      report('pipeline', `redis-server CPU per run (the queue's own cost)${tag}`, (redisCpu * 1000) / runs.length, 'ms');
    report('pipeline', `wall: reserve→agent start + agent exit→finalized, p50${tag}`, percentile(overhead, 50), 'ms');
    report('pipeline', `wall: the same, p95${tag}`, percentile(overhead, 95), 'ms');
    report('pipeline', `  of which reservation → agent process start, p50${tag}`, percentile(reserveToSpawn, 50), 'ms');
    report('pipeline', `  of which agent last line → run finalized, p50${tag}`, percentile(exitToFinal, 50), 'ms');
    report('pipeline', `agent move → next reservation, p50 (waits for a free slot)${tag}`, percentile(moveToReserve, 50), 'ms');
    const answered = health.filter(Number.isFinite);
    report('pipeline', `GET /api/health during the run, p50 (${health.length} samples)${tag}`, percentile(answered, 50), 'ms');
    report('pipeline', `GET /api/health during the run: no answer within 5 s${tag}`, health.length - answered.length, 'samples');
    report('pipeline', `max live runs at once (cap ${GLOBAL_CAP})${tag}`, globalOverlap, 'runs', { op: '<=', value: GLOBAL_CAP });
    report('pipeline', `max live runs in one project at once (cap ${PROJECT_CAP})${tag}`, projectOverlap, 'runs', {
      op: '<=',
      value: PROJECT_CAP,
    });
    note(
      `tickets written and the scheduler woken in ${(filedMs / 1000).toFixed(1)} s of the ${(elapsedMs / 1000).toFixed(1)} s; each run is one Node process start of the agent (its own cost, not counted as daemon work)`,
    );
    note('the wall figures include waiting for a CPU: with 10 agents starting Node at once, every process queues for one');
    db.close();
  } finally {
    await d.stop();
  }
}
