// Projects: folders under the projects root (discovered as `unregistered`) or registered by path.
// A registered project owns a copy of its type's columns, so customising one board never changes
// the shared type. Statuses: unregistered, active, dormant, missing, archived.
import { HUMAN, DONE } from './columns.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureHeartbeat, markDue } from './heartbeats.js';
import { parseSwitch } from './agentTypes.js';
import { ConflictError, NotFoundError, UserError } from './errors.js';
import type { Db } from './db/connection.js';
import type { Store } from './store.js';

export const PROJECT_STATUSES = ['unregistered', 'active', 'dormant', 'missing', 'archived'] as const;
export type ProjectStatus = (typeof PROJECT_STATUSES)[number];

export interface Project {
  id: number;
  name: string;
  path: string;
  abbreviation: string | null;
  project_type_id: string | null;
  status: ProjectStatus;
  previous_status: ProjectStatus | null;
  main_branch: string | null;
  next_ticket_number: number;
  /** this project's own daily budget in USD, null for none (lib/budget.ts) */
  daily_budget_usd: number | null;
  /** 1 or 0: this project's own parallel coding; null: the global agents.parallel_coding */
  parallel_coding: number | null;
  /** 1: this project's tickets send no notification (lib/notifications.ts) */
  notifications_muted: number;
  /** the shell command that must pass on a ticket's branch (main merged in) before it lands; null: none */
  check_command: string | null;
  check_timeout_minutes: number;
  /** run once in each new ticket worktree, after copy_files were copied in */
  setup_command: string | null;
  /** JSON list of paths relative to the project folder, copied into each new ticket worktree */
  copy_files: string;
  /** a git URL the daemon and the runners both fetch from and push to (docs/RUNNERS.md) */
  remote_url: string | null;
  /** where its agents run: 'local' (this machine) or 'runners' */
  runs_on: 'local' | 'runners';
  created_at: number;
  updated_at: number;
}

export interface Column {
  column_id: string;
  name: string;
  position: number;
  agent_type_id: string | null;
}

const ABBREVIATION = /^[a-z][a-z0-9]{0,9}$/;

export function listProjects(db: Db, filter: { status?: ProjectStatus } = {}): Project[] {
  if (filter.status) return db.prepare(`SELECT * FROM projects WHERE status = ? ORDER BY name`).all(filter.status) as Project[];
  return db.prepare(`SELECT * FROM projects ORDER BY status = 'unregistered', name`).all() as Project[];
}

/** Finds a project by numeric id, abbreviation, absolute path, or its name when that is unique. */
export function findProject(db: Db, ref: string | number): Project | undefined {
  const key = String(ref).trim();
  if (/^\d+$/.test(key)) return db.prepare(`SELECT * FROM projects WHERE id = ?`).get(Number(key)) as Project | undefined;
  return (db.prepare(`SELECT * FROM projects WHERE abbreviation = ? OR path = ?`).get(key.toLowerCase(), key) ??
    db.prepare(`SELECT * FROM projects WHERE name = ? AND (SELECT COUNT(*) FROM projects WHERE name = ?) = 1`).get(key, key)) as
    Project | undefined;
}

export function getProject(db: Db, ref: string | number): Project {
  const project = findProject(db, ref);
  if (!project) throw new NotFoundError('project', ref);
  return project;
}

export function getColumns(db: Db, projectId: number): Column[] {
  return db
    .prepare(`SELECT column_id, name, position, agent_type_id FROM project_columns WHERE project_id = ? ORDER BY position`)
    .all(projectId) as Column[];
}

/** Proposes an abbreviation from a folder name: initials of its words, or its first letters. */
export function suggestAbbreviation(db: Db, name: string): string {
  const words = name
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  let base = words.length > 1 ? words.map((w) => w[0]).join('') : (words[0] ?? 'p').slice(0, 3);
  if (!/^[a-z]/.test(base)) base = `p${base}`;
  base = base.slice(0, 8);
  const taken = db.prepare(`SELECT 1 FROM projects WHERE abbreviation = ?`);
  if (!taken.get(base)) return base;
  for (let i = 2; ; i++) if (!taken.get(`${base}${i}`)) return `${base}${i}`;
}

