import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { openDb } from '../lib/db/connection.js';
import { LATEST_VERSION, migrate, migrations, schemaVersion } from '../lib/db/migrations.js';
import { BUILTIN_AGENT_TYPES, seed } from '../lib/seed.js';
import { tempDir } from './helpers/home.js';
import { repoRoot } from './helpers/daemon.js';

describe('migrations', () => {
  test('an empty database migrates to the latest version and seeds the built-ins', () => {
    const dir = tempDir();
    const db = openDb(path.join(dir, 'tasks.db'));
    expect(schemaVersion(db)).toBe(0);
    expect(migrate(db)).toEqual(migrations.map((m) => m.version).sort((a, b) => a - b));
    seed(db);
    expect(schemaVersion(db)).toBe(LATEST_VERSION);
    expect(db.prepare('SELECT id FROM project_types ORDER BY id').pluck().all()).toEqual([
      'content',
      'personal',
      'research',
      'software-dev',
      'vps-maintenance',
    ]);
    expect(db.prepare('SELECT COUNT(*) FROM agent_types').pluck().get()).toBe(BUILTIN_AGENT_TYPES.length);
    expect(
      db.prepare(`SELECT column_id FROM project_type_columns WHERE project_type_id = 'software-dev' ORDER BY position`).pluck().all(),
    ).toEqual(['human', 'coding-agent', 'code-reviewer', 'security-reviewer', 'done']);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    db.close();
  });

  test('migrations apply in version order whatever their order in the list; versions may have gaps, never duplicates', () => {
    const versions = migrations.map((m) => m.version);
    expect(new Set(versions).size).toBe(versions.length);
    expect(LATEST_VERSION).toBe(Math.max(...versions));
    const db = openDb(path.join(tempDir(), 'tasks.db'));
    const list = [
      { version: 7, name: 'second', sql: 'CREATE TABLE second (x)' },
      { version: 3, name: 'first', sql: 'CREATE TABLE first (x)' },
    ];
    expect(migrate(db, list)).toEqual([3, 7]);
    expect(schemaVersion(db)).toBe(7);
    expect(migrate(db, list)).toEqual([]);
    db.close();
  });

  test('migrating and seeding an already-migrated database changes nothing and keeps user edits', () => {
    const dir = tempDir();
    const file = path.join(dir, 'tasks.db');
    const db = openDb(file);
    migrate(db);
    seed(db);
    db.prepare(`UPDATE agent_types SET model = 'my-model' WHERE id = 'coding-agent'`).run();
    db.prepare(`DELETE FROM project_type_columns WHERE project_type_id = 'research' AND column_id = 'researcher'`).run();
    expect(migrate(db)).toEqual([]);
    seed(db);
    expect(db.prepare(`SELECT model FROM agent_types WHERE id = 'coding-agent'`).pluck().get()).toBe('my-model');
    expect(db.prepare(`SELECT COUNT(*) FROM project_type_columns WHERE project_type_id = 'research'`).pluck().get()).toBe(2);
    expect(db.prepare('SELECT COUNT(*) FROM agent_types').pluck().get()).toBe(BUILTIN_AGENT_TYPES.length);
    db.close();
  });

  test('migration 11: built-ins that edit files get the flag, as a fresh seed gives it; a user type and the projects keep their defaults', () => {
    const old = openDb(path.join(tempDir(), 'tasks.db'));
    migrate(
      old,
      migrations.filter((m) => m.version < 11),
    );
    const insert = old.prepare(`INSERT INTO agent_types (id, name, model, builtin, created_at, updated_at) VALUES (?, ?, 'opus', ?, 0, 0)`);
    for (const a of BUILTIN_AGENT_TYPES) insert.run(a.id, a.name, 1);
    insert.run('mine', 'Mine', 0);
    old
      .prepare(`INSERT INTO projects (name, path, abbreviation, status, created_at, updated_at) VALUES ('p', '/p', 'p', 'active', 0, 0)`)
      .run();
    expect(migrate(old)).toContain(11);
    const flagged = (db: ReturnType<typeof openDb>) =>
      db.prepare(`SELECT id FROM agent_types WHERE edits_working_tree = 1 ORDER BY id`).pluck().all();
    expect(flagged(old)).toEqual(['coding-agent', 'deployer', 'editor', 'merge-resolver', 'sysadmin', 'writer']);
    expect(old.prepare(`SELECT parallel_coding FROM projects`).pluck().get()).toBeNull();
    const fresh = openDb(path.join(tempDir(), 'tasks.db'));
    migrate(fresh);
    seed(fresh);
    expect(flagged(fresh)).toEqual(flagged(old));
    old.close();
    fresh.close();
  });

  test('two processes migrating the same new database at once both succeed, once', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'tasks.db');
    const script = `
      import { openDb } from '${path.join(repoRoot, 'dist/lib/db/connection.js')}';
      import { migrate } from '${path.join(repoRoot, 'dist/lib/db/migrations.js')}';
      import { seed } from '${path.join(repoRoot, 'dist/lib/seed.js')}';
      const db = openDb(process.argv[1]); const applied = migrate(db); seed(db); console.log(JSON.stringify(applied));`;
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, file], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(err))));
      });
    const results = (await Promise.all([run(), run()])).map((r) => JSON.parse(r) as number[]);
    expect(results.flat().sort((a, b) => a - b)).toEqual(migrations.map((m) => m.version).sort((a, b) => a - b));
    const db = openDb(file);
    expect(schemaVersion(db)).toBe(LATEST_VERSION);
    expect(db.prepare('SELECT COUNT(*) FROM agent_types').pluck().get()).toBe(BUILTIN_AGENT_TYPES.length);
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('migrations run in version order whatever their order in the list; unused versions (like 2) are skipped', () => {
    const dir = tempDir();
    const db = openDb(path.join(dir, 'tasks.db'));
    const list = [
      { version: 8, name: 'third', sql: 'ALTER TABLE a ADD COLUMN z' },
      { version: 1, name: 'first', sql: 'CREATE TABLE a (x)' },
      { version: 3, name: 'second', sql: 'ALTER TABLE a ADD COLUMN y' },
    ];
    expect(migrate(db, list)).toEqual([1, 3, 8]);
    expect(schemaVersion(db)).toBe(8);
    expect(migrate(db, list)).toEqual([]);
    expect(db.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').pluck().all('a')).toEqual(['x', 'y', 'z']);
    db.close();
    const versions = migrations.map((m) => m.version);
    expect(new Set(versions).size).toBe(versions.length);
    expect(LATEST_VERSION).toBe(Math.max(...versions));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('who parked a ticket in human: filled in from the history by version 12, then kept by every move into human', () => {
    const db = openDb(path.join(tempDir(), 'tasks.db'));
    migrate(
      db,
      migrations.filter((m) => m.version < 12),
    );
    seed(db);
    db.prepare(
      `INSERT INTO projects (name, path, abbreviation, project_type_id, status, created_at, updated_at) VALUES ('p', '/p', 'p', 'personal', 'active', 0, 0)`,
    ).run();
    const ticket = db.prepare(
      `INSERT INTO tickets (project_id, number, title, column_id, created_by, created_at, updated_at, column_entered_at) VALUES (1, ?, 't', ?, 'human', 0, 0, 0)`,
    );
    const comment = db.prepare(
      `INSERT INTO comments (ticket_id, type, author, body, from_column, to_column, created_at) VALUES (?, ?, ?, '', ?, ?, 0)`,
    );
    ticket.run(1, 'human'); // created there by the person, no history (filled in from created_by)
    ticket.run(2, 'human'); // parked by an agent
    comment.run(2, 'move', 'human', null, 'agent');
    comment.run(2, 'move', 'agent:run-1', 'agent', 'human');
    ticket.run(3, 'human'); // parked by an agent, then the person took it out and put it back
    comment.run(3, 'move', 'agent:run-2', 'agent', 'human');
    comment.run(3, 'move', 'human', 'human', 'agent');
    comment.run(3, 'move', 'human', 'agent', 'human');
    expect(migrate(db)).toEqual(
      migrations
        .filter((m) => m.version >= 12)
        .map((m) => m.version)
        .sort((a, b) => a - b),
    );
    const parkedBy = () => db.prepare(`SELECT parked_by FROM tickets ORDER BY number`).pluck().all();
    expect(parkedBy()).toEqual(['human', 'agent:run-1', 'human']);
    // written the way ticket.cjs and the removed-column note write it, not through lib/tickets.ts
    comment.run(1, 'move', 'agent:run-3', 'agent', 'human');
    db.prepare(
      `INSERT INTO comments (ticket_id, type, author, body, to_column, created_at) VALUES (3, 'system', 'system', 'column removed', 'human', 0)`,
    ).run();
    comment.run(2, 'move', 'human', 'human', 'agent');
    expect(parkedBy()).toEqual(['agent:run-3', 'agent:run-1', 'system']);
    db.close();
  });

  test('ticket history is append-only', () => {
    const dir = tempDir();
    const db = openDb(path.join(dir, 'tasks.db'));
    migrate(db);
    seed(db);
    db.prepare(
      `INSERT INTO projects (name, path, abbreviation, project_type_id, status, created_at, updated_at) VALUES ('p', '/p', 'p', 'personal', 'active', 0, 0)`,
    ).run();
    db.prepare(
      `INSERT INTO tickets (project_id, number, title, column_id, created_by, created_at, updated_at, column_entered_at) VALUES (1, 1, 't', 'human', 'me', 0, 0, 0)`,
    ).run();
    db.prepare(`INSERT INTO comments (ticket_id, type, author, body, created_at) VALUES (1, 'comment', 'me', 'hi', 0)`).run();
    expect(() => db.prepare(`UPDATE comments SET body = 'changed'`).run()).toThrow(/append-only/);
    expect(() => db.prepare(`DELETE FROM comments`).run()).toThrow(/append-only/);
    db.close();
  });
});
