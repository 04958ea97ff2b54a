// Database snapshots in `<home>/backups/`: taken with SQLite's online backup API (consistent
// while agents write), named by their UTC time so the newest sorts last, and rotated to keep
// `backups.keep`. The schedule's only state is the newest file's name: no timer can drift from it.
// A restore MUST NOT happen under a running daemon, and always keeps the database it replaces.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { isAgentAlive } from './agentProcess.js';
import { liveRuns } from './runs.js';
import type { ConfigStore } from './config.js';
import { openDb, type Db } from './db/connection.js';
import { LATEST_VERSION } from './db/migrations.js';
import { UserError } from './errors.js';
import type { Logger } from './logger.js';
import { liveDaemon } from './pidfile.js';
import type { Paths } from './paths.js';

const SNAPSHOT = /^tasks-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z\.db$/;
/** setTimeout overflows past 24.8 days; long intervals are waited out in chunks of this */
const MAX_SLEEP_MS = 24 * 3600_000;
/** after a failed backup, wait this long (or the interval, if shorter) before trying again */
const RETRY_MS = 15 * 60_000;

export interface BackupInfo {
  file: string;
  name: string;
  size: number;
  created_at: number;
}

export function snapshotName(at: Date): string {
  return `tasks-${at.toISOString().replace(/[-:.]/g, '')}.db`; // tasks-20261124T235656123Z.db
}

/** Rotated snapshots, newest first (files named by `snapshotName`; pre-restore copies excluded). */
export function listBackups(dir: string): BackupInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: BackupInfo[] = [];
  for (const name of names) {
    const m = SNAPSHOT.exec(name);
    if (!m) continue;
    const [, y, mo, d, h, mi, s, ms] = m.map(Number);
    const file = path.join(dir, name);
    out.push({ file, name, size: fs.statSync(file).size, created_at: Date.UTC(y!, mo! - 1, d!, h!, mi!, s!, ms!) });
  }
  return out.sort((a, b) => b.created_at - a.created_at);
}

/** Deletes all but the `keep` newest snapshots; returns the deleted files. */
export function pruneBackups(dir: string, keep: number): string[] {
  const old = listBackups(dir).slice(keep);
  for (const b of old) fs.rmSync(b.file, { force: true });
  return old.map((b) => b.file);
}

/** Writes a snapshot through a temp name, so a half-written file never counts as a backup. */
async function snapshot(db: Db, target: string): Promise<void> {
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const partial = path.join(path.dirname(target), `.${path.basename(target)}.partial`);
  try {
    await db.backup(partial);
    fs.renameSync(partial, target);
  } finally {
    fs.rmSync(partial, { force: true });
  }
}

export async function backupDatabase(
  db: Db,
  dir: string,
  keep: number,
  at = new Date(),
): Promise<{ backup: BackupInfo; removed: string[] }> {
  let stamp = at;
  while (fs.existsSync(path.join(dir, snapshotName(stamp)))) stamp = new Date(stamp.getTime() + 1);
  const file = path.join(dir, snapshotName(stamp));
  await snapshot(db, file);
  const removed = pruneBackups(dir, keep);
  return { backup: listBackups(dir).find((b) => b.file === file)!, removed };
}

/** Backs up a home whose daemon is not running, opening tasks.db directly. */
export async function backupHome(paths: Paths, keep: number): Promise<{ backup: BackupInfo; removed: string[] }> {
  if (!fs.existsSync(paths.db)) throw new UserError(`no database to back up at ${paths.db}`);
  const db = openDb(paths.db);
  try {
    return await backupDatabase(db, paths.backups, keep);
  } finally {
    db.close();
  }
}

export interface BackupScheduler {
  /** when the next backup is due (ms since the epoch), for status pages */
  nextAt(): number | null;
  stop(): Promise<void>;
}

/**
 * Takes a snapshot every `backups.interval_hours` after the newest one (at once when there is
 * none), and re-arms when the backup settings change.
 */
