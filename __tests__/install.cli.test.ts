// `dispatch install` and `dispatch uninstall` as a user runs them, in a container-like setting:
// `systemctl --user` cannot reach a user bus (a stand-in systemctl on PATH fails the way it does in
// containers, so this holds on a desktop with a real systemd too), so the daemon runs as a plain
// process. HOME is a temp dir, so the unit file lands there.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { dispatchBin } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';
import { isAlive, readPidFile } from '../lib/pidfile.js';

let root: string;
let env: NodeJS.ProcessEnv;
let home: string;
let unitFile: string;

function dispatch(...args: string[]) {
  const r = spawnSync(process.execPath, [dispatchBin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function fingerprint(): Record<string, string> {
  const files = [
    path.join(home, 'config.json'),
    unitFile,
    ...fs.readdirSync(path.join(home, 'prompts')).map((f) => path.join(home, 'prompts', f)),
  ];
  return Object.fromEntries(
    files.map((f) => [f, `${crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex')} ${fs.statSync(f).mtimeMs}`]),
  );
}

beforeEach(() => {
  root = tempDir('pd-install-cli-');
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'systemctl'), '#!/bin/sh\necho "Failed to connect to bus: No medium found" >&2\nexit 1\n', {
    mode: 0o755,
  });
  fs.mkdirSync(path.join(root, 'dev', 'blog'), { recursive: true });
  fs.mkdirSync(path.join(root, 'userhome'));
  home = path.join(root, 'home');
  unitFile = path.join(root, 'userhome', '.config', 'systemd', 'user', 'projectdispatcher.service');
  env = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: path.join(root, 'userhome'),
    LANG: 'C.UTF-8',
    DISPATCH_HOME: home,
    DISPATCH_PROJECTS_ROOT: path.join(root, 'dev'),
    DISPATCH_PORT: '0',
    DISPATCH_CLAUDE_BIN: path.join(root, 'no-such-claude'),
  };
});

afterEach(() => {
  const info = readPidFile(path.join(home, 'daemon.pid'));
  if (info && isAlive(info.pid)) process.kill(info.pid, 'SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});

test('install twice: a running daemon, then nothing changes and edits survive; uninstall refuses without a TTY, then --keep-data', async () => {
  const first = dispatch('install', '--no-open');
  expect(first.stderr).toMatch(/warning: the agent CLI ".*no-such-claude" is not on PATH/);
  expect(first.status).toBe(0);
  expect(first.stdout).toMatch(
    /systemd is not reachable \(Failed to connect to bus: No medium found\): running the daemon as a plain background process/,
  );
  expect(first.stdout).toMatch(/10 default prompt\(s\) added, config written/);
  expect(first.stdout).toMatch(/1 project folder\(s\), 1 new/);
  const url = /ready at (http:\/\/127\.0\.0\.1:\d+)/.exec(first.stdout)![1]!;
  const pid = readPidFile(path.join(home, 'daemon.pid'))!.pid;
  expect(await (await fetch(`${url}/api/health`)).json()).toMatchObject({ ok: true, pid, home });
  expect(fs.readFileSync(unitFile, 'utf8')).toContain(` "DISPATCH_HOME=${home}" `);

  // the user edits a prompt and the config; a second install keeps both and changes nothing
  fs.appendFileSync(path.join(home, 'prompts', 'coding-agent.md'), '\nAlways write tests first.\n');
  const config = JSON.parse(fs.readFileSync(path.join(home, 'config.json'), 'utf8'));
  config.heartbeat.base_interval_seconds = 600;
  fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify(config, null, 2));
  const before = fingerprint();
  const second = dispatch('install', '--no-open');
  expect(second.status).toBe(0);
  expect(second.stdout).toMatch(/0 default prompt\(s\) added, config kept/);
  expect(second.stdout).toMatch(new RegExp(`the daemon is already running \\(pid ${pid}\\)`));
  expect(second.stdout).toMatch(/projectdispatcher\.service up to date/);
  expect(fingerprint()).toEqual(before);
  expect(fs.readFileSync(path.join(home, 'prompts', 'coding-agent.md'), 'utf8')).toMatch(/Always write tests first\.\n$/);

  // no TTY and no flag: refuse, touch nothing
  const refused = dispatch('uninstall');
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(
    /not deleting .* without confirmation: run "dispatch uninstall --yes" .* or "dispatch uninstall --keep-data"/,
  );
  expect(isAlive(pid)).toBe(true);
  expect(fs.existsSync(unitFile)).toBe(true);

  const kept = dispatch('uninstall', '--keep-data');
  expect(kept.status).toBe(0);
  expect(kept.stdout).toMatch(new RegExp(`daemon stopped \\(pid ${pid}\\)`));
  expect(kept.stdout).toMatch(/kept your data in/);
  expect(isAlive(pid)).toBe(false);
  expect(fs.existsSync(unitFile)).toBe(false);
  expect(fs.existsSync(path.join(home, 'daemon.pid'))).toBe(false);
  expect(fs.existsSync(path.join(home, 'tasks.db'))).toBe(true);
  expect(fs.readFileSync(path.join(home, 'prompts', 'coding-agent.md'), 'utf8')).toMatch(/Always write tests first/);
});

test('uninstall --yes stops the daemon and deletes the data home, leaving the projects alone', () => {
  expect(dispatch('install', '--no-open').status).toBe(0);
  const pid = readPidFile(path.join(home, 'daemon.pid'))!.pid;
  const r = dispatch('uninstall', '--yes');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/deleted /);
  expect(isAlive(pid)).toBe(false);
  expect(fs.existsSync(home)).toBe(false);
  expect(fs.existsSync(unitFile)).toBe(false);
  expect(fs.existsSync(path.join(root, 'dev', 'blog'))).toBe(true);
  expect(dispatch('uninstall', '--yes', '--keep-data').stderr).toMatch(/pick one/);
});
