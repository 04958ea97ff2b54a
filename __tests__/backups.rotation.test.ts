// Database snapshots: rotation keeps the newest N, the schedule follows the newest file's time
// (backdated here instead of waiting), and restore is a round trip that refuses to run under a
// live daemon and keeps the database it replaces.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { backupDatabase, listBackups, restoreDatabase, scheduleBackups, snapshotName, validateBackup } from '../lib/backups.js';
import { ConfigStore } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { makeTestHome, type TestHome } from './helpers/home.js';
import { createTicket } from '../lib/tickets.js';
import { startTestDaemon } from './helpers/daemon.js';

let h: TestHome;
beforeEach(() => {
  h = makeTestHome();
});
afterEach(() => h.cleanup());

const until = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

test('rotation keeps the newest N snapshots, each a complete database', async () => {
  const base = Date.UTC(2026, 0, 1);
  for (let i = 0; i < 6; i++) await backupDatabase(h.db, h.paths.backups, 4, new Date(base + i * 3600_000));
  const kept = listBackups(h.paths.backups);
  expect(kept.map((b) => b.created_at)).toEqual([5, 4, 3, 2].map((i) => base + i * 3600_000));
  expect(kept[0]!.name).toBe('tasks-20260101T050000000Z.db');
  expect(validateBackup(kept[0]!.file)).toBeGreaterThanOrEqual(1);
  expect(fs.readdirSync(h.paths.backups).filter((f) => f.includes('partial'))).toEqual([]);
  // two snapshots in the same millisecond do not overwrite each other
  await backupDatabase(h.db, h.paths.backups, 10, new Date(base + 5 * 3600_000));
  expect(listBackups(h.paths.backups)).toHaveLength(5);
});

test('the schedule takes a snapshot once the newest one is older than the interval, and re-arms on a config change', async () => {
  fs.writeFileSync(h.paths.config, JSON.stringify({ backups: { interval_hours: 24, keep: 3 } }));
  const config = new ConfigStore(h.paths.config, {});
  const logger = createLogger({ console: false });
  // a fresh snapshot: nothing is due for a day
  await backupDatabase(h.db, h.paths.backups, 3, new Date());
  const scheduler = scheduleBackups({ db: h.db, dir: h.paths.backups, config, logger });
  try {
    const due = scheduler.nextAt()!;
    expect(due).toBeGreaterThan(Date.now() + 23 * 3600_000);
    // backdate it: the newest snapshot is now 2 days old
    const only = listBackups(h.paths.backups)[0]!;
    fs.renameSync(only.file, path.join(h.paths.backups, snapshotName(new Date(Date.now() - 2 * 86400_000))));
    config.update({ backups: { interval_hours: 12, keep: 3 } }); // a settings change re-arms the timer
    await until(() => listBackups(h.paths.backups).length === 2, 'the overdue snapshot');
    await until(() => (scheduler.nextAt() ?? 0) > Date.now() + 11 * 3600_000, 're-arming after the snapshot');
  } finally {
    await scheduler.stop();
    config.close();
  }
});

test('dispatch backup without a daemon snapshots the file directly, keeping backups.keep', async () => {
  const { spawnSync } = await import('node:child_process');
  const { daemonEnv, dispatchBin } = await import('./helpers/daemon.js');
  fs.writeFileSync(h.paths.config, JSON.stringify({ backups: { interval_hours: 24, keep: 2 } }));
  const env = daemonEnv(h.root);
  expect(env.DISPATCH_HOME).toBe(h.paths.home);
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, [dispatchBin, 'backup'], { env, encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^backed up to .*backups\/tasks-\d{8}T\d{9}Z\.db \(\d+ KiB\)/);
  }
  const kept = listBackups(h.paths.backups);
  expect(kept).toHaveLength(2);
  expect(validateBackup(kept[0]!.file)).toBeGreaterThanOrEqual(1);
});

