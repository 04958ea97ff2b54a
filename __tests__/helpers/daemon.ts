// Starts the real daemon (dist/bin/daemon.js) as a child process on an ephemeral port with a
// temp home, and gives tests its URL, a JSON client and the dispatch CLI bound to that home.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tempDir } from './home.js';
import { useTestQueue, withTestQueue } from './queue.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const daemonBin = path.join(repoRoot, 'dist', 'bin', 'daemon.js');
export const dispatchBin = path.join(repoRoot, 'dist', 'bin', 'dispatch.js');
export const ticketBin = path.join(repoRoot, 'bin', 'ticket.cjs');

export interface RunningDaemon {
  root: string;
  home: string;
  projectsRoot: string;
  port: number;
  url: string;
  child: ChildProcess;
  env: NodeJS.ProcessEnv;
  api<T = any>(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: T }>;
  cli(args: string[], input?: string): { status: number; stdout: string; stderr: string };
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface DaemonOptions {
  root?: string;
  config?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}

export function daemonEnv(root: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: path.join(root, 'userhome'),
    LANG: 'C.UTF-8',
    DISPATCH_HOME: path.join(root, 'home'),
    DISPATCH_PROJECTS_ROOT: path.join(root, 'dev'),
    DISPATCH_PORT: '0',
    ...extra,
  };
  return env;
}

export async function startTestDaemon(opts: DaemonOptions = {}): Promise<RunningDaemon> {
  const root = opts.root ?? tempDir('pd-daemon-');
  const env = daemonEnv(root, opts.env);
  const home = env.DISPATCH_HOME!;
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(env.DISPATCH_PROJECTS_ROOT!, { recursive: true });
  fs.mkdirSync(env.HOME!, { recursive: true });
  // the queue backend of this test run (helpers/queue.ts) joins the test's own config
  if (opts.config) fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify(await withTestQueue(home, opts.config), null, 2));
  else await useTestQueue(home);
  const child = spawn(process.execPath, [daemonBin], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const port = await waitForPort(path.join(home, 'daemon.pid'), child, () => output);
  const url = `http://127.0.0.1:${port}`;
  return {
    root,
    home,
    projectsRoot: env.DISPATCH_PROJECTS_ROOT!,
    port,
    url,
    child,
    env,
    async api(method, urlPath, body) {
      const res = await fetch(url + urlPath, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    cli(args, input) {
      const r = spawnSync(process.execPath, [dispatchBin, ...args], { env, input, encoding: 'utf8', timeout: 30_000 });
      return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    stop(signal = 'SIGTERM') {
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      });
    },
  };
}

async function waitForPort(pidFile: string, child: ChildProcess, output: () => string): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}:\n${output()}`);
    try {
      const info = JSON.parse(fs.readFileSync(pidFile, 'utf8')) as { pid: number; port: number | null };
      if (info.pid === child.pid && info.port) {
        const res = await fetch(`http://127.0.0.1:${info.port}/api/health`).catch(() => null);
        if (res?.ok) return info.port;
      }
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`daemon did not start:\n${output()}`);
}
