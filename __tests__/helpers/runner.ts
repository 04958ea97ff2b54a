// Real `dispatch runner` processes for tests (node dist/bin/dispatch.js runner ...), each with its
// own folder and a machine of its own in miniature: a HOME whose git identity the agents commit
// with, and a PATH on which `claude` is the fake agent. A bare repository stands for the remote
// both the daemon and the runners push to and fetch from.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { dispatchBin, type RunningDaemon } from './daemon.js';
import { fakeClaude } from './engine.js';
import { initRepo, sh } from './git.js';

export interface RunningRunner {
  name: string;
  dir: string;
  child: ChildProcess;
  output(): string;
  /** Resolves with the first log line matching `re` (seen already or to come). */
  line(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface RunnerOptions {
  name: string;
  token: string;
  daemonUrl: string;
  /** the folder holding the runner's machine: its HOME, bin folder and runner folder */
  root: string;
  slots?: number;
  /** the runner's folder (default <root>/<name>/state): a restarted runner passes the same one */
  dir?: string;
}

/** The runner machine's environment: its own HOME (with a git identity) and `claude` on PATH. */
export function runnerMachine(root: string, name: string): NodeJS.ProcessEnv {
  const home = path.join(root, name, 'home');
  const bin = path.join(root, name, 'bin');
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(home, '.gitconfig'), '[user]\n\tname = Runner Agent\n\temail = runner@example.invalid\n');
  if (!fs.existsSync(path.join(bin, 'claude'))) fs.symlinkSync(fakeClaude, path.join(bin, 'claude'));
  return { PATH: `${bin}${path.delimiter}${process.env.PATH}`, HOME: home, LANG: 'C.UTF-8' };
}

export function startRunner(opts: RunnerOptions): RunningRunner {
  const dir = opts.dir ?? path.join(opts.root, opts.name, 'state');
  const env = { ...runnerMachine(opts.root, opts.name), DISPATCH_RUNNER_TOKEN: opts.token };
  const args = [dispatchBin, 'runner', '--daemon', opts.daemonUrl, '--slots', String(opts.slots ?? 1), '--dir', dir, '--name', opts.name];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listeners = new Set<() => void>();
  const take = (d: Buffer) => {
    out += d.toString('utf8');
    for (const l of listeners) l();
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  return {
    name: opts.name,
    dir,
    child,
    output: () => out,
    line(re, timeoutMs = 90_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = out.split('\n').find((l) => re.test(l));
          if (hit !== undefined) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`runner ${opts.name}: no line matching ${re} within ${timeoutMs} ms; output:\n${out}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
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

/** A runner and its token, made the way a user makes one (the token is in this answer only). */
export async function addRunner(d: RunningDaemon, name: string, slots: number): Promise<string> {
  const res = await d.api('POST', '/api/runners', { name, slots });
  if (res.status !== 201) throw new Error(`adding runner ${name} failed: ${JSON.stringify(res.body)}`);
  return res.body.token as string;
}

/**
 * A git project of the daemon's whose agents run on runners: its folder is a repository (main, one
 * commit) whose remote is a bare repository next to it.
 */
export async function runnerProject(
  d: RunningDaemon & {
    project(name: string, type?: string, abbreviation?: string): Promise<{ id: number; abbreviation: string; path: string }>;
  },
  name: string,
  abbreviation: string,
): Promise<{ repo: string; remote: string }> {
  const repo = path.join(d.projectsRoot, name);
  const remote = path.join(d.root, `${name}.git`);
  initRepo(repo);
  sh(d.root, ['init', '-q', '--bare', '-b', 'main', remote]);
  sh(repo, ['remote', 'add', 'origin', remote]);
  sh(repo, ['push', '-q', 'origin', 'main']);
  await d.project(name, 'software-dev', abbreviation);
  const res = await d.api('PATCH', `/api/projects/${abbreviation}`, { remote_url: remote, runs_on: 'runners' });
  if (res.status !== 200) throw new Error(`runs_on runners refused: ${JSON.stringify(res.body)}`);
  return { repo, remote };
}
