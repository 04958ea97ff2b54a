// Runners when things break, with real processes: a runner killed with -9 in the middle of a run
// (its run is finalized as crashed once, after the lease, and the ticket finishes on another
// runner; the next runner on its folder kills the agent it left), and the daemon stopped while a
// runner's agent works (the agent goes on, and its end report waits for the daemon to come back).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { maxOverlap, pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { ticketBin } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';
import { sh } from './helpers/git.js';
import { addRunner, runnerProject, startRunner, type RunningRunner } from './helpers/runner.js';
import { freePort } from './helpers/home.js';

let d: EngineDaemon | null = null;
const runners: RunningRunner[] = [];
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop('SIGKILL');
  await d?.stop();
  d = null;
});

const spawnedPid = async (r: RunningRunner, runId: string) =>
  Number(/ pid=(\d+)/.exec(await r.line(new RegExp(`agent spawned run=${runId} `)))![1]);

test('a runner killed with -9 mid-run: the run is finalized crashed once after the lease, the ticket finishes on another runner', async () => {
  d = await startEngineDaemon({ config: { agents: { parallel_coding: true }, runners: { lease_seconds: 3 } } });
  const { repo } = await runnerProject(d, 'shop', 'sh');
  const tokenA = await addRunner(d, 'ra', 1);
  const tokenB = await addRunner(d, 'rb', 1);
  const a = startRunner({ name: 'ra', token: tokenA, daemonUrl: d.url, root: d.root });
  runners.push(a);
  await a.line(/ ready /);
  const envFile = path.join(d.root, 'first-agent.env.json');
  const t = await d.ticket(
    'sh',
    'coding-agent',
    {
      'coding-agent': [
        [{ do: 'env', file: envFile }, { do: 'hang' }],
        [
          { do: 'write', file: 'fixed.txt', content: 'fixed\n' },
          { do: 'commit', message: 'fix' },
          { do: 'move', to: 'done' },
        ],
      ],
    },
    'crash me',
  );
  const first = await waitFor('the first run started on ra', () => d!.runs(t.key).find((x) => x.status === 'running'), 120_000);
  const pid = await spawnedPid(a, first.id);
  await waitFor('the agent at work', () => fs.existsSync(envFile) && fs.statSync(envFile).size > 0, 60_000);
  const secret = (JSON.parse(fs.readFileSync(envFile, 'utf8')) as Record<string, string>).DISPATCH_RUN_SECRET!;

  await a.stop('SIGKILL');
  expect(pidAlive(pid)).toBe(true); // the runner's agent outlives it, as after a real kill -9
  const b = startRunner({ name: 'rb', token: tokenB, daemonUrl: d.url, root: d.root });
  runners.push(b);

  await waitFor('the ticket merged', () => d!.ticketRow(t.key).merged_at, 180_000, 200);
  const runs = d.runs(t.key);
  expect(runs.map((x) => x.status)).toEqual(['crashed', 'success']);
  expect(runs[0].id).toBe(first.id);
  expect(runs[1].runner_id).not.toBe(runs[0].runner_id);
  expect(b.output()).toMatch(new RegExp(`end delivered run=${runs[1].id} .*status=success`));
  // never two live runs of the ticket: the retry was reserved only after the crash was recorded
  expect(maxOverlap(runs)).toBe(1);
  expect(runs[1].created_at).toBeGreaterThanOrEqual(runs[0].ended_at);
  expect(sh(repo, ['show', 'main:fixed.txt'])).toBe('fixed\n');

  // the orphaned agent's secret died with its run: through the daemon it can change nothing
  const orphan = spawnSync(process.execPath, [ticketBin, 'comment', t.key, 'comment', 'still here'], {
    env: { PATH: process.env.PATH, DISPATCH_API_URL: d.url, DISPATCH_RUN_SECRET: secret },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(orphan.status).toBe(1);
  expect(orphan.stderr).toMatch(/^ticket: .*(has ended|crashed)/);

  // the next runner started on ra's folder kills what ra left behind
  const again = startRunner({ name: 'ra', token: tokenA, daemonUrl: d.url, root: d.root, dir: a.dir });
  runners.push(again);
  await again.line(new RegExp(`killed leftover agent run=${first.id} ticket=${t.key} pid=${pid}`));
  await waitFor('the leftover agent gone', () => !pidAlive(pid), 30_000, 100);
  await again.line(/ ready /);
  // and the run stays as the daemon finalized it, once
  expect(d.runs(t.key).map((x) => x.status)).toEqual(['crashed', 'success']);
}, 300_000);

test('the daemon stopped while a runner works: the agent goes on, its end report is delivered when the daemon is back', async () => {
  const port = await freePort();
  const root = tempDir('pd-daemon-');
  const opts = {
    root,
    env: { DISPATCH_PORT: String(port) },
    config: { agents: { parallel_coding: true }, runners: { lease_seconds: 10 } },
  };
  d = await startEngineDaemon(opts);
  const { remote, repo } = await runnerProject(d, 'shop', 'sh');
  const r = startRunner({ name: 'r1', token: await addRunner(d, 'r1', 1), daemonUrl: d.url, root });
  runners.push(r);
  const go = path.join(root, 'go');
  const reading = path.join(root, 'agent-read-its-ticket.json');
  const t = await d.ticket(
    'sh',
    'coding-agent',
    {
      'coding-agent': [
        [
          { do: 'env', file: reading },
          { do: 'wait', file: go },
          { do: 'write', file: 'offline.txt', content: 'made offline\n' },
          { do: 'commit', message: 'offline work' },
        ],
        [{ do: 'move', to: 'done' }],
      ],
    },
    'through an outage',
  );
  const first = await waitFor('the run started on the runner', () => d!.runs(t.key).find((x) => x.status === 'running'), 120_000);
  const pid = await spawnedPid(r, first.id);
  // the agent has read its ticket (through the daemon) and works on
  await waitFor('the agent at work', () => fs.existsSync(reading) && fs.statSync(reading).size > 0, 60_000);

  expect(await d.stop()).toBe(0);
  await r.line(/daemon unreachable/);
  expect(pidAlive(pid)).toBe(true);
  fs.writeFileSync(go, '');
  // the agent finishes its work with the daemon away: committed, pushed, and the report held
  await r.line(new RegExp(`agent exited run=${first.id} .*exit_code=0`));
  await r.line(new RegExp(`branch pushed run=${first.id}`));
  await r.line(new RegExp(`end report held run=${first.id}`));
  expect(sh(remote, ['show', `refs/heads/ticket/${t.key}:offline.txt`])).toBe('made offline\n');
  expect(fs.readdirSync(path.join(r.dir, 'runs'))).toContain(`${first.id}.json`);

  d = await startEngineDaemon(opts);
  expect(d.port).toBe(port);
  await r.line(new RegExp(`end delivered run=${first.id} ticket=${t.key} status=success`), 60_000);
  const ended = d.runs(t.key)[0];
  expect(ended.id).toBe(first.id);
  expect(ended.status).toBe('success');
  expect(ended.exit_code).toBe(0);
  // the transcript written while the daemon was away reached it
  const tr = await d.api('GET', `/api/runs/${first.id}/transcript`);
  expect(tr.body.text).toContain('offline work');
  // and the ticket goes on from the pushed branch to main
  await waitFor('the ticket merged', () => d!.ticketRow(t.key).merged_at, 180_000, 200);
  expect(sh(repo, ['show', 'main:offline.txt'])).toBe('made offline\n');
  expect(d.runs(t.key).map((x) => x.status)).toEqual(['success', 'success']);
}, 300_000);

test('SIGTERM: the runner takes no more work, lets its agent finish and report, then exits; a second signal kills the agent', async () => {
  d = await startEngineDaemon({ config: { agents: { parallel_coding: true } } });
  await runnerProject(d, 'shop', 'sh');
  const r = startRunner({ name: 'r1', token: await addRunner(d, 'r1', 1), daemonUrl: d.url, root: d.root });
  runners.push(r);
  const go = path.join(d.root, 'go');
  const reading = path.join(d.root, 'reading.json');
  const first = await d.ticket(
    'sh',
    'coding-agent',
    {
      'coding-agent': [
        { do: 'env', file: reading },
        { do: 'wait', file: go },
        { do: 'move', to: 'done' },
      ],
    },
    'finish me',
  );
  const run = await waitFor('the run started', () => d!.runs(first.key).find((x) => x.status === 'running'), 120_000);
  await waitFor('the agent at work', () => fs.existsSync(reading) && fs.statSync(reading).size > 0, 60_000);
  r.child.kill('SIGTERM');
  await r.line(/stopping signal=SIGTERM running=1/);
  // a ticket filed now is not taken by the stopping runner
  const later = await d.ticket('sh', 'coding-agent', { 'coding-agent': [{ do: 'move', to: 'done' }] }, 'later');
  fs.writeFileSync(go, '');
  const code = await new Promise<number | null>((resolve) => r.child.once('exit', resolve));
  expect(code).toBe(0);
  expect(r.output()).toMatch(new RegExp(`end delivered run=${run.id} ticket=${first.key} status=success`));
  expect(d.runs(first.key).map((x) => x.status)).toEqual(['success']);
  expect(r.output()).not.toMatch(new RegExp(`run taken .*ticket=${later.key}`));

  // another runner takes the waiting ticket; a second signal kills its agent, whose end is still reported
  const r2 = startRunner({ name: 'r2', token: await addRunner(d, 'r2', 1), daemonUrl: d.url, root: d.root });
  runners.push(r2);
  await waitFor('the later ticket done', () => d!.ticketRow(later.key).column_id === 'done', 120_000, 100);
  const stuck = await d.ticket('sh', 'coding-agent', { 'coding-agent': [{ do: 'hang' }] }, 'stuck');
  const stuckRun = await waitFor('the stuck run started', () => d!.runs(stuck.key).find((x) => x.status === 'running'), 120_000);
  const pid = await spawnedPid(r2, stuckRun.id);
  r2.child.kill('SIGTERM');
  await r2.line(/stopping signal=SIGTERM running=1/);
  expect(pidAlive(pid)).toBe(true);
  const exited = new Promise<number | null>((resolve) => r2.child.once('exit', resolve));
  r2.child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(pidAlive(pid)).toBe(false);
  expect(r2.output()).toMatch(new RegExp(`killing agent run=${stuckRun.id} `));
  expect(r2.output()).toMatch(new RegExp(`end delivered run=${stuckRun.id} ticket=${stuck.key} status=failed`));
  expect(fs.readdirSync(path.join(r2.dir, 'runs'))).toEqual([]);
}, 300_000);
