// Opens tasks.db with the pragmas every connection needs: WAL so readers never block the
// writer, foreign keys on, and a busy timeout so many ticket.cjs processes can write at once.
// Every read-then-write section runs as `db.transaction(fn).immediate()` (BEGIN IMMEDIATE), so it
// takes the write lock before it reads and never races another writer.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../errors.js';

export type Db = Database.Database;

export function openDb(file: string, options: { readonly?: boolean } = {}): Db {
  if (!options.readonly) fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  db.pragma('busy_timeout = 10000');
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  }
  db.pragma('foreign_keys = ON');
  cacheStatements(db);
  return db;
}

const MAX_CACHED_STATEMENTS = 1000;

/**
 * Makes `db.prepare(sql)` compile each SQL text once per connection and hand back the same
 * statement afterwards: compiling on every call was the daemon's largest CPU cost per agent run
 * (BENCHMARKS.md). A cached statement is handed back in its default mode (pluck, raw and expand
 * off), so a caller that switches a mode on affects only its own use. Invariant: no iterator over
 * a statement is held open across another prepare() of the same SQL text.
 */
export function cacheStatements(db: Db): void {
  const compile = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = cache.get(sql);
    if (statement?.reader) statement.raw(false).pluck(false).expand(false);
    if (!statement) {
      if (cache.size >= MAX_CACHED_STATEMENTS) cache.clear(); // only generated SQL could grow it this far
      statement = compile(sql);
      cache.set(sql, statement);
    }
    return statement;
  }) as Db['prepare'];
}

/** A storage failure the user can act on; the failed statement's transaction was rolled back. */
export class StorageError extends UserError {
  constructor(
    override readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

/**
 * Names a SQLite failure that comes from the disk or the lock rather than from a bug (a full disk,
 * a read-only file, a writer that held the lock past busy_timeout), so callers can answer with a
 * clear message instead of "internal error". Null for anything else.
 */
export function storageError(err: unknown): StorageError | null {
  if (!(err instanceof Database.SqliteError)) return null;
  const code = err.code;
  if (code === 'SQLITE_FULL')
    return new StorageError(507, 'the disk holding the data home is full: free some space and retry (nothing was saved)');
  if (code.startsWith('SQLITE_READONLY'))
    return new StorageError(
      503,
      `the database is read-only (${code}): check the data home's permissions and free space, then retry (nothing was saved)`,
    );
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return new StorageError(503, 'the database is busy: retry in a moment (nothing was saved)');
  if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN'))
    return new StorageError(503, `the database could not be written (${code}): check the disk holding the data home (nothing was saved)`);
  return null;
}
