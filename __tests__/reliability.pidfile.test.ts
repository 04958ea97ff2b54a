// The pid file a SIGKILL (or a reboot) leaves behind may name a pid the system has since given to
// another process. That process must neither block the next daemon nor be signalled by
// `dispatch daemon stop`; a pid file whose process really is older than the file still holds the
// lock.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { daemonEnv, dispatchBin, startTestDaemon } from './helpers/daemon.js';
import { pidAlive } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';

let bystander: ChildProcess;
beforeEach(() => {
  bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
});
afterEach(() => {
  bystander.kill('SIGKILL');
});

function stalePidFile(root: string, pid: number, startedAt: number): string {
  const home = path.join(root, 'home');
  fs.mkdirSync(home, { recursive: true });
  fs.writeFileSync(path.join(home, 'daemon.pid'), JSON.stringify({ pid, port: 1, started_at: startedAt }));
  return home;
}

test('a stale pid file whose pid now belongs to a younger process neither blocks the daemon nor gets it killed', async () => {
  const root = tempDir('pd-pid-');
  stalePidFile(root, bystander.pid!, Date.now() - 3600_000); // written by a daemon an hour ago
  const stop = spawnSync(process.execPath, [dispatchBin, 'daemon', 'stop'], { env: daemonEnv(root), encoding: 'utf8', timeout: 30_000 });
  expect(stop.stderr).not.toMatch(/\n\s+at /);
  expect(pidAlive(bystander.pid!)).toBe(true); // `daemon stop` did not signal it
  const d = await startTestDaemon({ root });
  try {
    expect((await d.api('GET', '/api/health')).body.pid).toBe(d.child.pid);
    expect(JSON.parse(fs.readFileSync(path.join(d.home, 'daemon.pid'), 'utf8')).pid).toBe(d.child.pid);
    expect(pidAlive(bystander.pid!)).toBe(true);
  } finally {
    await d.stop();
  }
});

test('a pid file whose process is older than the file still holds the lock', async () => {
  const root = tempDir('pd-pid-');
  stalePidFile(root, bystander.pid!, Date.now()); // the bystander was started before the file was written
  await expect(startTestDaemon({ root })).rejects.toThrow(/another daemon is already running on this home \(pid \d+, port 1\)/);
  expect(pidAlive(bystander.pid!)).toBe(true);
});
