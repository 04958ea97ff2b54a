// Wake-to-spawn for a new ticket in a big repository: its first run needs a worktree, which is a
// checkout of every file (seconds for 20,000 files) unless a spare worktree is ready (lib/spares.ts),
// which the ticket takes by a rename and a branch switch. One daemon per mode: `worktrees.spare` 0
// (a checkout per ticket) and 1 (the pool). Timed from the API request filing the ticket into
// coding-agent to the agent's process start (performance.timeOrigin, see bench/agent.cjs). With the
// pool, each sample waits until the spare was made again, as a ticket filed a while after the last
// one would find it; the agent parks its ticket in human, so main never moves. The same daemon then
// times tickets of a folder that is not a repository: the wake path with no worktree, the floor.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { benchAgent, note, percentile, report, sleep, startDaemon, tempRoot, waitFor } from './lib.js';

const TARGET = { op: '<', value: 200 };

/** A repository of `files` files of about 3.7 KB in one commit (20,000 of them: 74 MB, as the repository that was measured). */
function bigRepo(dir, files) {
  const git = (...args) =>
    execFileSync('git', ['-C', dir, '-c', 'user.name=Bench', '-c', 'user.email=bench@example.invalid', ...args], { stdio: 'ignore' });
  fs.mkdirSync(dir, { recursive: true });
  git('init', '-q', '-b', 'main');
  const body = 'x'.repeat(3_700);
  for (let i = 0; i < files; i++) {
    const sub = path.join(dir, 'src', `d${i % 200}`);
    if (i < 200) fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, `f${i}.txt`), `${i}\n${body}\n`);
  }
  git('add', '-A');
  git('commit', '-q', '-m', `${files} files`);
}

export async function worktrees({
  samples = Number(process.env.BENCH_WORKTREES_SAMPLES ?? 10),
  files = Number(process.env.BENCH_WORKTREES_FILES ?? 20_000),
} = {}) {
  console.log(`\nwake-to-spawn of a new ticket in a ${files}-file repository, without and with a spare worktree (${samples} samples each)`);
  for (const spare of [0, 1]) {
    const mode = spare ? 'with the pool' : 'without the pool';
    const root = tempRoot('pd-bench-worktrees-');
    const log = path.join(root, 'agents.log');
    fs.writeFileSync(log, '');
    bigRepo(path.join(root, 'dev', 'big'), files);
    const d = await startDaemon(root, {
      config: { worktrees: { spare }, agents: { env: { BENCH_AGENT_LOG: log, BENCH_AGENT_NEXT: 'human' } } },
      env: { DISPATCH_CLAUDE_BIN: benchAgent },
    });
    try {
      await d.project('big', 'big');
      const ready = path.join(d.home, 'worktrees', 'big', '.spare-1.ready');
      const agentStart = (key) => {
        for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
          const f = line.split(' ');
          if (f[1] === key) return Number(f[3]);
        }
        return null;
      };
      const sample = async (i, project = 'big') => {
        // the pool makes its spare in the background (within its 15 s look at every project)
        if (spare && project === 'big') await waitFor('a ready spare', () => fs.existsSync(ready), 300_000, 20);
        else await sleep(200);
        const t0 = Date.now();
        const res = await d.api('POST', '/api/tickets', { project, title: `new ticket ${i}`, column: 'coding-agent' });
        if (res.status !== 201) throw new Error(JSON.stringify(res.body));
        const key = res.body.ticket.key;
        const started = await waitFor(`agent of ${key}`, () => agentStart(key), 120_000, 2);
        await waitFor(
          `${key} parked`,
          async () => (await d.api('GET', `/api/tickets/${key}`)).body?.ticket?.column_id === 'human',
          60_000,
          20,
        );
        return started - t0;
      };
      await sample(0); // warm-up, not counted
      const rows = [];
      for (let i = 1; i <= samples; i++) rows.push(await sample(i));
      report('worktrees', `${mode}: request → agent process start, p50`, percentile(rows, 50), 'ms');
      report('worktrees', `${mode}: request → agent process start, p95`, percentile(rows, 95), 'ms', spare ? TARGET : null);
      if (spare) {
        // the same daemon's path with no worktree at all (a folder that is not a repository): the floor on this machine now
        await d.project('plain', 'pl');
        await sample(0, 'pl');
        const floor = [];
        for (let i = 1; i <= samples; i++) floor.push(await sample(i, 'pl'));
        report('worktrees', 'no worktree (a plain folder), same daemon: request → agent process start, p50', percentile(floor, 50), 'ms');
        report('worktrees', 'no worktree (a plain folder), same daemon: request → agent process start, p95', percentile(floor, 95), 'ms');
      }
    } finally {
      await d.stop();
    }
  }
  note(
    'without the pool each first run waits for `git worktree add` (a checkout of every file); with it, for `git worktree move` and a new branch HEAD points at',
  );
}