/**
 * Why `name` is not a valid branch name, or null when it is: the rules of `git check-ref-format
 * --branch` (a main branch ends up in git command lines and ref paths, so `../../etc/passwd` or
 * `-x` must never get that far).
 */
export function branchNameProblem(name: string): string | null {
  if (name === '') return 'is empty';
  if (name.length > 200) return 'is longer than 200 characters';
  if (name === '@' || name === 'HEAD') return `"${name}" names no branch`;
  if (name.startsWith('-')) return 'cannot start with "-"';
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return 'cannot contain spaces, control characters or any of ~ ^ : ? * [ \\';
  if (name.includes('..')) return 'cannot contain ".."';
  if (name.includes('@{')) return 'cannot contain "@{"';
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) return 'cannot start or end with "/" or contain "//"';
  if (name.endsWith('.')) return 'cannot end with "."';
  if (name.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock'))) {
    return 'no part between slashes may start with "." or end with ".lock"';
  }
  return null;
}

function checkMainBranch(name: string | null | undefined): void {
  if (name === undefined || name === null) return;
  const problem = branchNameProblem(name);
  if (problem) throw new UserError(`main branch "${name}" is not a valid git branch name: it ${problem}`, 'main_branch');
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/**
 * Refuses folders an agent must never be let loose in: the filesystem root, the user's home
 * folder, and the data home, anything inside it or any folder that contains it (an agent there
 * could rewrite the database, the config or the prompts). Compared after resolving symlinks.
 */
function checkProjectFolder(folder: string, dataHome: string): void {
  const real = realpathOr(folder);
  const home = realpathOr(dataHome);
  const within = (child: string, parent: string) => child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
  const refuse = (message: string) => {
    throw new UserError(message, 'path');
  };
  if (path.parse(real).root === real) refuse(`the filesystem root cannot be a project: register a project's own folder`);
  if (real === realpathOr(os.homedir())) refuse(`your home folder cannot be a project: register a project's own folder inside it`);
  if (real === home || within(real, home))
    refuse(`${folder} is the dispatcher's data home (${home}) or inside it, so it cannot be a project`);
  if (within(home, real)) {
    refuse(`${folder} contains the dispatcher's data home (${home}), so it cannot be a project: agents there could change its files`);
  }
}

export interface RegisterInput {
  path: string;
  type: string;
  abbreviation?: string;
  name?: string;
  mainBranch?: string;
}

/** Registers a folder (new or discovered) with a project type; schedules its first scan at once. `dataHome` is never registrable. */
export function registerProject(store: Store, input: RegisterInput, baseIntervalSeconds: number, dataHome: string): Project {
  const { db } = store;
  const folder = path.resolve(input.path);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(folder);
  } catch {
    throw new UserError(`folder does not exist: ${folder}`, 'path');
  }
  if (!stat.isDirectory()) throw new UserError(`not a folder: ${folder}`, 'path');
  const type = db.prepare(`SELECT id FROM project_types WHERE id = ?`).get(input.type);
  if (!type) {
    const known = (db.prepare(`SELECT id FROM project_types ORDER BY builtin DESC, id`).all() as { id: string }[]).map((t) => t.id);
    throw new UserError(`unknown project type: ${input.type}; the types are ${known.join(', ')}`, 'type');
  }
  if (input.abbreviation !== undefined && !ABBREVIATION.test(input.abbreviation)) {
    throw new UserError('abbreviation must be 1-10 lowercase letters or digits, starting with a letter', 'abbreviation');
  }
  checkProjectFolder(folder, dataHome);
  checkMainBranch(input.mainBranch);
  const now = Date.now();
  const project = db
    .transaction(() => {
      const existing = db.prepare(`SELECT * FROM projects WHERE path = ?`).get(folder) as Project | undefined;
      if (existing && existing.status !== 'unregistered')
        throw new ConflictError(`already registered as ${existing.abbreviation}: ${folder}`, 'path');
      const abbreviation = input.abbreviation ?? suggestAbbreviation(db, path.basename(folder));
      const clash = db.prepare(`SELECT path FROM projects WHERE abbreviation = ? AND path != ?`).get(abbreviation, folder) as
        { path: string } | undefined;
      if (clash) throw new ConflictError(`abbreviation "${abbreviation}" is taken by ${clash.path}`, 'abbreviation');
      const name = input.name?.trim() || path.basename(folder);
      let id: number;
      if (existing) {
        db.prepare(
          `UPDATE projects SET name = ?, abbreviation = ?, project_type_id = ?, status = 'active', previous_status = NULL, main_branch = ?, updated_at = ? WHERE id = ?`,
        ).run(name, abbreviation, input.type, input.mainBranch ?? null, now, existing.id);
        id = existing.id;
      } else {
        id = Number(
          db
            .prepare(
              `INSERT INTO projects (name, path, abbreviation, project_type_id, status, main_branch, created_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?, ?)`,
            )
            .run(name, folder, abbreviation, input.type, input.mainBranch ?? null, now, now).lastInsertRowid,
        );
      }
      db.prepare(`DELETE FROM project_columns WHERE project_id = ?`).run(id);
      db.prepare(
        `INSERT INTO project_columns (project_id, column_id, name, position, agent_type_id)
       SELECT ?, column_id, name, position, agent_type_id FROM project_type_columns WHERE project_type_id = ?`,
      ).run(id, input.type);
      ensureHeartbeat(db, id, baseIntervalSeconds, now);
      return getProject(db, id);
    })
    .immediate();
  store.notify(project.id);
  return project;
}

