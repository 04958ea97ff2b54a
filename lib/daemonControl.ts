// Starting, stopping and checking the daemon from the outside (the CLI and the installer). The
// daemon runs under the OS service when a service file for this home is installed and the service
// manager is reachable; otherwise as a plain detached process. Healthy means: the pid in our
// home's pid file answers /api/health on its port for our home (and is the service's main pid when
// a service runs it). Another program on the port MUST NOT pass for us (docs/ARCHITECTURE.md, "Failures the design answers").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ConfigStore } from './config.js';
import { UserError } from './errors.js';
import { isAlive, liveDaemon, readPidFile } from './pidfile.js';
import { packageRoot, type Paths } from './paths.js';
import type { HealthReport } from './health.js';
import {
  DAEMON_NODE_FLAGS,
  daemonEnvironment,
  LAUNCHD_LABEL,
  SERVICE_NAME,
  Service,
  serviceKindFor,
  systemRunner,
  type Runner,
} from './service.js';

export const daemonScript = path.join(packageRoot, 'dist', 'bin', 'daemon.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Health {
  ok: boolean;
  pid: number;
  version: string;
  home: string;
  /** agent CLI pauses in force (a usage limit, a login or setup problem), each with its one-line message */
  agent_cli_paused?: { cli: string; cause: string; until: number | null; message: string }[];
  /** the health checks' last results (lib/health.ts) */
  health?: HealthReport;
}

export async function fetchHealth(port: number): Promise<Health | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as Health) : null;
  } catch {
    return null;
  }
}

export interface WaitOptions {
  /** @defaultValue 30000 */
  timeoutMs?: number;
  /** the pid that must answer (the service's main pid, or the child we spawned); null = any of ours */
  expectedPid?: () => number | null;
  /** true when waiting is pointless (the child we spawned has exited) */
  gaveUp?: () => boolean;
  /** called about every 200 ms while waiting, for a progress indicator */
  onWait?: (elapsedMs: number) => void;
  /** added to the timeout message: where to look next */
  hint?: string;
}

/** Waits until this home's daemon answers /api/health; throws a UserError that says why not. */
export async function waitForHealthy(paths: Paths, opts: WaitOptions = {}): Promise<{ pid: number; port: number }> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const info = readPidFile(paths.pidFile);
    if (info?.port && isAlive(info.pid)) {
      const h = await fetchHealth(info.port);
      const expected = opts.expectedPid?.() ?? null;
      if (h && h.pid === info.pid && h.home === paths.home && (expected === null || expected === h.pid))
        return { pid: h.pid, port: info.port };
    }
    if (opts.gaveUp?.()) break;
    opts.onWait?.(Date.now() - started);
    await sleep(200);
  }
  throw new UserError(`${await diagnose(paths, Date.now() - started)}${opts.hint ? `\n${opts.hint}` : ''}`);
}

/** Explains a failed wait: another program on the port, or a daemon that never answered. */
async function diagnose(paths: Paths, waitedMs: number): Promise<string> {
  let port: number | null = readPidFile(paths.pidFile)?.port ?? null;
  if (!port) {
    try {
      port = new ConfigStore(paths.config).get().port || null;
    } catch {
      port = null;
    }
  }
  const seconds = Math.max(1, Math.round(waitedMs / 1000));
  if (port) {
    const h = await fetchHealth(port);
    if (h && h.home !== paths.home)
      return `port ${port} is held by another Project Dispatcher (pid ${h.pid}, home ${h.home}); set "port" in ${paths.config} or stop that one`;
    if (!h && (await portAnswers(port)))
      return `port ${port} is held by another program, so the daemon cannot listen there; set "port" in ${paths.config}`;
  }
  return `the daemon did not answer http://127.0.0.1:${port ?? '?'}/api/health within ${seconds} s; see ${path.join(paths.logs, 'daemon.out')} and "dispatch daemon logs"`;
}

async function portAnswers(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the daemon as a detached plain process and waits until it is healthy. Its environment is
 * daemonEnvironment(), never the caller's whole environment. A daemon that cannot start says why
 * on a pipe (its fd 3, named by DISPATCH_STATUS_FD) before it exits, so the reason reaches us even
 * when it cannot be written to a full disk; it closes the pipe once it listens.
 */
export async function startDaemonProcess(
  paths: Paths,
  opts: Omit<WaitOptions, 'expectedPid' | 'gaveUp'> & { env?: NodeJS.ProcessEnv } = {},
): Promise<{ pid: number; port: number }> {
  const running = liveDaemon(paths.pidFile);
  if (running) throw new UserError(`the daemon is already running (pid ${running.pid}, http://127.0.0.1:${running.port})`);
  const outFile = path.join(paths.logs, 'daemon.out');
  let out: number | 'ignore' = 'ignore';
  try {
    fs.mkdirSync(paths.logs, { recursive: true });
    out = fs.openSync(outFile, 'a');
  } catch {
    // a full or read-only disk: the daemon's own reason comes over the status pipe
  }
  const env = { ...daemonEnvironment(opts.env ?? process.env, paths.home), DISPATCH_STATUS_FD: '3' };
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, daemonScript], { detached: true, stdio: ['ignore', out, out, 'pipe'], env });
  if (typeof out === 'number') fs.closeSync(out);
  let status = '';
  const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  pipe.on('data', (b: Buffer) => (status += b.toString('utf8')));
  pipe.on('error', () => {});
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.unref();
  try {
    const gaveUp = () => child.exitCode !== null || child.signalCode !== null || !isAlive(child.pid!);
    return await waitForHealthy(paths, { ...opts, expectedPid: () => child.pid ?? null, gaveUp });
  } catch (err) {
    await Promise.race([exited, sleep(1000)]); // the pipe's last words arrive with the exit
    const reason = /^error: (.+)$/m.exec(status)?.[1];
    if (reason) throw new UserError(`the daemon could not start: ${reason}`);
    const tail = readTail(outFile, 6);
    const ended =
      child.exitCode !== null
        ? `the daemon exited with code ${child.exitCode} before answering`
        : child.signalCode
          ? `the daemon was killed by ${child.signalCode} before answering`
          : null;
    throw new UserError(`${ended ?? (err as Error).message}${tail ? `\nlast output:\n${tail}` : ''}`);
  } finally {
    pipe.destroy();
  }
}

