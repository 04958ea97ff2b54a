// Runners: the pipeline of bench/pipeline.js with every agent run on `dispatch runner` processes
// instead of the daemon's own machine, once with one runner and once with two sharing the same
// number of slots. Each project is a git repository with a bare clone as its remote; the runners
// clone it, the instant bench agent moves its ticket through the daemon's API (ticket.cjs over
// HTTP), the runner pushes the ticket branch and reports the end, and the daemon fetches it back
// and merges it when the ticket is done. Reports tickets per minute, the daemon's CPU per run and
// each runner's, and the largest overlap of live runs (the caps and the runners' slots must hold).
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { benchAgent, cpuSchedSeconds, dispatchBin, maxOverlap, note, report, sleep, startDaemon, tempRoot, waitFor } from './lib.js';

const SLOTS = 6;

export async function runners() {
  const tickets = Number(process.env.BENCH_RUNNERS_TICKETS ?? 60);
  const projects = Number(process.env.BENCH_RUNNERS_PROJECTS ?? 6);
  for (const count of [1, 2]) await runnersRun({ tickets, projects, count });
}

async function runnersRun({ tickets, projects, count }) {
  const perRunner = Math.ceil(SLOTS / count);
  console.log(
    `\nrunners (${tickets} tickets across ${projects} projects, 3 agent columns, ${count} runner process${count === 1 ? '' : 'es'} × ${perRunner} slots, caps ${SLOTS}/3)`,
  );
  const root = tempRoot('pd-bench-runners-');
  const log = path.join(root, 'agents.log');
  fs.writeFileSync(log, '');
  const d = await startDaemon(root, {
    config: {
      agents: { max_concurrent_global: SLOTS, max_concurrent_per_project: 3, env: { BENCH_AGENT_LOG: log } },
      runners: { lease_seconds: 30 },
    },
  });
  const procs = [];
  try {
    // a git identity for the daemon's merges and the runners' commits
    fs.writeFileSync(path.join(d.env.HOME, '.gitconfig'), '[user]\n\tname = Bench\n\temail = bench@example.invalid\n');
    const keys = [];
    for (let i = 0; i < projects; i++) {
      const dir = path.join(d.env.DISPATCH_PROJECTS_ROOT, `run${i}`);
      const remote = path.join(root, 'remotes', `run${i}.git`);
      fs.mkdirSync(dir, { recursive: true });
      const genv = { ...process.env, HOME: d.env.HOME };
      execFileSync('git', ['init', '-q', '-b', 'main'], { cwd: dir, env: genv });
      fs.writeFileSync(path.join(dir, 'README.md'), `project ${i}\n`);
      execFileSync('git', ['add', '-A'], { cwd: dir, env: genv });
      execFileSync('git', ['commit', '-qm', 'start'], { cwd: dir, env: genv });
      execFileSync('git', ['clone', '-q', '--bare', dir, remote], { env: genv });
      const res = await d.api('POST', '/api/projects', { path: dir, type: 'software-dev', abbreviation: `rn${i}` });
      if (res.status !== 201) throw new Error(`register failed: ${JSON.stringify(res.body)}`);
      const set = await d.api('PATCH', `/api/projects/rn${i}`, { remote_url: remote, runs_on: 'runners' });
      if (set.status !== 200) throw new Error(`projects set failed: ${JSON.stringify(set.body)}`);
      keys.push(`rn${i}`);
    }
    // each runner a machine in miniature: its HOME, its folder, and `claude` on PATH being the bench agent
    for (let r = 0; r < count; r++) {
      const name = `bench-${r + 1}`;
      const added = await d.api('POST', '/api/runners', { name, slots: perRunner });
      if (added.status !== 201) throw new Error(`runners add failed: ${added.status} ${JSON.stringify(added.body)}`);
      const home = path.join(root, name, 'home');
      const bin = path.join(root, name, 'bin');
      fs.mkdirSync(home, { recursive: true });
      fs.mkdirSync(bin, { recursive: true });
      fs.writeFileSync(path.join(home, '.gitconfig'), '[user]\n\tname = Runner\n\temail = runner@example.invalid\n');
      fs.symlinkSync(benchAgent, path.join(bin, 'claude'));
      const env = {
        PATH: `${bin}${path.delimiter}${process.env.PATH}`,
        HOME: home,
        LANG: 'C.UTF-8',
        DISPATCH_RUNNER_TOKEN: added.body.token,
      };
      const args = [
        dispatchBin,
        'runner',
        '--daemon',
        d.url,
        '--slots',
        String(perRunner),
        '--name',
        name,
        '--dir',
        path.join(root, name, 'state'),
      ];
      const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c) => (out = (out + c).slice(-5000)));
      child.stderr.on('data', (c) => (out = (out + c).slice(-5000)));
      procs.push({ child, output: () => out });
    }
    const db = new Database(d.dbPath, { readonly: true });
    const merged = db.prepare(`SELECT COUNT(*) AS n FROM tickets WHERE column_id = 'done' AND merged_at IS NOT NULL`);
    const live = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running')`);
    const cpu0 = cpuSchedSeconds(d.pid);
    const runnerCpu0 = procs.map((p) => cpuSchedSeconds(p.child.pid));
    const t0 = Date.now();
    for (let i = 0; i < tickets; i++) {
      const res = await d.api('POST', '/api/tickets', { project: keys[i % projects], title: `runner ticket ${i}`, column: 'coding-agent' });
      if (res.status !== 201) throw new Error(`ticket failed: ${res.status} ${JSON.stringify(res.body)}`);
    }
    await waitFor(
      `${tickets} tickets merged`,
      () => {
        for (const p of procs) if (p.child.exitCode !== null) throw new Error(`a runner exited with ${p.child.exitCode}:\n${p.output()}`);
        return merged.get().n === tickets && live.get().n === 0;
      },
      1_800_000,
      50,
    );
    const elapsedMs = Date.now() - t0;
    const cpu = cpuSchedSeconds(d.pid) - cpu0;
    const runnerCpu = procs.reduce((sum, p, i) => sum + cpuSchedSeconds(p.child.pid) - runnerCpu0[i], 0);
    const runs = db.prepare(`SELECT status, runner_id, created_at, ended_at FROM runs`).all();
    const bad = runs.filter((r) => r.status !== 'success');
    const tag = ` [${count} runner${count === 1 ? '' : 's'}]`;
    report('runners', `tickets through 3 agent columns and merged, per minute${tag}`, (tickets / elapsedMs) * 60_000, 'tickets/min');
    report('runners', `runs not successful (must be 0)${tag}`, bad.length, 'runs', { op: '<=', value: 0 });
    report('runners', `runs not on a runner (must be 0)${tag}`, runs.filter((r) => r.runner_id === null).length, 'runs', {
      op: '<=',
      value: 0,
    });
    report('runners', `daemon CPU per run (API, transcript, fetch and merge included)${tag}`, (cpu * 1000) / runs.length, 'ms');
    report('runners', `runner processes' own CPU per run (agents not counted)${tag}`, (runnerCpu * 1000) / runs.length, 'ms');
    report('runners', `max live runs at once (cap ${SLOTS})${tag}`, maxOverlap(runs.map((r) => [r.created_at, r.ended_at])), 'runs', {
      op: '<=',
      value: SLOTS,
    });
    note("every runner and agent shares this machine's CPUs with the daemon; a runner on its own machine takes the agents' cost off it");
    db.close();
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await sleep(500);
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await d.stop();
  }
}
