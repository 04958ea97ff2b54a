// Agent types: a markdown prompt at `<home>/prompts/<id>.md` plus the settings stored in the
// database. Ids are checked against a strict pattern before they ever touch a path, so no crafted
// id can read or write outside the prompts folder.
import { HUMAN, DONE } from './columns.js';
import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, NotFoundError, UserError } from './errors.js';
import { writeFileAtomic } from './files.js';
import type { Db } from './db/connection.js';
import { CLI_NAMES, cliAdapter, isCliName, type CliName } from './clis/index.js';

export const PERMISSION_MODES = ['acceptEdits', 'auto', 'bypassPermissions', 'default', 'dontAsk', 'plan'] as const;
const AGENT_ID = /^[a-z][a-z0-9-]{0,39}$/;
const MAX_PROMPT = 256 * 1024;
/** Tools that let an agent change files in its working directory. */
const FILE_CHANGING_TOOLS = ['Edit', 'Write', 'MultiEdit', 'NotebookEdit', 'Bash'];

export interface AgentTypeRow {
  id: string;
  name: string;
  description: string;
  model: string;
  /** the agent CLI that runs it (lib/clis/) */
  cli: CliName;
  allowed_tools: string;
  permission_mode: string;
  timeout_minutes: number;
  max_retries: number;
  /** 1: changes files where it works; in a project whose agents share the folder, one such run at a time */
  edits_working_tree: number;
  builtin: number;
  created_at: number;
  updated_at: number;
}

export interface AgentType extends Omit<AgentTypeRow, 'allowed_tools' | 'builtin' | 'edits_working_tree'> {
  allowed_tools: string[];
  edits_working_tree: boolean;
  builtin: boolean;
}

function toAgentType(r: AgentTypeRow): AgentType {
  const tools = JSON.parse(r.allowed_tools) as string[];
  return { ...r, allowed_tools: tools, edits_working_tree: r.edits_working_tree === 1, builtin: r.builtin === 1 };
}

export function checkAgentId(id: string): string {
  if (!AGENT_ID.test(id)) throw new UserError('agent type id must be lowercase letters, digits and dashes, starting with a letter', 'id');
  return id;
}

export function listAgentTypes(db: Db): AgentType[] {
  return (db.prepare(`SELECT * FROM agent_types ORDER BY builtin DESC, id`).all() as AgentTypeRow[]).map(toAgentType);
}

export function getAgentType(db: Db, id: string): AgentType {
  const row = AGENT_ID.test(id) ? (db.prepare(`SELECT * FROM agent_types WHERE id = ?`).get(id) as AgentTypeRow | undefined) : undefined;
  if (!row) throw new NotFoundError('agent type', id);
  return toAgentType(row);
}

export function promptPath(promptsDir: string, id: string): string {
  return path.join(promptsDir, `${checkAgentId(id)}.md`);
}

