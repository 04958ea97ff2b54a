// The single-instance lock: `<home>/daemon.pid` holds {pid, port}. Created with O_EXCL so two
// daemons starting at once cannot both win; a file left by a dead process is recognised as stale.
import fs from 'node:fs';
import { UserError } from './errors.js';

export interface PidInfo {
  pid: number;
  port: number | null;
  started_at: number;
}

/**
 * Whether a process runs. A zombie (state Z, or X while it is being removed) is dead: it has
 * exited and only waits for its parent to collect it, which an init that reaps slowly may put off
 * for a second or more after a `kill -9`. Every "is it alive?" of daemons and agents comes here.
 */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = procStat(pid)?.state;
  return state !== 'Z' && state !== 'X';
}

export function readPidFile(file: string): PidInfo | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as Partial<PidInfo>;
    if (typeof v.pid === 'number') return { pid: v.pid, port: typeof v.port === 'number' ? v.port : null, started_at: v.started_at ?? 0 };
  } catch {
    const pid = Number(text.trim());
    if (Number.isInteger(pid)) return { pid, port: null, started_at: 0 };
  }
  return null;
}

export interface ProcStat {
  pid: number;
  /** R, S, D, T, Z (zombie), X (dead), … */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** start time in clock ticks after boot: with the pid, it names one process for good */
  startTicks: string;
}

/** One buffer for every /proc/<pid>/stat read (a line of a few hundred bytes): scanning all of /proc stays cheap. */
const statBuf = Buffer.alloc(4096);

/** A process's state, parent, group, session and start time from Linux /proc; null where it cannot be read. */
export function procStat(pid: number): ProcStat | null {
  let stat: string;
  try {
    const fd = fs.openSync(`/proc/${pid}/stat`, 'r');
    try {
      stat = statBuf.toString('latin1', 0, fs.readSync(fd, statBuf, 0, statBuf.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
  // the command name in parentheses may hold spaces: fields are counted after its closing ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 20);
  if (fields[19] === undefined) return null;
  return { pid, state: fields[0]!, ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]), startTicks: fields[19] };
}

/** When a process started (ms since the epoch), from Linux /proc; null where that cannot be read. */
function processStartedAt(pid: number): number | null {
  try {
    const ticks = Number(procStat(pid)?.startTicks);
    const bootSeconds = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(bootSeconds)) return null;
    return bootSeconds * 1000 + ticks * (1000 / CLOCK_TICKS_PER_SECOND);
  } catch {
    return null;
  }
}
/** USER_HZ, the unit of /proc/<pid>/stat start times: 100 on every Linux build Node supports. */
const CLOCK_TICKS_PER_SECOND = 100;
/** Slack for btime's whole seconds and tick rounding when comparing start times. */
const START_SLACK_MS = 2000;

/**
 * The running daemon's pid info, or null (a stale file counts as no daemon). A file left by a
 * daemon killed with SIGKILL, or by a reboot, may name a pid that now belongs to another process:
 * a process that started after the file was written cannot be the daemon that wrote it, so it
 * neither blocks a new daemon nor gets signalled by `dispatch daemon stop`.
 */
export function liveDaemon(file: string): PidInfo | null {
  const info = readPidFile(file);
  if (!info || info.pid === process.pid || !isAlive(info.pid)) return null;
  const started = processStartedAt(info.pid);
  if (started !== null && info.started_at > 0 && started > info.started_at + START_SLACK_MS) return null;
  return info;
}

/**
 * Takes the lock for this process or throws a UserError naming the process that holds it (`busy`
 * words it; by default, as the daemon's lock on its home).
 */
export function acquirePidFile(file: string, busy: (holder: PidInfo) => string = daemonBusy): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      try {
        fs.writeSync(fd, JSON.stringify({ pid: process.pid, port: null, started_at: Date.now() }));
      } catch (err) {
        // a full disk: leave no empty lock behind
        fs.closeSync(fd);
        fs.rmSync(file, { force: true });
        throw err;
      }
      fs.closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = liveDaemon(file);
    if (holder) throw new UserError(busy(holder));
    fs.rmSync(file, { force: true }); // stale: its process is gone
  }
  throw new UserError(`could not take the pid file ${file}`);
}

const daemonBusy = (holder: PidInfo) =>
  `another daemon is already running on this home (pid ${holder.pid}${holder.port ? `, port ${holder.port}` : ''}); stop it with "dispatch daemon stop"`;

export function updatePidFile(file: string, port: number): void {
  const info = readPidFile(file);
  if (!info || info.pid !== process.pid) return;
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...info, port }));
  fs.renameSync(tmp, file);
}

export function releasePidFile(file: string): void {
  const info = readPidFile(file);
  if (info?.pid === process.pid) fs.rmSync(file, { force: true });
}
