// `dispatch daemon start` through the real CLI: the daemon it starts keeps none of the caller's
// other variables (an agent reading the daemon's /proc environ finds no secret), a daemon killed
// with -9 that is still a zombie does not count as running, and a start that fails says why in one
// line (a port in use, an invalid config, a full disk) as soon as the daemon gives up.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { daemonBin, daemonEnv, dispatchBin } from './helpers/daemon.js';
import { pidAlive, waitFor } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';
import { procStat } from '../lib/pidfile.js';
import { fillDisk, mountTmpfs, tmpfsPrefix, unmountTmpfs } from './helpers/tmpfs.js';

const SECRET = 'pd-secret-7f3a9c';

function cli(env: NodeJS.ProcessEnv, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [dispatchBin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function setup(extra: NodeJS.ProcessEnv = {}): { root: string; home: string; env: NodeJS.ProcessEnv } {
  const root = tempDir('pd-control-');
  const env = daemonEnv(root, extra);
  for (const dir of [env.DISPATCH_HOME!, env.DISPATCH_PROJECTS_ROOT!, env.HOME!]) fs.mkdirSync(dir, { recursive: true });
  return { root, home: env.DISPATCH_HOME!, env };
}

function pidFile(home: string): { pid: number; port: number } {
  return JSON.parse(fs.readFileSync(path.join(home, 'daemon.pid'), 'utf8'));
}

function environ(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
}

async function api(port: number, method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${url}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

test('the daemon started by `dispatch daemon start` has a minimal environment: an agent reading it finds no secret', async () => {
  const scratch = tempDir('pd-environ-');
  // the agent: a shell script that reads its parent's (the daemon's) environment and its own
  const agent = path.join(scratch, 'claude');
  const script = [
    '#!/bin/sh',
    `echo $PPID > ${scratch}/daemon.pid`,
    `cat /proc/$PPID/environ > ${scratch}/daemon.environ`,
    `env > ${scratch}/agent.env`,
    '',
  ];
  fs.writeFileSync(agent, script.join('\n'), { mode: 0o755 });
  const { root, home, env } = setup({
    DISPATCH_CLAUDE_BIN: agent,
    AWS_SECRET_ACCESS_KEY: SECRET,
    ANTHROPIC_API_KEY: `sk-${SECRET}`,
    GITHUB_TOKEN: `gh-${SECRET}`,
    LC_TIME: 'C.UTF-8',
    TZ: 'UTC',
  });
  try {
    const started = cli(env, ['daemon', 'start']);
    expect(started.status).toBe(0);
    const { pid, port } = pidFile(home);
    const own = environ(pid);
    expect(own.join('\n')).not.toContain(SECRET);
    expect(own.map((v) => v.split('=')[0]).sort()).toEqual(
      [
        'DISPATCH_CLAUDE_BIN',
        'DISPATCH_HOME',
        'DISPATCH_PORT',
        'DISPATCH_PROJECTS_ROOT',
        'DISPATCH_STATUS_FD',
        'HOME',
        'LANG',
        'LC_TIME',
        'PATH',
        'TZ',
      ].sort(),
    );

    const dir = path.join(env.DISPATCH_PROJECTS_ROOT!, 'lab');
    fs.mkdirSync(dir);
    expect((await api(port, 'POST', '/api/projects', { path: dir, type: 'research', abbreviation: 'lab' })).status).toBe(201);
    expect((await api(port, 'POST', '/api/tickets', { project: 'lab', title: 'peek', body: 'x', column: 'researcher' })).status).toBe(201);
    const read = () => fs.existsSync(path.join(scratch, 'agent.env')) && fs.readFileSync(path.join(scratch, 'daemon.environ'), 'utf8');
    const seen = await waitFor('the agent read the environment', read, 60_000);
    expect(Number(fs.readFileSync(path.join(scratch, 'daemon.pid'), 'utf8'))).toBe(pid);
    expect(seen).toContain(`DISPATCH_HOME=${home}`); // it did read the daemon's environment
    expect(seen).not.toContain(SECRET);
    expect(fs.readFileSync(path.join(scratch, 'agent.env'), 'utf8')).not.toContain(SECRET);
  } finally {
    cli(env, ['daemon', 'stop']);
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}, 120_000);

test('`dispatch daemon start` right after kill -9 starts a new daemon while the dead one is still a zombie', async () => {
  const { root, home, env } = setup();
  // the daemon's parent is a process that never reaps it (exec sleep), so the killed daemon stays a zombie
  const script = '"$0" "$1" >/dev/null 2>&1 & echo $!; exec sleep 600';
  const holder: ChildProcess = spawn('sh', ['-c', script, process.execPath, daemonBin], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    let out = '';
    holder.stdout!.on('data', (b) => (out += b));
    const first = await waitFor(
      'first daemon up',
      async () => {
        const pid = Number(out.trim());
        if (!pid || !fs.existsSync(path.join(home, 'daemon.pid'))) return null;
        const info = pidFile(home);
        return info.pid === pid && info.port && (await api(info.port, 'GET', '/api/health')).status === 200 ? info : null;
      },
      60_000,
    );
    process.kill(first.pid, 'SIGKILL');
    await waitFor('a zombie', () => procStat(first.pid)?.state === 'Z');
    expect(pidAlive(first.pid)).toBe(false);

    const status = cli(env, ['daemon', 'status']);
    expect(status.status).toBe(3);
    expect(status.stdout).toMatch(new RegExp(`stale pid file: pid ${first.pid} is gone`));
    const started = cli(env, ['daemon', 'start']);
    expect(started.stderr).not.toMatch(/already running/);
    expect(started.status).toBe(0);
    const second = pidFile(home);
    expect(second.pid).not.toBe(first.pid);
    expect((await api(second.port, 'GET', '/api/health')).body.pid).toBe(second.pid);
    expect(procStat(first.pid)?.state).toBe('Z'); // still a zombie all along
    const stopped = cli(env, ['daemon', 'stop']);
    expect(stopped.stdout).toMatch(new RegExp(`daemon stopped \\(pid ${second.pid}\\)`));
  } finally {
    holder.kill('SIGKILL');
    cli(env, ['daemon', 'stop']);
    fs.rmSync(root, { recursive: true, force: true });
  }
}, 120_000);

describe('a start that fails says why in one line', () => {
  function failedStart(env: NodeJS.ProcessEnv): string {
    const r = cli(env, ['daemon', 'start']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const message = r.stderr.replace(/^.*starting the daemon.*$\n?/gm, ''); // the progress line on a terminal
    expect(message).not.toMatch(/did not answer|within \d+ s|\n\s+at /);
    expect(message.trimEnd().split('\n')).toHaveLength(1);
    return message.trim();
  }

  test('a port held by another program', async () => {
    const { root, home, env } = setup();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as net.AddressInfo).port;
    try {
      const message = failedStart({ ...env, DISPATCH_PORT: String(port) });
      expect(message).toBe(
        `dispatch: the daemon could not start: port ${port} on 127.0.0.1 is already in use by another program: set "port" in ${home}/config.json (or DISPATCH_PORT) to a free one`,
      );
      expect(fs.existsSync(path.join(home, 'daemon.pid'))).toBe(false);
    } finally {
      squatter.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  test('an invalid config file', () => {
    const { root, home, env } = setup();
    try {
      fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ agents: { max_concurrent_global: -1 } }));
      expect(failedStart(env)).toMatch(
        new RegExp(
          `^dispatch: the daemon could not start: the config file ${home}/config.json is invalid: agents\\.max_concurrent_global: .+`,
        ),
      );
      fs.writeFileSync(path.join(home, 'config.json'), '{"port": 57');
      expect(failedStart(env)).toMatch(
        new RegExp(`^dispatch: the daemon could not start: the config file ${home}/config.json is not valid JSON: .+`),
      );
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  (tmpfsPrefix ? test : test.skip)(
    'a full disk under the data home',
    () => {
      const { root, home, env } = setup();
      mountTmpfs(home, '8m');
      try {
        // a home that worked before: its daemon ran and stopped, then the disk filled up
        expect(cli(env, ['daemon', 'start']).status).toBe(0);
        expect(cli(env, ['daemon', 'stop']).status).toBe(0);
        fillDisk(path.join(home, 'filler'));
        expect(failedStart(env)).toBe(
          `dispatch: the daemon could not start: the disk holding ${home} is full: free some space, then start the daemon again`,
        );
        expect(fs.existsSync(path.join(home, 'daemon.pid'))).toBe(false); // no empty lock left behind
        fs.rmSync(path.join(home, 'filler'));
        expect(cli(env, ['daemon', 'start']).status).toBe(0);
        expect(cli(env, ['daemon', 'stop']).status).toBe(0);
      } finally {
        cli(env, ['daemon', 'stop']);
        unmountTmpfs(home);
        fs.rmSync(root, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