export interface DiscoveryResult {
  added: string[];
  missing: string[];
  returned: string[];
}

/**
 * Reconciles the projects table with the folders under the projects root: new folders become
 * `unregistered`, vanished ones `missing` (tickets kept), returning ones get their old status back
 * (an active one is marked due in the same transaction, so work that waited for it starts).
 */
export function discoverProjects(db: Db, projectsRoot: string, excluded: string[] = []): DiscoveryResult {
  const result: DiscoveryResult = { added: [], missing: [], returned: [] };
  const root = path.resolve(projectsRoot);
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const skip = new Set(excluded.map((p) => path.resolve(p)));
  const present = new Set(names.map((n) => path.join(root, n)).filter((p) => !skip.has(p)));
  const exists = (p: { path: string }) => present.has(p.path) || (!p.path.startsWith(root + path.sep) && fs.existsSync(p.path));
  const goneNow = (p: Pick<Project, 'path' | 'status'>) => !exists(p) && p.status !== 'missing' && p.status !== 'archived';
  const backNow = (p: Pick<Project, 'path' | 'status'>) => p.status === 'missing' && exists(p);
  // a read first: the periodic re-scan almost always finds nothing to change, and then takes no write lock
  const seen = db.prepare(`SELECT path, status FROM projects`).all() as Pick<Project, 'path' | 'status'>[];
  const seenPaths = new Set(seen.map((p) => p.path));
  if ([...present].every((f) => seenPaths.has(f)) && !seen.some((p) => goneNow(p) || backNow(p))) return result;
  const now = Date.now();
  db.transaction(() => {
    for (const folder of present) {
      const inserted = db
        .prepare(`INSERT OR IGNORE INTO projects (name, path, status, created_at, updated_at) VALUES (?, ?, 'unregistered', ?, ?)`)
        .run(path.basename(folder), folder, now, now);
      if (inserted.changes) result.added.push(folder);
    }
    const known = db.prepare(`SELECT id, path, status, previous_status FROM projects`).all() as Pick<
      Project,
      'id' | 'path' | 'status' | 'previous_status'
    >[];
    for (const p of known) {
      if (goneNow(p)) {
        db.prepare(`UPDATE projects SET previous_status = status, status = 'missing', updated_at = ? WHERE id = ?`).run(now, p.id);
        result.missing.push(p.path);
      } else if (backNow(p)) {
        db.prepare(
          `UPDATE projects SET status = COALESCE(previous_status, 'unregistered'), previous_status = NULL, updated_at = ? WHERE id = ?`,
        ).run(now, p.id);
        // tickets may have been sent to its agent columns while it was gone: look at it now
        if ((p.previous_status ?? 'unregistered') === 'active') markDue(db, p.id, now);
        result.returned.push(p.path);
      }
    }
  }).immediate();
  return result;
}

