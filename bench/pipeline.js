// Pipeline throughput: tickets written into coding-agent across 20 projects flow through
// coding-agent → code-reviewer → security-reviewer → done, each step done by the instant bench
// agent (it only runs `ticket move`), with caps 10 global / 3 per project. Reports tickets per
// minute, the daemon's overhead per run (reservation → agent process start, plus agent's last line
// → run finalized), the daemon's CPU per run, and the largest overlap of live runs from the runs
// table (the caps must hold).
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { benchAgent, cpuSchedSeconds, note, percentile, report, startDaemon, tempRoot, waitFor } from './lib.js';

const GLOBAL_CAP = 10;
const PROJECT_CAP = 3;

/** The largest number of intervals open at once. */
function maxOverlap(intervals) {
  const edges = [];
  for (const [a, b] of intervals) edges.push([a, 1], [b, -1]);
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]); // an end before a start at the same ms
  let open = 0;
  let max = 0;
  for (const [, delta] of edges) max = Math.max(max, (open += delta));
  return max;
}

export async function pipeline({
  tickets = Number(process.env.BENCH_PIPELINE_TICKETS ?? 100),
  projects = Number(process.env.BENCH_PIPELINE_PROJECTS ?? 20),
  parallelCoding = process.env.BENCH_PARALLEL_CODING !== '0',
} = {}) {
  console.log(`\npipeline throughput (${tickets} tickets across ${projects} projects, 3 agent columns, caps ${GLOBAL_CAP}/${PROJECT_CAP}, parallel_coding ${parallelCoding ? 'on' : 'off'})`);
  const root = tempRoot('pd-bench-pipeline-');
  const log = path.join(root, 'agents.log');
  fs.writeFileSync(log, '');
  const d = await startDaemon(root, {
    config: {
      agents: { max_concurrent_global: GLOBAL_CAP, max_concurrent_per_project: PROJECT_CAP, parallel_coding: parallelCoding, circuit_breaker_max_runs: 3, env: { BENCH_AGENT_LOG: log } },
    },
    env: { DISPATCH_CLAUDE_BIN: benchAgent },
  });
  try {
    const keys = [];
    for (let i = 0; i < projects; i++) keys.push((await d.project(`pipe${i}`, `pp${i}`)).abbreviation);
    const db = new Database(d.dbPath, { readonly: true });
    const doneCount = db.prepare(`SELECT COUNT(*) AS n FROM tickets WHERE column_id = 'done'`);
    const liveCount = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running')`);
    const cpu0 = cpuSchedSeconds(d.pid);
    const t0 = Date.now();
    // every ticket is written into coding-agent in one transaction (the same rows createTicket
    // writes, and the heartbeat marked due), then each project is woken once through the API: the
    // clock measures the engine, not 1,000 HTTP requests competing with it for the CPU
    const rw = new Database(d.dbPath);
    rw.pragma('busy_timeout = 10000');
    rw.transaction(() => {
      const number = rw.prepare(`UPDATE projects SET next_ticket_number = next_ticket_number + 1 WHERE abbreviation = ? RETURNING id, next_ticket_number - 1 AS n`);
      const ticket = rw.prepare(
        `INSERT INTO tickets (project_id, number, title, body, column_id, priority, tags, created_by, created_at, updated_at, column_entered_at)
         VALUES (?, ?, ?, '', 'coding-agent', 'normal', '[]', 'human', ?, ?, ?)`,
      );
      const history = rw.prepare(`INSERT INTO comments (ticket_id, type, author, body, to_column, created_at) VALUES (?, 'move', 'human', 'created', 'coding-agent', ?)`);
      for (let i = 0; i < tickets; i++) {
        const p = number.get(keys[i % projects]);
        const now = Date.now();
        const id = Number(ticket.run(p.id, p.n, `pipeline ticket ${i}`, now, now, now).lastInsertRowid);
        history.run(id, now);
      }
      rw.prepare(`UPDATE heartbeats SET next_check_at = ?, empty_streak = 0, wake_seq = wake_seq + 1`).run(Date.now());
    }).immediate();
    rw.close();
    for (const key of keys) await d.api('POST', `/api/projects/${key}/wake`, {});
    const filedMs = Date.now() - t0;
    let lastProgress = { n: 0, at: Date.now() };
    await waitFor(
      `${tickets} tickets in done`,
      () => {
        const n = doneCount.get().n;
        if (n !== lastProgress.n) lastProgress = { n, at: Date.now() };
        else if (Date.now() - lastProgress.at > 60_000) throw new Error(`no progress for 60 s at ${n}/${tickets} done:\n${d.output().slice(-3000)}`);
        return n === tickets && liveCount.get().n === 0;
      },
      3_600_000,
      20,
    );
    const elapsedMs = Date.now() - t0;
    const cpu = cpuSchedSeconds(d.pid) - cpu0;

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
    const mean = overhead.reduce((a, b) => a + b, 0) / overhead.length;

    report('pipeline', 'tickets through 3 agent columns per minute', (tickets / elapsedMs) * 60_000, 'tickets/min');
    report('pipeline', 'agent runs per minute', (runs.length / elapsedMs) * 60_000, 'runs/min');
    report('pipeline', 'runs not successful (must be 0)', bad.length, 'runs', { op: '<=', value: 0 });
    report('pipeline', `runs recorded (expected ${tickets * 3})`, runs.length, 'runs');
    report('pipeline', 'daemon overhead per run, p50 (reserve→spawn + exit→final)', percentile(overhead, 50), 'ms', { op: '<', value: 30 });
    report('pipeline', 'daemon overhead per run, mean', mean, 'ms');
    report('pipeline', 'daemon overhead per run, p95', percentile(overhead, 95), 'ms');
    report('pipeline', '  of which reservation → agent process start, p50', percentile(reserveToSpawn, 50), 'ms');
    report('pipeline', '  of which agent last line → run finalized, p50', percentile(exitToFinal, 50), 'ms');
    report('pipeline', 'daemon CPU per run (all threads, /proc schedstat)', (cpu * 1000) / runs.length, 'ms', { op: '<', value: 30 });
    report('pipeline', 'agent move → next reservation, p50 (waits for a free slot)', percentile(moveToReserve, 50), 'ms');
    report('pipeline', `max live runs at once (cap ${GLOBAL_CAP})`, globalOverlap, 'runs', { op: '<=', value: GLOBAL_CAP });
    report('pipeline', `max live runs in one project at once (cap ${PROJECT_CAP})`, projectOverlap, 'runs', { op: '<=', value: PROJECT_CAP });
    note(`tickets written and projects woken in ${(filedMs / 1000).toFixed(1)} s of the ${(elapsedMs / 1000).toFixed(1)} s; each run is one Node process start of the agent (its own cost, not counted as overhead)`);
    if (tickets < 1000) note(`${tickets} tickets by default so \`npm run bench\` stays under 10 minutes on 2 cores; BENCH_PIPELINE_TICKETS=1000 runs the full size`);
    db.close();
  } finally {
    await d.stop();
  }
}
