// Wake-to-spawn latency: a ticket filed into an agent column (through the API and the dispatch
// CLI) until its agent process has started. (`ticket.cjs` moves only the ticket of the agent run
// calling it; the next agent then starts when that run ends, which the pipeline benchmark times.) The start is what the agent's own
// process reports (performance.timeOrigin, see bench/agent.cjs), on the same clock as the filer.
// Two spans per sample: from the moment the filer began (end to end, including the CLI's own Node
// start) and from the commit of the ticket (column_entered_at in the database) to the spawn.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { benchAgent, dispatchBin, note, percentile, report, sleep, startDaemon, tempRoot, waitFor } from './lib.js';

const TARGET = { op: '<', value: 300 };

export async function latency({ samples = Number(process.env.BENCH_LATENCY_SAMPLES ?? 30) } = {}) {
  console.log(`\nwake-to-spawn latency (${samples} samples per path, one at a time)`);
  const root = tempRoot('pd-bench-latency-');
  const log = path.join(root, 'agents.log');
  fs.writeFileSync(log, '');
  const d = await startDaemon(root, {
    config: { agents: { env: { BENCH_AGENT_LOG: log, BENCH_AGENT_NEXT: 'done' } } },
    env: { DISPATCH_CLAUDE_BIN: benchAgent },
  });
  try {
    const project = await d.project('latency', 'lat');
    const db = new Database(d.dbPath, { readonly: true });
    // the moment the ticket entered coding-agent: its history row (the agent later moves it on)
    const entered = db.prepare(
      `SELECT MIN(c.created_at) AS at FROM comments c JOIN tickets t ON t.id = c.ticket_id JOIN projects p ON p.id = t.project_id
       WHERE p.abbreviation = ? AND t.number = ? AND c.type = 'move' AND c.to_column = 'coding-agent'`,
    );
    const live = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running')`);
    const agentStart = (key) => {
      for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
        const f = line.split(' ');
        if (f[1] === key) return { processStart: Number(f[3]), firstLine: Number(f[4]) };
      }
      return null;
    };
    const sample = async (file) => {
      const t0 = Date.now();
      const key = await file();
      const filerDone = Date.now();
      const started = await waitFor(`agent of ${key}`, () => agentStart(key), 30_000, 2);
      // the run is finalized before the next sample, so samples do not overlap
      await waitFor('run finalized', () => live.get().n === 0, 30_000, 5);
      const [abbr, n] = key.split('-');
      const committed = entered.get(abbr, Number(n)).at;
      return {
        total: started.processStart - t0,
        fromCommit: started.processStart - committed,
        firstLine: started.firstLine - t0,
        filer: filerDone - t0,
      };
    };

    const paths = {
      api: async () => {
        const res = await d.api('POST', '/api/tickets', {
          project: project.abbreviation,
          title: 'latency via api',
          column: 'coding-agent',
        });
        if (res.status !== 201) throw new Error(JSON.stringify(res.body));
        return res.body.ticket.key;
      },
      cli: async () => {
        const r = spawnSync(
          process.execPath,
          [dispatchBin, 'ticket', 'new', '-p', project.abbreviation, '-t', 'latency via cli', '-c', 'coding-agent', '--json'],
          { env: d.env, encoding: 'utf8' },
        );
        if (r.status !== 0) throw new Error(`dispatch ticket new failed: ${r.stderr}`);
        return JSON.parse(r.stdout).key;
      },
    };

    for (const [name, file] of Object.entries(paths)) {
      await sample(file); // warm-up, not counted
      const rows = [];
      for (let i = 0; i < samples; i++) rows.push(await sample(file));
      const total = rows.map((r) => r.total);
      const fromCommit = rows.map((r) => r.fromCommit);
      report('latency', `${name}: filer start → agent process start, p50`, percentile(total, 50), 'ms');
      report('latency', `${name}: filer start → agent process start, p95`, percentile(total, 95), 'ms', TARGET);
      report('latency', `${name}: commit → agent process start, p50`, percentile(fromCommit, 50), 'ms');
      report('latency', `${name}: commit → agent process start, p95`, percentile(fromCommit, 95), 'ms', TARGET);
      report(
        'latency',
        `${name}: filer's own wall time (request or process), p50`,
        percentile(
          rows.map((r) => r.filer),
          50,
        ),
        'ms',
      );
      report(
        'latency',
        `${name}: filer start → agent's first JS line, p95`,
        percentile(
          rows.map((r) => r.firstLine),
          95,
        ),
        'ms',
      );
      await sleep(50);
    }
    note(
      `"commit → agent process start" is the daemon's part: from the ticket's history row entering coding-agent to the agent's performance.timeOrigin`,
    );
    note(
      `"filer start" includes the filer's own process start (dispatch CLI: Node + yargs); the first JS line adds the agent's own Node start`,
    );
    db.close();
  } finally {
    await d.stop();
  }
}
