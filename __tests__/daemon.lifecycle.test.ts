// The daemon's life as a process: SIGTERM shuts it down cleanly (exit 0, pid file released, the
// database closed so its WAL is checkpointed away); a pid file left by a dead daemon is reported
// as stale and does not stop the next start; start twice refuses. A merge in flight when SIGTERM
// arrives is waited for: it ends and is recorded before the database closes.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { daemonEnv, dispatchBin, startTestDaemon } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';
import { isAlive } from '../lib/pidfile.js';
import { comments, startEngineDaemon, waitFor } from './helpers/engine.js';
import { homeQueueCounts, useTestQueue } from './helpers/queue.js';
import { commitFile, head, initRepo, mergeHeadExists, porcelain } from './helpers/git.js';

test('SIGTERM: exit 0, pid file gone, database closed', async () => {
  const d = await startTestDaemon();
  const created = await d.api('POST', '/api/backups');
  expect(created.status).toBe(201); // the daemon wrote to its database
  expect(fs.existsSync(path.join(d.home, 'daemon.pid'))).toBe(true);
  expect(await d.stop('SIGTERM')).toBe(0);
  expect(fs.existsSync(path.join(d.home, 'daemon.pid'))).toBe(false);
  // SQLite removes the -wal file when the last connection closes cleanly
  expect(fs.existsSync(path.join(d.home, 'tasks.db-wal'))).toBe(false);
  const log = fs.readdirSync(path.join(d.home, 'logs')).find((f) => /^daemon-.*\.log$/.test(f))!;
  expect(fs.readFileSync(path.join(d.home, 'logs', log), 'utf8')).toMatch(/"message":"daemon stopping"/);
});

test('SIGTERM while the daemon is still starting (listening, engine not up yet): it stops cleanly once started, exit 0', async () => {
  // a registered repository, then a start whose `git rev-parse` is slow (a busy disk, say): the HTTP
  // server answers while the engine's start-up checks of the repository are still running
  const d = await startTestDaemon();
  const repo = path.join(d.projectsRoot, 'slowrepo');
  initRepo(repo);
  commitFile(repo, 'a.txt', 'a\n', 'start');
  expect((await d.api('POST', '/api/projects', { path: repo, type: 'software-dev', abbreviation: 'sr' })).status).toBe(201);
  expect(await d.stop('SIGTERM')).toBe(0);
  const bin = path.join(d.root, 'slowbin');
  fs.mkdirSync(bin);
  const realGit = spawnSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).stdout.trim();
  fs.writeFileSync(path.join(bin, 'git'), `#!/bin/sh\ncase "$*" in *rev-parse*) sleep 2;; esac\nexec '${realGit}' "$@"\n`, { mode: 0o755 });
  const slow = await startTestDaemon({ root: d.root, env: { PATH: `${bin}:${process.env.PATH}` } });
  const health = await slow.api('GET', '/api/health');
  expect(health.status).toBe(200);
  expect(await slow.stop('SIGTERM')).toBe(0); // not killed by the signal (exit code null) mid-start
  expect(fs.existsSync(path.join(slow.home, 'daemon.pid'))).toBe(false);
  expect(fs.existsSync(path.join(slow.home, 'tasks.db-wal'))).toBe(false);
}, 90_000);