/** Pauses (`dormant`), resumes (`active`) or archives a registered project. */
export function setProjectStatus(store: Store, ref: string | number, status: 'active' | 'dormant' | 'archived'): Project {
  const { db } = store;
  const project = getProject(db, ref);
  if (project.status === 'unregistered') throw new UserError('register the project first', 'status');
  if (project.status === 'missing' && status === 'active') throw new UserError(`the folder is missing: ${project.path}`, 'status');
  db.prepare(`UPDATE projects SET status = ?, updated_at = ? WHERE id = ?`).run(status, Date.now(), project.id);
  if (status === 'active') store.notify(project.id);
  return getProject(db, project.id);
}

export function updateProject(db: Db, ref: string | number, patch: { name?: string; main_branch?: string | null }): Project {
  const project = getProject(db, ref);
  checkMainBranch(patch.main_branch);
  db.prepare(`UPDATE projects SET name = COALESCE(?, name), main_branch = ?, updated_at = ? WHERE id = ?`).run(
    patch.name ?? null,
    patch.main_branch === undefined ? project.main_branch : patch.main_branch,
    Date.now(),
    project.id,
  );
  return getProject(db, project.id);
}

export interface ColumnInput {
  column_id: string;
  name?: string;
  agent_type_id?: string | null;
}

const COLUMN_ID = /^[a-z][a-z0-9-]{0,39}$/;

/** Checks a workflow: `human` first, `done` last, unique ids, every middle column staffed by a known agent type. */
export function validateColumns(db: Db, columns: ColumnInput[]): void {
  // the list comes straight from a JSON body: check each entry's shape before reading it
  (columns as unknown[]).forEach((raw, i) => {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new UserError(`columns[${i}] must be an object with a column_id`, `columns[${i}]`);
    }
    const c = raw as Record<string, unknown>;
    for (const key of ['column_id', 'name', 'agent_type_id'] as const) {
      const optional = key !== 'column_id' && (c[key] === undefined || c[key] === null);
      if (!optional && typeof c[key] !== 'string') throw new UserError(`columns[${i}].${key} must be a string`, `columns[${i}].${key}`);
    }
  });
  if (columns.length < 2 || columns[0]!.column_id !== HUMAN || columns[columns.length - 1]!.column_id !== DONE) {
    throw new UserError('a workflow starts with "human" and ends with "done"', 'columns');
  }
  const seen = new Set<string>();
  columns.forEach((c, i) => {
    if (!COLUMN_ID.test(c.column_id))
      throw new UserError(`bad column id "${c.column_id}": lowercase letters, digits and dashes`, `columns[${i}].column_id`);
    if (seen.has(c.column_id)) throw new UserError(`column "${c.column_id}" appears twice`, `columns[${i}].column_id`);
    seen.add(c.column_id);
    const middle = i > 0 && i < columns.length - 1;
    if (middle) {
      const agent = c.agent_type_id ?? c.column_id;
      if (!db.prepare(`SELECT 1 FROM agent_types WHERE id = ?`).get(agent))
        throw new UserError(`unknown agent type "${agent}"`, `columns[${i}].agent_type_id`);
    }
  });
}

export function normaliseColumns(db: Db, columns: ColumnInput[]): Column[] {
  validateColumns(db, columns);
  return columns.map((c, i) => {
    const middle = i > 0 && i < columns.length - 1;
    const agent = middle ? (c.agent_type_id ?? c.column_id) : null;
    const fallbackName = agent
      ? (db.prepare(`SELECT name FROM agent_types WHERE id = ?`).get(agent) as { name: string }).name
      : c.column_id === HUMAN
        ? 'Human'
        : 'Done';
    return { column_id: c.column_id, name: c.name?.trim() || fallbackName, position: i, agent_type_id: agent };
  });
}

/**
 * Replaces a project's own columns. Tickets in a removed column go to `human` with a system
 * comment; a ticket is never left in a column that no longer exists.
 */