/** The prompt markdown, or null when the file is missing (the runtime fails such a run loudly). */
export function readPrompt(promptsDir: string, id: string): string | null {
  try {
    return fs.readFileSync(promptPath(promptsDir, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function writePrompt(promptsDir: string, id: string, text: unknown): void {
  if (typeof text !== 'string') throw new UserError('prompt must be a string', 'prompt');
  if (text.length > MAX_PROMPT) throw new UserError(`prompt is longer than ${MAX_PROMPT} characters`, 'prompt');
  const file = promptPath(promptsDir, id);
  fs.mkdirSync(promptsDir, { recursive: true });
  writeFileAtomic(file, text);
}

export interface AgentTypeInput {
  name?: unknown;
  description?: unknown;
  model?: unknown;
  cli?: unknown;
  allowed_tools?: unknown;
  permission_mode?: unknown;
  timeout_minutes?: unknown;
  max_retries?: unknown;
  /** true/false, or from a form or the CLI "on"/"off", "true"/"false", "1"/"0" */
  edits_working_tree?: unknown;
}

function validated(input: AgentTypeInput, base: AgentType | null): Omit<AgentType, 'id' | 'builtin' | 'created_at' | 'updated_at'> {
  const str = (v: unknown, field: string, fallback: string | undefined, max = 200): string => {
    if (v === undefined) {
      if (fallback === undefined) throw new UserError(`${field} is required`, field);
      return fallback;
    }
    if (typeof v !== 'string' || (!v.trim() && field !== 'description') || v.length > max)
      throw new UserError(`${field} must be a non-empty string of at most ${max} characters`, field);
    return v.trim();
  };
  const int = (v: unknown, field: string, fallback: number | undefined, min: number, max: number): number => {
    if (v === undefined) {
      if (fallback === undefined) throw new UserError(`${field} is required`, field);
      return fallback;
    }
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
      throw new UserError(`${field} must be a whole number from ${min} to ${max}`, field);
    return n;
  };
  let tools = base?.allowed_tools ?? [];
  if (input.allowed_tools !== undefined) {
    const raw = typeof input.allowed_tools === 'string' ? input.allowed_tools.split('\n') : input.allowed_tools;
    if (!Array.isArray(raw) || raw.some((t) => typeof t !== 'string' || t.length > 300))
      throw new UserError('allowed_tools must be a list of tool patterns', 'allowed_tools');
    tools = (raw as string[]).map((t) => t.trim()).filter(Boolean);
  }
  const cli = input.cli === undefined || input.cli === '' ? (base?.cli ?? 'claude') : input.cli;
  if (!isCliName(cli)) throw new UserError(`cli must be one of ${CLI_NAMES.join(', ')}`, 'cli');
  const adapter = cliAdapter(cli);
  const model = str(input.model, 'model', base?.model, 100);
  if (!adapter.modelPattern.test(model)) throw new UserError(`model for ${adapter.label} must be ${adapter.modelHint}`, 'model');
  const mode = input.permission_mode === undefined ? (base?.permission_mode ?? 'acceptEdits') : input.permission_mode;
  if (!PERMISSION_MODES.includes(mode as (typeof PERMISSION_MODES)[number]))
    throw new UserError(`permission_mode must be one of ${PERMISSION_MODES.join(', ')}`, 'permission_mode');
  return {
    name: str(input.name, 'name', base?.name),
    description: str(input.description, 'description', base?.description ?? '', 1000),
    model,
    cli,
    allowed_tools: tools,
    permission_mode: mode as string,
    timeout_minutes: int(input.timeout_minutes, 'timeout_minutes', base?.timeout_minutes ?? 30, 1, 7 * 24 * 60),
    max_retries: int(input.max_retries, 'max_retries', base?.max_retries ?? 2, 0, 20),
    edits_working_tree:
      input.edits_working_tree === undefined
        ? (base?.edits_working_tree ?? false)
        : parseSwitch(input.edits_working_tree, 'edits_working_tree'),
  };
}

/** An on/off value from JSON (a boolean) or a form or the CLI ("on"/"off", "true"/"false", "1"/"0"). */
export function parseSwitch(v: unknown, field: string): boolean {
  if (typeof v === 'boolean') return v;
  const text = typeof v === 'string' ? v.trim().toLowerCase() : typeof v === 'number' ? String(v) : null;
  if (text === 'on' || text === 'true' || text === '1') return true;
  if (text === 'off' || text === 'false' || text === '0') return false;
  throw new UserError(`${field} must be on or off (true or false)`, field);
}

export function updateAgentType(db: Db, id: string, input: AgentTypeInput): AgentType {
  const current = getAgentType(db, id);
  const v = validated(input, current);
  db.prepare(
    `UPDATE agent_types SET name = ?, description = ?, model = ?, cli = ?, allowed_tools = ?, permission_mode = ?, timeout_minutes = ?, max_retries = ?,
       edits_working_tree = ?, updated_at = ? WHERE id = ?`,
  ).run(
    v.name,
    v.description,
    v.model,
    v.cli,
    JSON.stringify(v.allowed_tools),
    v.permission_mode,
    v.timeout_minutes,
    v.max_retries,
    v.edits_working_tree ? 1 : 0,
    Date.now(),
    id,
  );
  return getAgentType(db, id);
}

/** Creates a user agent type and its prompt file (a starter prompt when none is given). */
export function createAgentType(db: Db, promptsDir: string, id: string, input: AgentTypeInput & { prompt?: unknown }): AgentType {
  checkAgentId(id);
  if (db.prepare(`SELECT 1 FROM agent_types WHERE id = ?`).get(id)) throw new ConflictError(`agent type "${id}" already exists`, 'id');
  if (id === HUMAN || id === DONE) throw new UserError(`"${HUMAN}" and "${DONE}" are reserved column ids`, 'id');
  const v = validated({ allowed_tools: ['Bash(ticket:*)', 'Read'], ...input }, null);
  // unless told, an agent that may write files or run any command is taken to edit the working tree
  if (input.edits_working_tree === undefined) v.edits_working_tree = v.allowed_tools.some((t) => FILE_CHANGING_TOOLS.includes(t));
  const now = Date.now();
  db.prepare(
    `INSERT INTO agent_types
       (id, name, description, model, cli, allowed_tools, permission_mode, timeout_minutes, max_retries, edits_working_tree, builtin, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
  ).run(
    id,
    v.name,
    v.description,
    v.model,
    v.cli,
    JSON.stringify(v.allowed_tools),
    v.permission_mode,
    v.timeout_minutes,
    v.max_retries,
    v.edits_working_tree ? 1 : 0,
    now,
    now,
  );
  if (readPrompt(promptsDir, id) === null)
    writePrompt(promptsDir, id, typeof input.prompt === 'string' ? input.prompt : `# ${v.name}\n\nDescribe this agent's role here.\n`);
  return getAgentType(db, id);
}
