// `install` and `uninstall` with a service manager: the unit is written, enabled and started
// through the runner (recorded), the health check accepts only the service's own pid, a second
// install only re-enables, and uninstall disables and removes it. The fake systemd really runs
// the unit's ExecStart, so the daemon at the end is the real one.
import fs from 'node:fs';
import path from 'node:path';
import { install, uninstall, type InstallUi } from '../lib/install.js';
import { pathsFor } from '../lib/paths.js';
import { isAlive, readPidFile } from '../lib/pidfile.js';
import { FakeSystemd } from './helpers/fakeSystemd.js';
import { tempDir } from './helpers/home.js';
import { repoRoot } from './helpers/daemon.js';

const lines: string[] = [];
const ui: InstallUi = { say: (l) => lines.push(l), warn: (l) => lines.push(`warning: ${l}`), waiting: () => {} };

let root: string;
let fake: FakeSystemd;
afterEach(() => {
  if (fake?.running()) process.kill(fake.pid!, 'SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});

function setup() {
  root = tempDir('pd-install-svc-');
  const userHome = path.join(root, 'userhome');
  const paths = pathsFor(path.join(root, 'home'));
  fs.mkdirSync(paths.home, { recursive: true });
  fs.mkdirSync(path.join(root, 'dev', 'shop'), { recursive: true });
  // a config of the user's own: install must keep it (port 0: any free port)
  fs.writeFileSync(
    paths.config,
    JSON.stringify({ port: 0, projects_root: path.join(root, 'dev'), claude_binary: path.join(root, 'bin', 'claude') }),
  );
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin);
  for (const name of ['claude', 'xdg-open']) fs.writeFileSync(path.join(bin, name), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const unitFile = path.join(userHome, '.config', 'systemd', 'user', 'projectdispatcher.service');
  fake = new FakeSystemd(unitFile, userHome, path.join(root, 'journal.log'));
  const env = { PATH: `${bin}:${process.env.PATH}`, DISPLAY: ':0' };
  return { paths, userHome, unitFile, env };
}

test('install enables and starts the unit, verifies its pid, opens the browser; again only re-enables; uninstall removes it', async () => {
  const { paths, userHome, unitFile, env } = setup();
  const opts = { paths, ui, env, platform: 'linux' as const, userHome, uid: 1000, runner: fake, timeoutMs: 20_000 };

  const first = await install(opts);
  expect(first.mode).toBe('service');
  expect(first.serviceFile).toBe(unitFile);
  expect(first.serviceFileChanged).toBe(true);
  expect(first.agentBinary).toBe(path.join(root, 'bin', 'claude'));
  expect(fake.lines()).toEqual([
    'systemctl --user show-environment',
    'systemctl --user daemon-reload',
    'systemctl --user enable projectdispatcher.service',
    'systemctl --user restart projectdispatcher.service',
  ]);
  expect(first.pid).toBe(fake.pid);
  expect(readPidFile(paths.pidFile)?.pid).toBe(fake.pid);
  // the unit's env -i: nothing of the manager's own environment reaches the daemon (agents can read it)
  const environ = fs.readFileSync(`/proc/${fake.pid}/environ`, 'utf8').split('\0').filter(Boolean);
  expect(environ.join('\n')).not.toMatch(/PD_MANAGER_SECRET|imported-by-a-desktop-session/);
  expect(environ).toContain(`DISPATCH_HOME=${paths.home}`);
  expect(environ).toContain(`PATH=${env.PATH}`);
  const health = await (await fetch(`${first.url}/api/health`)).json();
  expect(health).toMatchObject({ ok: true, pid: fake.pid, home: paths.home });
  expect(fake.launched).toEqual([['xdg-open', first.url]]);
  expect(first.discovered.added).toEqual([path.join(root, 'dev', 'shop')]);

  const unitBefore = fs.statSync(unitFile);
  const configBefore = fs.readFileSync(paths.config, 'utf8');
  const pid = fake.pid;
  fake.calls.length = 0;
  const second = await install({ ...opts, open: false });
  expect(second.serviceFileChanged).toBe(false);
  expect(fake.lines()).toEqual(['systemctl --user show-environment', 'systemctl --user enable --now projectdispatcher.service']);
  expect(second.pid).toBe(pid); // the running daemon was left alone
  expect(fake.launched).toHaveLength(1);
  expect(fs.statSync(unitFile).mtimeMs).toBe(unitBefore.mtimeMs);
  expect(fs.readFileSync(paths.config, 'utf8')).toBe(configBefore);

  fake.calls.length = 0;
  const removed = await uninstall({ paths, ui, deleteData: false, platform: 'linux', userHome, uid: 1000, runner: fake });
  expect(removed).toMatchObject({ serviceRemoved: true, stoppedPid: pid, dataDeleted: false });
  expect(fake.lines()).toEqual([
    'systemctl --user show-environment',
    'systemctl --user disable --now projectdispatcher.service',
    'systemctl --user daemon-reload',
  ]);
  expect(fs.existsSync(unitFile)).toBe(false);
  expect(isAlive(pid!)).toBe(false);
  expect(fs.existsSync(paths.db)).toBe(true);
});

test('a daemon started by hand is handed over to the service; the health check waits for the service pid', async () => {
  const { paths, userHome, env } = setup();
  const opts = { paths, ui, env, platform: 'linux' as const, userHome, uid: 1000, runner: fake, timeoutMs: 20_000, open: false };
  const plain = await install({ ...opts, platform: 'freebsd' as NodeJS.Platform }); // no service manager there
  expect(plain.mode).toBe('process');
  expect(plain.serviceFile).toBeNull();
  expect(fake.calls).toEqual([]);

  const managed = await install(opts);
  expect(managed.mode).toBe('service');
  expect(managed.pid).toBe(fake.pid);
  expect(managed.pid).not.toBe(plain.pid);
  expect(isAlive(plain.pid!)).toBe(false);
  expect(lines.some((l) => l.includes(`stopping the daemon started by hand (pid ${plain.pid})`))).toBe(true);
});

test('--no-start writes files and the unit but runs nothing', async () => {
  const { paths, userHome, unitFile, env } = setup();
  const report = await install({ paths, ui, env, platform: 'linux', userHome, uid: 1000, runner: fake, start: false });
  expect(report.mode).toBe('not-started');
  expect(fs.existsSync(unitFile)).toBe(true);
  expect(fs.readdirSync(paths.prompts).sort()).toEqual(fs.readdirSync(path.join(repoRoot, 'prompts')).sort());
  expect(fake.calls).toEqual([]);
  expect(fs.existsSync(paths.pidFile)).toBe(false);
});

test('another program answering /api/health on the port does not pass for our daemon', async () => {
  const { paths, userHome, env } = setup();
  const http = await import('node:http');
  const impostor = http.createServer((_req, res) =>
    res.end(JSON.stringify({ ok: true, pid: process.pid, version: '9.9.9', home: '/somewhere/else' })),
  );
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
  const port = (impostor.address() as { port: number }).port;
  fs.writeFileSync(paths.config, JSON.stringify({ port, projects_root: path.join(root, 'dev') }));
  try {
    await expect(
      install({ paths, ui, env, platform: 'linux', userHome, uid: 1000, runner: fake, timeoutMs: 3_000, open: false }),
    ).rejects.toThrow(new RegExp(`port ${port} is held by another Project Dispatcher \\(pid ${process.pid}, home /somewhere/else\\)`));
  } finally {
    impostor.close();
    impostor.closeAllConnections();
  }
});

test('daemon start, stop and restart go through the service when it is installed for this home', async () => {
  const { paths, userHome, env } = setup();
  const control = { platform: 'linux' as const, userHome, uid: 1000, runner: fake };
  await install({ paths, ui, env, ...control, timeoutMs: 20_000, open: false });
  const { controlFor, restartDaemon, startDaemon, stopDaemon } = await import('../lib/daemonControl.js');
  const first = fake.pid!;

  fake.calls.length = 0;
  expect(await stopDaemon(paths, controlFor(paths, control))).toBe(first);
  expect(isAlive(first)).toBe(false);
  expect(fs.existsSync(paths.pidFile)).toBe(false);
  expect(fake.lines()).toEqual(['systemctl --user show-environment', 'systemctl --user stop projectdispatcher.service']);

  fake.calls.length = 0;
  const started = await startDaemon(paths, controlFor(paths, control), { timeoutMs: 20_000 });
  expect(started.pid).toBe(fake.pid);
  expect(started.pid).not.toBe(first);
  expect(fake.lines()).toEqual(['systemctl --user show-environment', 'systemctl --user start projectdispatcher.service']);
  await expect(startDaemon(paths, controlFor(paths, control))).rejects.toThrow(/already running/);

  fake.calls.length = 0;
  const restarted = await restartDaemon(paths, controlFor(paths, control), { timeoutMs: 20_000 });
  expect(restarted.pid).toBe(fake.pid);
  expect(restarted.pid).not.toBe(started.pid);
  expect(isAlive(started.pid)).toBe(false);
  expect(fake.lines()).toEqual(['systemctl --user show-environment', 'systemctl --user restart projectdispatcher.service']);

  // a service file for another home is not ours to drive
  const other = controlFor(pathsFor(path.join(root, 'other-home')), control);
  expect(other.managed).toBeNull();
  expect(other.note).toMatch(/serves another home/);
});

test('an old Node.js is refused before anything is written', async () => {
  const { paths, userHome, unitFile, env } = setup();
  fs.rmSync(paths.home, { recursive: true });
  await expect(install({ paths, ui, env, platform: 'linux', userHome, uid: 1000, runner: fake, nodeVersion: '18.20.4' })).rejects.toThrow(
    /^Node\.js 18\.20\.4 is too old: Project Dispatcher needs Node\.js >=20\.19$/,
  );
  expect(fs.existsSync(paths.home)).toBe(false);
  expect(fs.existsSync(unitFile)).toBe(false);
  expect(fake.calls).toEqual([]);
});

test('uninstall never deletes a folder that holds the user home or the projects, or is not a data home', async () => {
  root = tempDir('pd-guard-');
  const { assertDeletableHome } = await import('../lib/install.js');
  const userHome = path.join(root, 'me');
  fs.mkdirSync(path.join(userHome, 'Development'), { recursive: true });
  fs.writeFileSync(path.join(userHome, 'config.json'), '{}');
  expect(() => assertDeletableHome(pathsFor(userHome), userHome, null)).toThrow(/holds your home folder or projects/);
  expect(() => assertDeletableHome(pathsFor(root), userHome, null)).toThrow(/holds your home folder or projects/);
  fs.writeFileSync(path.join(userHome, 'Development', 'config.json'), '{}');
  expect(() => assertDeletableHome(pathsFor(path.join(userHome, 'Development')), userHome, path.join(userHome, 'Development'))).toThrow(
    /holds your home folder or projects/,
  );
  const notOurs = path.join(root, 'photos');
  fs.mkdirSync(notOurs);
  expect(() => assertDeletableHome(pathsFor(notOurs), userHome, null)).toThrow(/not a Project Dispatcher data home/);
  const ours = path.join(userHome, 'Development', '.tasks');
  fs.mkdirSync(ours);
  fs.writeFileSync(path.join(ours, 'tasks.db'), '');
  expect(() => assertDeletableHome(pathsFor(ours), userHome, path.join(userHome, 'Development'))).not.toThrow();
});
