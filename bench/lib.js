// Shared parts of the benchmarks: real daemons on temp homes (never the user's home), a JSON
// client, percentiles, and the one way every figure is printed: value, target, MET or MISSED.
// Everything here runs against the built dist/ (npm run build first).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DAEMON_NODE_FLAGS } from '../dist/lib/service.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const daemonBin = path.join(repoRoot, 'dist', 'bin', 'daemon.js');
export const dispatchBin = path.join(repoRoot, 'dist', 'bin', 'dispatch.js');
export const ticketBin = path.join(repoRoot, 'bin', 'ticket.cjs');
// BENCH_AGENT_BIN: another agent command for experiments (say, one pinned to a CPU with taskset)
export const benchAgent = process.env.BENCH_AGENT_BIN || path.join(repoRoot, 'bench', 'agent.cjs');

const tempRoots = [];
/** A fresh temp folder; removed when the process exits unless BENCH_KEEP is set. */
export function tempRoot(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempRoots.push(dir);
  return dir;
}
process.on('exit', () => {
  if (process.env.BENCH_KEEP) return;
  for (const dir of tempRoots) fs.rmSync(dir, { recursive: true, force: true });
});

/** The environment of a daemon (and its CLI) bound to a temp root. */
export function benchEnv(root, extra = {}) {
  return {
    PATH: process.env.PATH,
    HOME: path.join(root, 'userhome'),
    LANG: 'C.UTF-8',
    DISPATCH_HOME: path.join(root, 'home'),
    DISPATCH_PROJECTS_ROOT: path.join(root, 'dev'),
    DISPATCH_PORT: '0',
    ...extra,
  };
}

/** Creates the folders of a temp root and writes config.json (merged over nothing: the daemon fills defaults). */
export function prepareRoot(root, config) {
  const env = benchEnv(root);
  for (const dir of [env.HOME, env.DISPATCH_HOME, env.DISPATCH_PROJECTS_ROOT]) fs.mkdirSync(dir, { recursive: true });
  if (config) fs.writeFileSync(path.join(env.DISPATCH_HOME, 'config.json'), JSON.stringify(config, null, 2));
  return env;
}

/**
 * One HTTP request to a daemon on 127.0.0.1, on its own connection, closed after the answer (no
 * keep-alive: an idle socket left open is reset by the server later, an error with nobody to catch
 * it). Resolves with the status, the body (parsed when JSON) and its size.
 */
export function request(port, method, urlPath, body) {
  const payload = body === undefined ? null : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const headers = {
      connection: 'close',
      ...(payload === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
    };
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent: false, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {
          // an HTML page or plain text: kept as text
        }
        resolve({ status: res.statusCode, body: parsed, bytes: Buffer.byteLength(text) });
      });
    });
    req.on('error', reject);
    req.end(payload ?? undefined);
  });
}

/** Starts dist/bin/daemon.js on an ephemeral port with the given temp root; resolves once /api/health answers. */
/** The queue backend every benchmark daemon uses: BENCH_QUEUE_BACKEND, `sqlite` (the default) or `redis`. */
export const queueBackend = process.env.BENCH_QUEUE_BACKEND === 'redis' ? 'redis' : 'sqlite';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server of the benchmark's own (Debian's package), configured as the README's "Scaling
 * out" section documents it (append-only file on), with its files under `root`.
 */
async function startRedis(root) {
  const dir = path.join(root, 'redis');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', dir];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  child.once('error', () => {}); // not installed: reported below
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.write('PING\r\n'));
      sock.once('data', (d) => {
        sock.destroy();
        resolve(String(d).startsWith('+PONG'));
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error('redis-server did not start (BENCH_QUEUE_BACKEND=redis needs it: apt-get install -y redis-server)');
    await sleep(100);
  }
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid, stop: () => child.kill('SIGTERM') };
}

