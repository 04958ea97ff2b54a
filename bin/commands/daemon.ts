// `dispatch daemon start|stop|restart|status|logs`: the daemon as a plain background process with
// a pid file. start waits for /api/health and checks that the pid answering is the one it started
// (another program on the port must not pass for us).
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import type { Argv } from 'yargs';
import { UserError } from '../../lib/errors.js';
import { isAlive, liveDaemon, readPidFile } from '../../lib/pidfile.js';
import { packageRoot, type Paths } from '../../lib/paths.js';
import { localPaths } from './client.js';
import { printJson } from './output.js';

const daemonMain = path.join(packageRoot, 'dist', 'bin', 'daemon.js');
/**
 * Node flags of the background daemon. V8's memory reducer wakes an idle process every 8 s to
 * shrink its heap; for the daemon that was most of its idle CPU (BENCHMARKS.md, "idle daemon").
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function health(port: number): Promise<{ pid: number; version: string } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as { pid: number; version: string }) : null;
  } catch {
    return null;
  }
}

export async function startDaemonProcess(paths: Paths, opts: { timeoutMs?: number; quiet?: boolean } = {}): Promise<{ pid: number; port: number }> {
  const running = liveDaemon(paths.pidFile);
  if (running) throw new UserError(`the daemon is already running (pid ${running.pid}, http://127.0.0.1:${running.port})`);
  fs.mkdirSync(paths.logs, { recursive: true });
  const out = fs.openSync(path.join(paths.logs, 'daemon.out'), 'a');
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, daemonMain], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, DISPATCH_HOME: paths.home } });
  fs.closeSync(out);
  child.unref();
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let frame = 0;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || !isAlive(child.pid!)) break;
    const info = readPidFile(paths.pidFile);
    if (info && info.pid === child.pid && info.port) {
      const h = await health(info.port);
      if (h?.pid === child.pid) {
        if (!opts.quiet && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
        return { pid: child.pid!, port: info.port };
      }
    }
    if (!opts.quiet && process.stderr.isTTY) process.stderr.write(`\r${'|/-\\'[frame++ % 4]} starting the daemon…`);
    await sleep(100);
  }
  const tail = fs.existsSync(path.join(paths.logs, 'daemon.out')) ? fs.readFileSync(path.join(paths.logs, 'daemon.out'), 'utf8').split('\n').slice(-6).join('\n') : '';
  throw new UserError(`the daemon did not become healthy within ${Math.round((opts.timeoutMs ?? 20_000) / 1000)} s; last output:\n${tail}`);
}

export async function stopDaemonProcess(paths: Paths, timeoutMs = 20_000): Promise<number | null> {
  const running = liveDaemon(paths.pidFile);
  if (!running) {
    fs.rmSync(paths.pidFile, { force: true }); // a stale file left by a dead daemon
    return null;
  }
  process.kill(running.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(running.pid)) return running.pid;
    await sleep(100);
  }
  throw new UserError(`the daemon (pid ${running.pid}) did not stop within ${timeoutMs / 1000} s`);
}

export function daemonCommands(y: Argv): Argv {
  return y
    .command('start', 'start the daemon in the background', {}, async () => {
      const paths = localPaths();
      const { pid, port } = await startDaemonProcess(paths);
      console.log(`daemon started (pid ${pid})\nopen http://127.0.0.1:${port}`);
    })
    .command('stop', 'stop the daemon (agents keep running and are adopted on the next start)', {}, async () => {
      const pid = await stopDaemonProcess(localPaths());
      console.log(pid ? `daemon stopped (pid ${pid})` : 'the daemon was not running');
    })
    .command('restart', 'stop, then start the daemon', {}, async () => {
      const paths = localPaths();
      await stopDaemonProcess(paths);
      const { pid, port } = await startDaemonProcess(paths);
      console.log(`daemon restarted (pid ${pid})\nopen http://127.0.0.1:${port}`);
    })
    .command('status', 'is the daemon running?', {}, async (argv) => {
      const paths = localPaths();
      const running = liveDaemon(paths.pidFile);
      const h = running?.port ? await health(running.port) : null;
      const status = { running: Boolean(running && h), pid: running?.pid ?? null, port: running?.port ?? null, version: h?.version ?? null, home: paths.home };
      if (argv.json) printJson(status);
      else if (status.running) console.log(`running: pid ${status.pid}, http://127.0.0.1:${status.port}, version ${status.version}, home ${paths.home}`);
      else console.log(`not running (home ${paths.home})${running ? `; pid ${running.pid} is alive but not answering` : ''}`);
      if (!status.running) process.exitCode = 3;
    })
    .command(
      'logs',
      "print the daemon's log",
      (c) =>
        c
          .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing new lines' })
          .option('lines', { alias: 'n', type: 'number', default: 50, describe: 'how many lines to print' }),
      async (argv) => {
        const paths = localPaths();
        const files = fs.existsSync(paths.logs) ? fs.readdirSync(paths.logs).filter((f) => /^daemon-\d{4}-\d{2}-\d{2}\.log$/.test(f)).sort() : [];
        const latest = files.at(-1);
        if (!latest) throw new UserError(`no daemon log yet in ${paths.logs}`);
        const file = path.join(paths.logs, latest);
        const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
        for (const line of lines.slice(-Math.max(1, argv.lines))) console.log(formatLogLine(line));
        if (!argv.follow) return;
        let offset = fs.statSync(file).size;
        await new Promise<never>(() => {
          setInterval(() => {
            const size = fs.statSync(file).size;
            if (size <= offset) return;
            const fd = fs.openSync(file, 'r');
            const buf = Buffer.alloc(size - offset);
            fs.readSync(fd, buf, 0, buf.length, offset);
            fs.closeSync(fd);
            offset = size;
            for (const line of buf.toString('utf8').split('\n').filter(Boolean)) console.log(formatLogLine(line));
          }, 500);
        });
      },
    )
    .demandCommand(1, 'name a daemon command: start, stop, restart, status or logs');
}

function formatLogLine(line: string): string {
  try {
    const { timestamp, level, message, ...meta } = JSON.parse(line) as Record<string, unknown>;
    const extra = Object.entries(meta).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
    return `${String(timestamp)} ${String(level).padEnd(5)} ${String(message)}${extra ? ` ${extra}` : ''}`;
  } catch {
    return line;
  }
}