test('restore validates the file: not SQLite, not ours, missing', () => {
  const junk = path.join(h.root, 'junk.db');
  fs.writeFileSync(junk, 'hello, this is not a database'.repeat(200));
  expect(() => validateBackup(junk)).toThrow(/is not a usable SQLite database/);
  const foreign = path.join(h.root, 'foreign.db');
  const other = new Database(foreign);
  other.exec('CREATE TABLE notes (id INTEGER)');
  other.close();
  expect(() => validateBackup(foreign)).toThrow(/is not a Project Dispatcher database \(schema version 0/);
  expect(() => validateBackup(path.join(h.root, 'nope.db'))).toThrow(/no such file/);
});

test('restore validation rejects a damaged copy of our database', async () => {
  const { backup } = await backupDatabase(h.db, h.paths.backups, 5);
  const bytes = fs.readFileSync(backup.file);
  const pageSize = bytes.readUInt16BE(16);
  // scribble over the middle of every page after the schema page
  for (let page = 1; page * pageSize < bytes.length; page++) bytes.fill(0x5a, page * pageSize + 8, page * pageSize + pageSize / 2);
  const damaged = path.join(h.root, 'damaged.db');
  fs.writeFileSync(damaged, bytes);
  expect(() => validateBackup(damaged)).toThrow(/damaged|not a usable SQLite database/);
});

test('restore round trip through the CLI: refused while the daemon runs; afterwards later data is gone and the old database kept', async () => {
  const d = await startTestDaemon();
  fs.mkdirSync(path.join(d.projectsRoot, 'shop'));
  expect(
    (await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, 'shop'), type: 'personal', abbreviation: 'shop' })).status,
  ).toBe(201);
  expect((await d.api('POST', '/api/tickets', { project: 'shop', title: 'before the backup' })).status).toBe(201);
  const backedUp = d.cli(['backup', '--json']);
  expect(backedUp.stderr).toBe('');
  const backup = JSON.parse(backedUp.stdout).backup as { file: string; name: string };
  expect(path.dirname(backup.file)).toBe(path.join(d.home, 'backups'));
  expect((await d.api('POST', '/api/tickets', { project: 'shop', title: 'after the backup' })).status).toBe(201);

  const refused = d.cli(['restore', backup.name]);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/the daemon is running \(pid \d+\); stop it with "dispatch daemon stop", then restore/);

  expect(await d.stop()).toBe(0);
  const restored = d.cli(['restore', backup.name]);
  expect(restored.stderr).toBe('');
  expect(restored.stdout).toMatch(/the database it replaced is kept at .*pre-restore-\d{8}T\d{9}Z\.db/);
  expect(fs.existsSync(path.join(d.home, 'tasks.db-wal'))).toBe(false);
  // reading the backup left nothing beside it: no -wal or -shm next to the file restored from
  const inBackups = fs.readdirSync(path.join(d.home, 'backups'));
  expect(inBackups).toEqual(expect.arrayContaining([backup.name, path.basename(/kept at (\S+)/.exec(restored.stdout)![1]!)]));
  expect(inBackups.filter((n) => /-(wal|shm)$/.test(n))).toEqual([]);

  const again = await startTestDaemon({ root: d.root });
  try {
    const titles = ((await again.api('GET', '/api/tickets?project=shop')).body.tickets as { title: string }[]).map((t) => t.title);
    expect(titles).toEqual(['before the backup']);
  } finally {
    await again.stop();
  }
  const previous = /kept at (\S+)/.exec(restored.stdout)![1]!;
  const old = new Database(previous, { readonly: true });
  expect((old.prepare(`SELECT title FROM tickets ORDER BY id`).all() as { title: string }[]).map((t) => t.title)).toEqual([
    'before the backup',
    'after the backup',
  ]);
  old.close();
});

test('restore from a copy taken with its own -wal: reads the journal, leaves the copy as it was', async () => {
  const { spawnSync } = await import('node:child_process');
  const { daemonEnv, dispatchBin } = await import('./helpers/daemon.js');
  const { openDb } = await import('../lib/db/connection.js');
  const { createStore } = await import('../lib/store.js');
  h.addProject('copied', 'personal', 'cp');
  const source = (await backupDatabase(h.db, h.paths.backups, 5, new Date())).backup.file;
  // a database whose newest ticket is only in its -wal, copied together with that -wal (no -shm)
  const live = openDb(source);
  live.pragma('wal_autocheckpoint = 0');
  createTicket(createStore(live), { project: 'cp', title: 'only in the wal', column: 'human', createdBy: 'human' });
  const copyDir = path.join(h.root, 'copy');
  fs.mkdirSync(copyDir);
  fs.copyFileSync(source, path.join(copyDir, 'tasks.db'));
  fs.copyFileSync(`${source}-wal`, path.join(copyDir, 'tasks.db-wal'));
  live.close();
  const walBefore = fs.readFileSync(path.join(copyDir, 'tasks.db-wal'));
  expect(walBefore.length).toBeGreaterThan(0);

  h.db.close();
  const copy = path.join(copyDir, 'tasks.db');
  const r = spawnSync(process.execPath, [dispatchBin, 'restore', copy], { env: daemonEnv(h.root), encoding: 'utf8', timeout: 30_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(fs.readdirSync(copyDir).sort()).toEqual(['tasks.db', 'tasks.db-wal']);
  expect(fs.readFileSync(path.join(copyDir, 'tasks.db-wal')).equals(walBefore)).toBe(true);
  const restored = new Database(h.paths.db, { readonly: true });
  expect((restored.prepare(`SELECT title FROM tickets`).all() as { title: string }[]).map((t) => t.title)).toEqual(['only in the wal']);
  restored.close();
});

test('restore refuses while an agent left by a stopped daemon is still working', async () => {
  const snap = (await backupDatabase(h.db, h.paths.backups, 5, new Date())).backup.file;
  h.addProject('busy', 'research', 'bz');
  const ticket = createTicket(h.store, { project: 'bz', title: 'still running', column: 'researcher', createdBy: 'human' });
  // this test process stands in for the detached agent: alive, recorded as the run's pid
  h.db
    .prepare(
      `INSERT INTO runs (id, ticket_id, project_id, agent_type_id, model, column_id, status, pid, created_at, started_at) VALUES ('r-live', ?, ?, 'researcher', 'haiku', 'researcher', 'running', ?, ?, ?)`,
    )
    .run(ticket.id, ticket.project_id, process.pid, Date.now(), Date.now());
  await expect(restoreDatabase(h.paths, snap)).rejects.toThrow(/1 agent run\(s\) are still working \(pid \d+\)/);
  expect((h.db.prepare(`SELECT COUNT(*) AS n FROM tickets`).get() as { n: number }).n).toBe(1);
  h.db.prepare(`UPDATE runs SET status = 'crashed', ended_at = ? WHERE id = 'r-live'`).run(Date.now());
  await expect(restoreDatabase(h.paths, snap)).resolves.toMatchObject({ version: expect.any(Number) });
});