test('SIGTERM during a merge: the daemon waits for the merge job to end and record it, then exits 0', async () => {
  const d = await startEngineDaemon({ config: { agents: { parallel_coding: true } } });
  const entered = path.join(d.root, 'hook-entered');
  const go = path.join(d.root, 'hook-go');
  try {
    const repo = path.join(d.projectsRoot, 'shop');
    initRepo(repo);
    commitFile(repo, 'readme.txt', 'shop\n', 'start');
    const before = head(repo);
    // the user's pre-commit hook holds the merge commit (only that: the agent's own commit has no MERGE_HEAD) until the test lets it go
    const hook = path.join(repo, '.git', 'hooks', 'pre-commit');
    fs.mkdirSync(path.dirname(hook), { recursive: true });
    const wait = `i=0; while [ ! -f '${go}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`;
    fs.writeFileSync(hook, `#!/bin/sh\nif [ -f "$(git rev-parse --git-dir)/MERGE_HEAD" ]; then touch '${entered}'; ${wait}; fi\n`, {
      mode: 0o755,
    });
    await d.project('shop', 'software-dev', 'sh');
    const script = {
      'coding-agent': [
        { do: 'write', file: 'feature.txt', content: 'feature\n' },
        { do: 'commit', message: 'add the feature' },
        { do: 'move', to: 'done' },
      ],
    };
    const t = await d.ticket('sh', 'coding-agent', script, 'a feature');
    await waitFor('the merge to reach the commit hook', () => fs.existsSync(entered), 60_000, 100);

    const exit = new Promise<number | null>((resolve) => d.child.once('exit', (code) => resolve(code)));
    d.child.kill('SIGTERM');
    const logFile = () =>
      path.join(
        d.home,
        'logs',
        fs.readdirSync(path.join(d.home, 'logs')).find((f) => /^daemon-.*\.log$/.test(f))!,
      );
    await waitFor('the daemon to begin stopping', () => /"message":"daemon stopping"/.test(fs.readFileSync(logFile(), 'utf8')), 30_000, 50);
    fs.writeFileSync(go, ''); // the merge may finish now, while the daemon is stopping
    expect(await exit).toBe(0);

    // the merge ended inside the stop and was recorded: main has the merge, the ticket is merged, nothing is left running
    expect(d.ticketRow(t.key).merged_at).toBeTruthy();
    expect(
      comments(d, t.key)
        .filter((c) => c.type === 'merge')
        .at(-1).body,
    ).toContain('feature.txt');
    expect(head(repo)).not.toBe(before);
    expect(fs.readFileSync(path.join(repo, 'feature.txt'), 'utf8')).toBe('feature\n');
    expect([porcelain(repo), mergeHeadExists(repo)]).toEqual(['', false]);
    expect((await homeQueueCounts(d.home)).merge.running).toBe(0);
    expect(fs.readFileSync(logFile(), 'utf8')).not.toMatch(/stopped before jobs ended/);
  } finally {
    fs.writeFileSync(go, '');
    await d.stop();
    fs.rmSync(d.root, { recursive: true, force: true });
  }
}, 180_000);

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('a stale pid file is reported as stale, and the next start clears it', async () => {
  const root = tempDir('pd-stale-');
  const env = daemonEnv(root);
  const dispatch = (...args: string[]) => spawnSync(process.execPath, [dispatchBin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  fs.mkdirSync(env.DISPATCH_HOME!, { recursive: true });
  await useTestQueue(env.DISPATCH_HOME!);
  fs.mkdirSync(env.DISPATCH_PROJECTS_ROOT!, { recursive: true });
  const pid = deadPid();
  expect(isAlive(pid)).toBe(false);
  const pidFile = path.join(env.DISPATCH_HOME!, 'daemon.pid');
  fs.writeFileSync(pidFile, JSON.stringify({ pid, port: 5757, started_at: 1 }));

  const status = dispatch('daemon', 'status');
  expect(status.status).toBe(3);
  expect(status.stdout).toContain(`stale pid file: pid ${pid} is gone`);
  expect(JSON.parse(dispatch('daemon', 'status', '--json').stdout)).toMatchObject({ running: false, pid, pid_file: 'stale' });

  const started = dispatch('daemon', 'start');
  expect(started.stderr).not.toMatch(/dispatch:/);
  expect(started.status).toBe(0);
  const info = JSON.parse(fs.readFileSync(pidFile, 'utf8')) as { pid: number };
  expect(info.pid).not.toBe(pid);
  expect(dispatch('daemon', 'status').stdout).toMatch(new RegExp(`running: pid ${info.pid}`));
  const again = dispatch('daemon', 'start');
  expect(again.status).toBe(1);
  expect(again.stderr).toMatch(new RegExp(`the daemon is already running \\(pid ${info.pid}`));
  const stopped = dispatch('daemon', 'stop');
  expect(stopped.stdout.trim()).toBe(`daemon stopped (pid ${info.pid})`);
  expect(isAlive(info.pid)).toBe(false);
  expect(fs.existsSync(pidFile)).toBe(false);
  expect(dispatch('daemon', 'stop').stdout.trim()).toBe('the daemon was not running');
  fs.rmSync(root, { recursive: true, force: true });
});
