// The daemon's life as a process: SIGTERM shuts it down cleanly (exit 0, pid file released, the
// database closed so its WAL is checkpointed away); a pid file left by a dead daemon is reported
// as stale and does not stop the next start; start twice refuses.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { daemonEnv, dispatchBin, startTestDaemon } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';
import { isAlive } from '../lib/pidfile.js';

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

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('a stale pid file is reported as stale, and the next start clears it', () => {
  const root = tempDir('pd-stale-');
  const env = daemonEnv(root);
  const dispatch = (...args: string[]) => spawnSync(process.execPath, [dispatchBin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  fs.mkdirSync(env.DISPATCH_HOME!, { recursive: true });
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
