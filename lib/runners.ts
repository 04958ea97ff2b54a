// Runners: `dispatch runner` processes, here or on other machines, that run agents for the daemon
// (docs/RUNNERS.md). Each proves itself with a token shown once at `dispatch runners add`; the
// database keeps only its SHA-256, so a copy of tasks.db or a backup gives no runner access. A token
// is looked up by its hash and the stored hash is compared again in constant time. Revoking ends the
// token at once: every call with it is refused, so its live runs stop at their next heartbeat.
import crypto from 'node:crypto';
import { ConflictError, NotFoundError, UserError } from './errors.js';
import { isLoopbackAddress } from './config.js';
import type { Db } from './db/connection.js';

const RUNNER_NAME = /^[a-z0-9][a-z0-9_.-]{0,39}$/;
export const MAX_RUNNER_SLOTS = 100;
const DEFAULT_SLOTS = 2;
/** A runner token: a fixed prefix (so it is recognised in a config or a leak scanner) and 32 random bytes. */
const TOKEN_PREFIX = 'dpr_';

export interface Runner {
  id: number;
  name: string;
  slots: number;
  host: string | null;
  version: string | null;
  created_at: number;
  last_seen_at: number | null;
  revoked_at: number | null;
}

export interface RunnerListItem extends Runner {
  /** its runs that are queued or running now */
  live_runs: number;
}

const COLUMNS = `id, name, slots, host, version, created_at, last_seen_at, revoked_at`;

export function hashRunnerToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

export function checkRunnerName(name: unknown): string {
  if (typeof name !== 'string' || !RUNNER_NAME.test(name)) {
    throw new UserError('a runner name is 1 to 40 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit', 'name');
  }
  return name;
}

export function parseSlots(v: unknown): number {
  if (v === undefined || v === null || v === '') return DEFAULT_SLOTS;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_RUNNER_SLOTS)
    throw new UserError(`slots must be a whole number from 1 to ${MAX_RUNNER_SLOTS}`, 'slots');
  return n;
}

/** Adds a runner; returns it with its token, which is never shown or stored again. */
export function addRunner(db: Db, input: { name: unknown; slots?: unknown }, now = Date.now()): { runner: Runner; token: string } {
  const name = checkRunnerName(input.name);
  const slots = parseSlots(input.slots);
  const token = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
  return db
    .transaction(() => {
      if (db.prepare(`SELECT 1 FROM runners WHERE name = ?`).get(name)) {
        throw new ConflictError(`a runner named "${name}" exists already (revoked ones keep their name)`, 'name');
      }
      const id = db
        .prepare(`INSERT INTO runners (name, token_hash, slots, created_at) VALUES (?, ?, ?, ?)`)
        .run(name, hashRunnerToken(token), slots, now).lastInsertRowid;
      return { runner: getRunnerById(db, Number(id))!, token };
    })
    .immediate();
}

function getRunnerById(db: Db, id: number): Runner | undefined {
  return db.prepare(`SELECT ${COLUMNS} FROM runners WHERE id = ?`).get(id) as Runner | undefined;
}

/** Ends a runner's token now. Revoking a revoked runner changes nothing. */
export function revokeRunner(db: Db, name: string, now = Date.now()): Runner {
  const runner = db.prepare(`SELECT ${COLUMNS} FROM runners WHERE name = ?`).get(name) as Runner | undefined;
  if (!runner) throw new NotFoundError('runner', name);
  db.prepare(`UPDATE runners SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`).run(now, runner.id);
  return getRunnerById(db, runner.id)!;
}

/** Every runner with its live runs, unrevoked first, by name. */
export function listRunners(db: Db): RunnerListItem[] {
  return db
    .prepare(
      `SELECT ${COLUMNS.split(', ')
        .map((c) => `w.${c}`)
        .join(', ')},
         (SELECT COUNT(*) FROM runs r WHERE r.runner_id = w.id AND r.status IN ('queued', 'running')) AS live_runs
       FROM runners w ORDER BY w.revoked_at IS NOT NULL, w.name`,
    )
    .all() as RunnerListItem[];
}

/** True when some runner token works: the daemon may then listen on an address other machines reach. */
export function hasUsableRunnerToken(db: Db): boolean {
  return db.prepare(`SELECT 1 FROM runners WHERE revoked_at IS NULL LIMIT 1`).get() !== undefined;
}

/**
 * Refuses a settings change that would make the daemon listen where other machines reach it while no
 * runner token exists: the next start would refuse to run (daemon/daemon.ts). Not a "save anyway" check.
 */
export function refuseListenWithoutToken(db: Db, next: { listen: string }, prev: { listen: string }): void {
  if (next.listen === prev.listen || isLoopbackAddress(next.listen) || hasUsableRunnerToken(db)) return;
  throw new UserError(
    `not saved: listening on ${next.listen} lets other machines reach the daemon, which needs a runner token first (dispatch runners add <name>)`,
    'listen',
  );
}

/** The unrevoked runner whose token this is, or null. */
export function authenticateRunner(db: Db, token: string): Runner | null {
  if (!token || token.length > 200) return null;
  const hash = hashRunnerToken(token);
  const row = db.prepare(`SELECT ${COLUMNS}, token_hash FROM runners WHERE token_hash = ?`).get(hash) as
    (Runner & { token_hash: string }) | undefined;
  // the lookup is by hash; the comparison of what was found is constant-time all the same
  const stored = row ? Buffer.from(row.token_hash, 'hex') : Buffer.alloc(32);
  const same = stored.length === 32 && crypto.timingSafeEqual(Buffer.from(hash, 'hex'), stored);
  if (!row || !same || row.revoked_at !== null) return null;
  const { token_hash: _hash, ...runner } = row;
  return runner;
}

/** A runner's hello: what it runs on, and that it is alive. */
export function recordHello(db: Db, runnerId: number, hello: { host: string | null; version: string | null }, now = Date.now()): void {
  db.prepare(`UPDATE runners SET host = ?, version = ?, last_seen_at = ? WHERE id = ?`).run(hello.host, hello.version, now, runnerId);
}

export function touchRunner(db: Db, runnerId: number, now = Date.now()): void {
  db.prepare(`UPDATE runners SET last_seen_at = ? WHERE id = ?`).run(now, runnerId);
}

/**
 * Gives the runner the first of `offered` (run ids, in the order to try) that is still queued and
 * untaken, in one IMMEDIATE transaction that also enforces its slots: the runner's live runs must be
 * fewer than its slots. Returns the run id, 'full', or null when none of them could be taken.
 */
export function assignRun(db: Db, runnerId: number, offered: readonly string[], now = Date.now()): string | 'full' | null {
  if (offered.length === 0) return null;
  return db
    .transaction((): string | 'full' | null => {
      const runner = db.prepare(`SELECT slots, revoked_at FROM runners WHERE id = ?`).get(runnerId) as
        { slots: number; revoked_at: number | null } | undefined;
      if (!runner || runner.revoked_at !== null) return null;
      const live = db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE runner_id = ? AND status IN ('queued', 'running')`).get(runnerId) as {
        n: number;
      };
      if (live.n >= runner.slots) return 'full';
      const take = db.prepare(`UPDATE runs SET runner_id = ?, beat_at = ? WHERE id = ? AND status = 'queued' AND runner_id IS NULL`);
      for (const id of offered) if (take.run(runnerId, now, id).changes === 1) return id;
      return null;
    })
    .immediate();
}