export function scheduleBackups(deps: { db: Db; dir: string; config: ConfigStore; logger: Logger }): BackupScheduler {
  const { db, dir, config, logger } = deps;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let retryAt = 0;
  let due: number | null = null;
  let stopped = false;

  const intervalMs = () => config.get().backups.interval_hours * 3600_000;
  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (stopped || running) return;
    const newest = listBackups(dir)[0];
    due = Math.max(newest ? newest.created_at + intervalMs() : Date.now(), retryAt);
    timer = setTimeout(tick, Math.min(Math.max(due - Date.now(), 0), MAX_SLEEP_MS));
    timer.unref();
  };
  const tick = () => {
    timer = null;
    if (stopped) return;
    if (due !== null && due > Date.now()) return arm(); // one chunk of a long wait
    running = backupDatabase(db, dir, config.get().backups.keep)
      .then(({ backup, removed }) => {
        retryAt = 0;
        logger.info('database backed up', { file: backup.file, bytes: backup.size, removed: removed.length });
      })
      .catch((err: unknown) => {
        retryAt = Date.now() + Math.min(intervalMs(), RETRY_MS);
        logger.error('database backup failed', {
          error: err instanceof Error ? err.message : String(err),
          retry_at: new Date(retryAt).toISOString(),
        });
      })
      .finally(() => {
        running = null;
        arm();
      });
  };
  const onChange = (next: { backups: unknown }, prev: { backups: unknown }) => {
    if (JSON.stringify(next.backups) !== JSON.stringify(prev.backups)) arm();
  };
  config.on('change', onChange);
  arm();
  return {
    nextAt: () => due,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      config.off('change', onChange);
      await running; // the database MUST NOT close under an unfinished backup
    },
  };
}

const OUR_TABLES = ['projects', 'tickets', 'comments', 'agent_types'];

/**
 * Opens a database file read-only without leaving anything beside it. SQLite gives a read-only
 * connection to a WAL database its own -wal and -shm files and cannot remove them when it closes;
 * `close()` removes those it created. A -wal or -shm that was there before (a copy taken with its
 * journal) is read and left alone.
 */
function openReadOnly(file: string): { db: Database.Database; close(): void } {
  const sideFiles = [`${file}-wal`, `${file}-shm`];
  const existed = new Set(sideFiles.filter((f) => fs.existsSync(f)));
  let db: Database.Database | null = null;
  const close = () => {
    db?.close();
    for (const f of sideFiles) if (!existed.has(f)) fs.rmSync(f, { force: true });
  };
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    close();
    throw err;
  }
  return { db, close };
}

/** Checks that a file is a healthy SQLite database of ours; returns its schema version. */
export function validateBackup(file: string): number {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new UserError(`no such file: ${file}`);
  let opened: ReturnType<typeof openReadOnly> | null = null;
  try {
    opened = openReadOnly(file);
    const { db } = opened;
    const version = db.pragma('user_version', { simple: true }) as number;
    const latest = LATEST_VERSION;
    const tables = new Set(
      (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((t) => t.name),
    );
    const missing = OUR_TABLES.filter((t) => !tables.has(t));
    if (version < 1 || missing.length)
      throw new UserError(
        `${file} is not a Project Dispatcher database (schema version ${version}${missing.length ? `, no ${missing.join(', ')} table` : ''})`,
      );
    if (version > latest)
      throw new UserError(
        `${file} was made by a newer Project Dispatcher (schema version ${version}; this one knows ${latest}): upgrade first`,
      );
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new UserError(`${file} is damaged: integrity check says ${String(check)}`);
    return version;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${file} is not a usable SQLite database: ${(err as Error).message}`);
  } finally {
    opened?.close();
  }
}

/**
 * Replaces tasks.db with a backup. Refuses while a daemon runs on this home; the current database
 * is first snapshotted to `backups/pre-restore-<time>.db`, and stale -wal/-shm files are removed
 * so SQLite cannot replay the old journal over the restored file. The backup is left exactly as
 * it was, with no -wal/-shm beside it.
 */
export async function restoreDatabase(paths: Paths, file: string): Promise<{ version: number; previous: string | null }> {
  const source = path.resolve(file);
  const running = liveDaemon(paths.pidFile);
  if (running) throw new UserError(`the daemon is running (pid ${running.pid}); stop it with "dispatch daemon stop", then restore`);
  if (source === path.resolve(paths.db)) throw new UserError('that is the live database itself; name a file in backups/');
  const version = validateBackup(source);

  let previous: string | null = null;
  if (fs.existsSync(paths.db)) {
    previous = path.join(paths.backups, snapshotName(new Date()).replace(/^tasks-/, 'pre-restore-'));
    const current = openDb(paths.db);
    try {
      // agents outlive the daemon and write through ticket.cjs: swapping the file under them would lose their work
      const working = liveRuns(current).filter((r) => r.pid !== null && isAgentAlive(r.pid, r.proc_start));
      if (working.length)
        throw new UserError(
          `${working.length} agent run(s) are still working (${working.map((r) => `pid ${r.pid}`).join(', ')}); wait for them or kill them, then restore`,
        );
      await snapshot(current, previous);
    } finally {
      current.close();
    }
  }
  const staged = `${paths.db}.restore.tmp`;
  const src = openReadOnly(source);
  try {
    fs.rmSync(staged, { force: true });
    await src.db.backup(staged); // reads through the source's own WAL, if it has one
  } finally {
    src.close();
  }
  fs.rmSync(`${paths.db}-wal`, { force: true });
  fs.rmSync(`${paths.db}-shm`, { force: true });
  fs.renameSync(staged, paths.db);
  return { version, previous };
}