function readTail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Sends SIGTERM to this home's daemon and waits for it to exit; clears a stale pid file. */
export async function stopDaemonProcess(paths: Paths, timeoutMs = 30_000): Promise<number | null> {
  const running = liveDaemon(paths.pidFile);
  if (!running) {
    clearStalePidFile(paths);
    return null;
  }
  process.kill(running.pid, 'SIGTERM');
  await waitForExit(running.pid, timeoutMs);
  return running.pid;
}

async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(100);
  }
  throw new UserError(`the daemon (pid ${pid}) did not stop within ${Math.round(timeoutMs / 1000)} s`);
}

function clearStalePidFile(paths: Paths): void {
  const info = readPidFile(paths.pidFile);
  if (info && !isAlive(info.pid)) fs.rmSync(paths.pidFile, { force: true });
}

export interface PidFileState {
  state: 'running' | 'stale' | 'absent';
  pid: number | null;
  port: number | null;
}

/** What the pid file says: a live daemon, a file left by a dead one, or nothing. */
export function pidFileState(paths: Paths): PidFileState {
  const info = readPidFile(paths.pidFile);
  if (!info) return { state: 'absent', pid: null, port: null };
  return { state: isAlive(info.pid) && info.pid !== process.pid ? 'running' : 'stale', pid: info.pid, port: info.port };
}

export interface ControlOptions {
  platform?: NodeJS.Platform;
  userHome?: string;
  uid?: number;
  runner?: Runner;
}

/** How this home's daemon is managed: by the OS service, or as a plain process (and why). */
export interface Control {
  /** set when the installed service for this home runs the daemon */
  managed: Service | null;
  /** why the daemon is managed as a plain process, for messages */
  note: string;
}

export function serviceFor(opts: ControlOptions = {}): Service | null {
  const kind = serviceKindFor(opts.platform ?? process.platform);
  if (!kind) return null;
  return new Service({
    kind,
    userHome: opts.userHome ?? os.homedir(),
    uid: opts.uid ?? process.getuid?.() ?? 0,
    runner: opts.runner ?? systemRunner,
  });
}

export function controlFor(paths: Paths, opts: ControlOptions = {}): Control {
  const service = serviceFor(opts);
  if (!service) return { managed: null, note: `no service manager support on ${opts.platform ?? process.platform}` };
  const home = service.installedHome();
  if (home === null) return { managed: null, note: 'the service is not installed (run "dispatch install")' };
  if (path.resolve(home) !== path.resolve(paths.home))
    return { managed: null, note: `the installed service serves another home (${home})` };
  const available = service.available();
  if (!available.ok) return { managed: null, note: `${service.kind} is not reachable (${available.reason})` };
  return { managed: service, note: '' };
}

/** Where to look when the service does not come up. */
export function serviceHint(service: Service): string {
  return service.kind === 'systemd'
    ? `see "systemctl --user status ${SERVICE_NAME}" and "journalctl --user -u ${SERVICE_NAME} -n 50"`
    : `see "launchctl print gui/${process.getuid?.() ?? 0}/${LAUNCHD_LABEL}" and the daemon's logs`;
}

export async function startDaemon(paths: Paths, control: Control, opts: WaitOptions = {}): Promise<{ pid: number; port: number }> {
  const service = control.managed;
  if (!service) return startDaemonProcess(paths, opts);
  const running = liveDaemon(paths.pidFile);
  if (running) throw new UserError(`the daemon is already running (pid ${running.pid}, http://127.0.0.1:${running.port})`);
  service.start();
  return waitForHealthy(paths, { ...opts, expectedPid: () => service.mainPid(), hint: serviceHint(service) });
}

/** Stops the service (when it runs the daemon) and any plain daemon on this home. */
export async function stopDaemon(paths: Paths, control: Control, timeoutMs = 30_000): Promise<number | null> {
  const before = liveDaemon(paths.pidFile);
  if (control.managed) {
    control.managed.stop();
    if (before) await waitForExit(before.pid, timeoutMs);
  }
  const plain = await stopDaemonProcess(paths, timeoutMs);
  return before?.pid ?? plain;
}

export async function restartDaemon(paths: Paths, control: Control, opts: WaitOptions = {}): Promise<{ pid: number; port: number }> {
  const service = control.managed;
  if (!service) {
    await stopDaemonProcess(paths);
    return startDaemonProcess(paths, opts);
  }
  const running = liveDaemon(paths.pidFile);
  if (running && running.pid !== service.mainPid()) await stopDaemonProcess(paths); // a plain daemon holds the home
  service.restart();
  return waitForHealthy(paths, { ...opts, expectedPid: () => service.mainPid(), hint: serviceHint(service) });
}
