// The single-instance lock: `<home>/daemon.pid` holds {pid, port}. Created with O_EXCL so two
// daemons starting at once cannot both win; a file left by a dead process is recognised as stale.
import fs from 'node:fs';
import { UserError } from './errors.js';

export interface PidInfo {
  pid: number;
  port: number | null;
  started_at: number;
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
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

/** The running daemon's pid info, or null (a stale file counts as no daemon). */
export function liveDaemon(file: string): PidInfo | null {
  const info = readPidFile(file);
  return info && isAlive(info.pid) && info.pid !== process.pid ? info : null;
}

/** Takes the lock for this process or throws a UserError naming the daemon that holds it. */
export function acquirePidFile(file: string): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, port: null, started_at: Date.now() }));
      fs.closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = liveDaemon(file);
    if (holder) throw new UserError(`another daemon is already running on this home (pid ${holder.pid}${holder.port ? `, port ${holder.port}` : ''}); stop it with "dispatch daemon stop"`);
    fs.rmSync(file, { force: true }); // stale: its process is gone
  }
  throw new UserError(`could not take the pid file ${file}`);
}

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