export function setProjectColumns(store: Store, ref: string | number, input: ColumnInput[]): Column[] {
  const { db } = store;
  const project = getProject(db, ref);
  const columns = normaliseColumns(db, input);
  const keep = new Set(columns.map((c) => c.column_id));
  const now = Date.now();
  db.transaction(() => {
    const orphans = db.prepare(`SELECT id, column_id FROM tickets WHERE project_id = ?`).all(project.id) as {
      id: number;
      column_id: string;
    }[];
    for (const t of orphans.filter((t) => !keep.has(t.column_id))) {
      db.prepare(`UPDATE tickets SET column_id = 'human', column_entered_at = ?, updated_at = ? WHERE id = ?`).run(now, now, t.id);
      db.prepare(
        `INSERT INTO comments (ticket_id, type, author, body, from_column, to_column, created_at) VALUES (?, 'system', 'system', ?, ?, 'human', ?)`,
      ).run(t.id, `Column "${t.column_id}" was removed from the workflow; moved to human.`, t.column_id, now);
    }
    db.prepare(`DELETE FROM project_columns WHERE project_id = ?`).run(project.id);
    const insert = db.prepare(`INSERT INTO project_columns (project_id, column_id, name, position, agent_type_id) VALUES (?, ?, ?, ?, ?)`);
    for (const c of columns) insert.run(project.id, c.column_id, c.name, c.position, c.agent_type_id);
    db.prepare(`UPDATE projects SET updated_at = ? WHERE id = ?`).run(now, project.id);
  }).immediate();
  store.notify(project.id);
  return getColumns(db, project.id);
}

/**
 * Whether the project's agents each work on their ticket's own branch and worktree (true), or in the
 * project folder itself on whatever branch it has checked out (false): the project's own setting,
 * else the global agents.parallel_coding. A folder that is not a repository with a commit always
 * works in place (lib/workspace.ts).
 */
export function effectiveParallelCoding(project: Pick<Project, 'parallel_coding'>, globalDefault: boolean): boolean {
  return project.parallel_coding === null ? globalDefault : project.parallel_coding === 1;
}

/** What turning parallel coding off means, said on the project page and by the CLI. */
export const IN_PLACE_MEANING = 'agents commit on whatever branch the folder has checked out';
/** What a project folder that is not a repository (or has no commit yet) means for its agents. */
export const NOT_A_REPO_MEANING = 'Not a git repository: agents work in the folder itself; there is no branch, diff or merge';

/** A parallel-coding setting from the API, a form or the CLI: on/off (true/false), or default/null for the global value. */
export function parseParallelCoding(value: unknown): boolean | null {
  if (value === null || (typeof value === 'string' && ['default', ''].includes(value.trim().toLowerCase()))) return null;
  try {
    return parseSwitch(value, 'parallel_coding');
  } catch {
    throw new UserError('parallel_coding must be on, off or default', 'parallel_coding');
  }
}

/**
 * Sets (or with null returns to the global default) a project's parallel coding. The project is
 * marked due in the same transaction: tickets the serial rule held back may start now.
 */
export function setProjectParallelCoding(store: Store, ref: string | number, value: boolean | null, now = Date.now()): Project {
  const { db } = store;
  const project = getProject(db, ref);
  if (project.status === 'unregistered') throw new UserError('register the project first', 'parallel_coding');
  db.transaction(() => {
    const stored = value === null ? null : value ? 1 : 0;
    db.prepare(`UPDATE projects SET parallel_coding = ?, updated_at = ? WHERE id = ?`).run(stored, now, project.id);
    markDue(db, project.id, now);
  }).immediate();
  store.notify(project.id);
  return getProject(db, project.id);
}

export interface MergeSettingsPatch {
  check_command?: unknown;
  check_timeout_minutes?: unknown;
  setup_command?: unknown;
  copy_files?: unknown;
}

const MAX_COMMAND = 2000;

function commandSetting(v: unknown, field: string): string | null {
  if (v === null) return null;
  if (typeof v !== 'string' || v.length > MAX_COMMAND || /[\0\r\n]/.test(v)) {
    throw new UserError(`${field} must be one line of at most ${MAX_COMMAND} characters (empty for none)`, field);
  }
  return v.trim() || null;
}

/** Paths relative to the project folder that stay inside it: `.env`, `config/local.json`. */
export function parseCopyFiles(v: unknown): string[] {
  const raw = v === null ? [] : typeof v === 'string' ? v.split(/[\n,]/) : v;
  if (!Array.isArray(raw) || raw.some((f) => typeof f !== 'string'))
    throw new UserError('copy_files must be a list of file paths', 'copy_files');
  const files = (raw as string[]).map((f) => f.trim()).filter(Boolean);
  if (files.length > 50) throw new UserError('copy_files lists at most 50 files', 'copy_files');
  for (const f of files) {
    const norm = path.posix.normalize(f);
    if (
      path.isAbsolute(f) ||
      norm === '..' ||
      norm.startsWith('../') ||
      norm === '.' ||
      norm.split('/').includes('.git') ||
      /[\0\r]/.test(f)
    ) {
      throw new UserError(`copy_files: "${f}" must be a path inside the project folder (relative, no "..", not .git)`, 'copy_files');
    }
  }
  return files;
}

