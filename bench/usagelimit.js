// A usage-limit pause costs no spawns: one run hits the claude CLI's usage limit, then 100 tickets
// are filed across 10 projects while the limit holds. Counted: agent processes started before the
// reset (target 0 after the one that hit the limit), how soon after the reset moment the first
// runs start (as many as the caps allow, 10 here: the slowest of them must start within 1 s), and
// how long all of them take. The reset is a few seconds ahead (the pause margin is set to 0).
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { benchAgent, note, report, sleep, startDaemon, tempRoot, waitFor } from './lib.js';

export async function usagelimit({ tickets = Number(process.env.BENCH_LIMIT_TICKETS ?? 100), projects = 10 } = {}) {
  console.log(`\nusage-limit pause (${tickets} tickets waiting across ${projects} projects, caps 10 / 3)`);
  const root = tempRoot('pd-bench-limit-');
  const log = path.join(root, 'agents.log');
  fs.writeFileSync(log, '');
  const agents = { max_concurrent_global: 10, max_concurrent_per_project: 3, usage_limit_margin_seconds: 0 };
  const d = await startDaemon(root, { config: { agents }, env: { DISPATCH_CLAUDE_BIN: benchAgent } });
  try {
    const list = [];
    for (let i = 0; i < projects; i++) list.push(await d.project(`limit${i}`, `ul${i}`));
    const resetS = Math.ceil(Date.now() / 1000) + 10;
    const env = { BENCH_AGENT_LOG: log, BENCH_AGENT_NEXT: 'done', BENCH_AGENT_LIMIT_UNTIL: String(resetS) };
    const patched = await d.api('PATCH', '/api/config', { agents: { ...agents, env } });
    if (patched.status !== 200) throw new Error(JSON.stringify(patched.body));
    const file = async (p, title) => {
      const res = await d.api('POST', '/api/tickets', { project: p.abbreviation, title, column: 'coding-agent' });
      if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    };
    await file(list[0], 'hits the limit');
    await waitFor('the pause', async () => (await d.api('GET', '/api/health')).body.agent_cli_paused.length === 1, 30_000, 20);
    for (let i = 0; i < tickets; i++) await file(list[i % projects], `waiting ${i}`);
    const spawns = () =>
      fs
        .readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const f = l.split(' ');
          return { start: Number(f[3]), limited: f[6] === 'limited' };
        });
    const filedAt = Date.now();
    if (filedAt >= resetS * 1000) throw new Error('filing took past the reset; raise the reset delay');
    await sleep(resetS * 1000 - Date.now() - 50);
    const beforeReset = spawns().length;
    const db = new Database(d.dbPath, { readonly: true });
    const done = db.prepare(`SELECT COUNT(*) AS n FROM tickets WHERE column_id = 'done'`);
    await waitFor('every ticket done', () => done.get().n === tickets + 1, 300_000, 50);
    const after = spawns()
      .filter((s) => !s.limited)
      .map((s) => s.start - resetS * 1000)
      .sort((a, b) => a - b);
    // dispatched = the run reserved and its ticket claimed (the runs row); the agent's Node start follows
    const reserved = db
      .prepare(`SELECT created_at FROM runs WHERE created_at >= ? ORDER BY created_at`)
      .all(resetS * 1000)
      .map((r) => r.created_at - resetS * 1000);
    const limitedRuns = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE cause = 'usage_limit'`).get().n;
    report('usagelimit', `agent spawns while the limit held (after the one that hit it)`, beforeReset - 1, 'spawns', {
      op: '<=',
      value: 0,
    });
    report('usagelimit', `runs that hit the limit`, limitedRuns, 'runs', { op: '<=', value: 1 });
    report('usagelimit', `reset → first run reserved`, reserved[0], 'ms');
    report('usagelimit', `reset → 10th run reserved (the global cap filled)`, reserved[9], 'ms', { op: '<', value: 1000 });
    report('usagelimit', `reset → 10th agent process start`, after[9], 'ms');
    report('usagelimit', `reset → all ${tickets + 1} tickets started`, after.at(-1), 'ms');
    note(`the reset is the rate_limit_event's resetsAt (margin 0); the earliest agent start was ${after[0].toFixed(0)} ms after it`);
    db.close();
  } finally {
    await d.stop();
  }
}