export async function startDaemon(root, { config, env: extra = {}, cpus = null } = {}) {
  const redis = queueBackend === 'redis' ? await startRedis(root) : null;
  if (redis) config = { ...config, queue: { ...config?.queue, backend: 'redis', redis_url: redis.url } };
  const env = { ...prepareRoot(root, config), ...extra };
  // BENCH_PROFILE_DIR: each daemon writes a V8 CPU profile there when it stops
  const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_PROFILE_DIR)}`] : [];
  // the flags `dispatch daemon start` gives the daemon, plus BENCH_DAEMON_NODE_ARGS for experiments
  const flags = [...DAEMON_NODE_FLAGS, ...(process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean), ...profile];
  const home = env.DISPATCH_HOME;
  // cpus: a taskset CPU list the daemon is confined to (taskset execs node: the pid stays the daemon's)
  const command = cpus === null ? [process.execPath, ...flags, daemonBin] : ['taskset', '-c', cpus, process.execPath, ...flags, daemonBin];
  const child = spawn(command[0], command.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output = (output + d).slice(-20000)));
  child.stderr.on('data', (d) => (output = (output + d).slice(-20000)));
  const deadline = Date.now() + 30_000;
  let port = 0;
  while (!port) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`daemon did not start:\n${output}`);
    try {
      const info = JSON.parse(fs.readFileSync(path.join(home, 'daemon.pid'), 'utf8'));
      if (info.pid === child.pid && info.port && (await request(info.port, 'GET', '/api/health')).status === 200) port = info.port;
    } catch {
      // not up yet
    }
    if (!port) await sleep(50);
  }
  const url = `http://127.0.0.1:${port}`;
  const d = {
    root,
    home,
    env,
    port,
    url,
    child,
    pid: child.pid,
    dbPath: path.join(home, 'tasks.db'),
    /** the redis-server's pid when the queue is on Redis (its CPU is the queue's cost there) */
    redisPid: redis?.pid ?? null,
    output: () => output,
    /** One request on its own connection (see request()). */
    api: (method, urlPath, body) => request(port, method, urlPath, body),
    async project(name, abbreviation, type = 'software-dev') {
      const dir = path.join(env.DISPATCH_PROJECTS_ROOT, name);
      fs.mkdirSync(dir, { recursive: true });
      const res = await d.api('POST', '/api/projects', { path: dir, type, abbreviation });
      if (res.status !== 201) throw new Error(`register ${name} failed: ${JSON.stringify(res.body)}`);
      return res.body.project;
    },
    stop() {
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
        child.kill('SIGTERM');
      }).finally(() => redis?.stop());
    },
  };
  return d;
}

/**
 * Waits until a daemon's start-up work (the first database backup, worktree checks, discovery) is
 * over: two 250 ms windows in a row in which it used under 2% of a CPU. Returns the seconds it took.
 */
export async function settle(d, timeoutMs = 30_000) {
  const start = Date.now();
  let quiet = 0;
  let last = cpuSchedSeconds(d.pid);
  while (quiet < 2 && Date.now() - start < timeoutMs) {
    await sleep(250);
    const now = cpuSchedSeconds(d.pid);
    quiet = now - last < 0.005 ? quiet + 1 : 0;
    last = now;
  }
  return (Date.now() - start) / 1000;
}

/**
 * How the pipeline can give the daemon a CPU of its own: { daemon, agents } taskset CPU lists when
 * this machine has 2 or more CPUs and taskset, else null.
 */
export function cpuSplit() {
  const n = Number(machine().nproc);
  if (!(n >= 2)) return null;
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
  } catch {
    return null;
  }
  return { daemon: '0', agents: n === 2 ? '1' : `1-${n - 1}` };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeoutMs = 30_000, everyMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function percentile(values, p) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const fmt = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : String(n));

/** Times an HTTP GET `n` times in a row on a kept-alive connection; returns ms per request and the last response. */
export async function timeGets(url, n) {
  const times = [];
  let last = null;
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const res = await fetch(url);
    const text = await res.text();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    last = { status: res.status, bytes: Buffer.byteLength(text), type: res.headers.get('content-type') ?? '' };
  }
  return { times, last };
}

/** Every figure is recorded here and printed as it is measured. */
export const results = [];

/**
 * Records one figure. `target` is { op: '<' | '<=', value } or null for figures that only inform.
 */
export function report(bench, name, value, unit, target = null, note = '') {
  const met = target === null ? null : target.op === '<' ? value < target.value : value <= target.value;
  if (queueBackend === 'redis') name = `${name} [redis]`;
  const r = { bench, name, value, unit, target, met, note };
  results.push(r);
  const targetText = target ? `target ${target.op} ${target.value} ${unit}` : '(info)';
  const verdict = met === null ? '' : met ? 'MET' : 'MISSED';
  console.log(
    `  ${name.padEnd(58)} ${fmt(value, value >= 100 ? 0 : value >= 10 ? 1 : 2).padStart(9)} ${unit.padEnd(10)} ${targetText.padEnd(24)} ${verdict}${note ? `  ${note}` : ''}`,
  );
  return r;
}

export function note(text) {
  console.log(`  note: ${text}`);
}

/** What the figures were measured on, and how busy the machine was. */
export function machine() {
  const cpus = os.cpus();
  let nproc = String(cpus.length);
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // os.cpus() is close enough
  }
  return {
    nproc,
    cpu: cpus[0]?.model ?? 'unknown',
    node: process.version,
    loadavg: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    memGB: (os.totalmem() / 2 ** 30).toFixed(1),
  };
}

/** CPU seconds of every thread of a process in nanosecond resolution, from /proc/<pid>/task/<tid>/schedstat. */
export function cpuSchedSeconds(pid) {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e9;
}

export function rssMB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** The largest number of [start, end] intervals open at once (an end before a start at the same ms). */
export function maxOverlap(intervals) {
  const edges = [];
  for (const [a, b] of intervals) edges.push([a, 1], [b, -1]);
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]); // an end before a start at the same ms
  let open = 0;
  let max = 0;
  for (const [, delta] of edges) max = Math.max(max, (open += delta));
  return max;
}