/** Sets a project's check, check timeout, worktree setup command and files to copy; unset fields keep their value. */
export function setProjectMergeSettings(store: Store, ref: string | number, patch: MergeSettingsPatch): Project {
  const { db } = store;
  const project = getProject(db, ref);
  if (project.status === 'unregistered') throw new UserError('register the project first', 'check_command');
  const check = patch.check_command === undefined ? project.check_command : commandSetting(patch.check_command, 'check_command');
  const setup = patch.setup_command === undefined ? project.setup_command : commandSetting(patch.setup_command, 'setup_command');
  let timeout = project.check_timeout_minutes;
  if (patch.check_timeout_minutes !== undefined) {
    const n =
      typeof patch.check_timeout_minutes === 'string' && patch.check_timeout_minutes.trim() !== ''
        ? Number(patch.check_timeout_minutes)
        : patch.check_timeout_minutes;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1440)
      throw new UserError('check_timeout_minutes must be a whole number from 1 to 1440', 'check_timeout_minutes');
    timeout = n;
  }
  const copy = patch.copy_files === undefined ? project.copy_files : JSON.stringify(parseCopyFiles(patch.copy_files));
  db.prepare(
    `UPDATE projects SET check_command = ?, check_timeout_minutes = ?, setup_command = ?, copy_files = ?, updated_at = ? WHERE id = ?`,
  ).run(check, timeout, setup, copy, Date.now(), project.id);
  return getProject(db, project.id);
}

export const RUNS_ON = ['local', 'runners'] as const;

/**
 * A git URL both this machine and the runners can fetch from and push to: an http(s), ssh, git or
 * file URL, scp-like `user@host:path`, or an absolute path. Never starts with "-" (git would read an option).
 */
function checkRemoteUrl(v: unknown): string | null {
  if (v === null || v === '') return null;
  if (typeof v !== 'string' || v.length > 1000 || /[\s\0]/.test(v) || v.startsWith('-'))
    throw new UserError('remote_url must be a git URL of at most 1000 characters, without spaces', 'remote_url');
  const ok = /^(https?|ssh|git|file):\/\/[^/]/i.test(v) || /^file:\/\/\//i.test(v) || /^[\w.-]+@[\w.-]+:/.test(v) || path.isAbsolute(v);
  if (!ok)
    throw new UserError(
      'remote_url must be an http(s)://, ssh://, git:// or file:// URL, user@host:path, or an absolute path',
      'remote_url',
    );
  return v;
}

/**
 * Sets where a project's agents run and the remote its code travels through; unset fields keep their
 * value. Runners need a remote: `runs_on` 'runners' without one is refused. Marked due, so waiting
 * tickets are offered the new way at once.
 */
export function setProjectRunners(store: Store, ref: string | number, patch: { remote_url?: unknown; runs_on?: unknown }): Project {
  const { db } = store;
  const project = getProject(db, ref);
  if (project.status === 'unregistered') throw new UserError('register the project first', 'runs_on');
  const remote = patch.remote_url === undefined ? project.remote_url : checkRemoteUrl(patch.remote_url);
  const runsOn = patch.runs_on === undefined ? project.runs_on : patch.runs_on;
  if (!RUNS_ON.includes(runsOn as (typeof RUNS_ON)[number])) throw new UserError(`runs_on must be one of ${RUNS_ON.join(', ')}`, 'runs_on');
  if (runsOn === 'runners' && !remote) {
    throw new UserError(
      `${project.abbreviation ?? project.name} cannot run on runners without a remote: give it one (a git URL the runners can push to)`,
      'remote_url',
    );
  }
  db.transaction(() => {
    db.prepare(`UPDATE projects SET remote_url = ?, runs_on = ?, updated_at = ? WHERE id = ?`).run(remote, runsOn, Date.now(), project.id);
    markDue(db, project.id);
  }).immediate();
  store.notify(project.id);
  return getProject(db, project.id);
}
