// Built-in project types and agent types, and the default prompt files. Seeding only inserts
// what is missing, so it is safe on every start and never overwrites a user's edits.
import { HUMAN, DONE } from './columns.js';
import fs from 'node:fs';
import path from 'node:path';
import type { Db } from './db/connection.js';
import { defaultPromptsDir } from './paths.js';

export interface AgentTypeSeed {
  id: string;
  name: string;
  description: string;
  model: string;
  allowed_tools: string[];
  permission_mode: string;
  timeout_minutes: number;
  max_retries: number;
  /** changes files in its working directory (see agent_types.edits_working_tree) */
  edits_working_tree: boolean;
}

/** The ticket tool as agents spell it; see bin/agent-path/ticket. The CLI matches this literally. */
export const TICKET_TOOL_PATTERN = 'Bash(ticket:*)';

const READ_ONLY = ['Read', 'Grep', 'Glob'];
const GIT_READ = ['Bash(git diff:*)', 'Bash(git log:*)', 'Bash(git status:*)', 'Bash(git show:*)'];

export const BUILTIN_AGENT_TYPES: readonly AgentTypeSeed[] = [
  {
    id: 'coding-agent',
    name: 'Coding Agent',
    description: 'Makes the change a ticket asks for and commits it',
    model: 'opus',
    allowed_tools: [
      TICKET_TOOL_PATTERN,
      ...READ_ONLY,
      'Edit',
      'Write',
      ...GIT_READ,
      'Bash(git add:*)',
      'Bash(git commit:*)',
      'Bash(npm test:*)',
      'Bash(npm run:*)',
    ],
    permission_mode: 'acceptEdits',
    timeout_minutes: 60,
    max_retries: 2,
    edits_working_tree: true,
  },
  {
    id: 'code-reviewer',
    name: 'Code Reviewer',
    description: "Reviews the coding agent's diff",
    model: 'opus',
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY, ...GIT_READ],
    permission_mode: 'default',
    timeout_minutes: 30,
    max_retries: 2,
    edits_working_tree: false,
  },
  {
    id: 'security-reviewer',
    name: 'Security Reviewer',
    description: 'Reviews for security issues, approves for merge',
    model: 'opus',
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY, ...GIT_READ],
    permission_mode: 'default',
    timeout_minutes: 30,
    max_retries: 2,
    edits_working_tree: false,
  },
  {
    id: 'sysadmin',
    name: 'Sysadmin',
    description: 'VPS and host operations',
    model: 'sonnet',
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY, 'Bash'],
    permission_mode: 'acceptEdits',
    timeout_minutes: 30,
    max_retries: 1,
    edits_working_tree: true,
  },
  {
    id: 'security-auditor',
    name: 'Security Auditor',
    description: 'Deeper security audits of hosts and configs',
    model: 'sonnet',
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY],
    permission_mode: 'default',
    timeout_minutes: 30,
    max_retries: 1,
    edits_working_tree: false,
  },
  {
    id: 'writer',
    name: 'Writer',
    description: 'Drafts written content',
    model: 'sonnet',
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY, 'Edit', 'Write'],
    permission_mode: 'acceptEdits',
    timeout_minutes: 30,
    max_retries: 2,
    edits_working_tree: true,
  },
  {
    id: 'editor',
    name: 'Editor',
    description: "Edits the writer's drafts",
    model: 'sonnet',
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY, 'Edit', 'Write'],
    permission_mode: 'acceptEdits',
    timeout_minutes: 30,
    max_retries: 2,
    edits_working_tree: true,
  },
  {
    id: 'deployer',
    name: 'Deployer',
    description: 'Packages and deploys',
    model: 'sonnet',
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY, 'Bash(git:*)', 'Bash(npm:*)'],
    permission_mode: 'default',
    timeout_minutes: 30,
    max_retries: 1,
    edits_working_tree: true,
  },
  {
    id: 'merge-resolver',
    name: 'Merge Resolver',
    description: "Resolves conflicts between main and a done ticket's branch",
    model: 'opus',
    // its worktree holds a merge of main in progress; it may finish or abandon that merge and nothing else
    allowed_tools: [
      TICKET_TOOL_PATTERN,
      ...READ_ONLY,
      'Edit',
      'Write',
      'Bash(git add:*)',
      'Bash(git commit:*)',
      'Bash(git merge --continue)',
      'Bash(git merge --abort)',
      'Bash(git status:*)',
      'Bash(git diff:*)',
    ],
    permission_mode: 'acceptEdits',
    timeout_minutes: 30,
    max_retries: 1,
    edits_working_tree: true,
  },
  {
    id: 'researcher',
    name: 'Researcher',
    description: 'Web research and summaries',
    model: 'haiku',
    // it only adds a report file of its own, never changes the project's files: runs side by side
    allowed_tools: [TICKET_TOOL_PATTERN, ...READ_ONLY, 'Write', 'WebFetch', 'WebSearch'],
    permission_mode: 'acceptEdits',
    timeout_minutes: 30,
    max_retries: 2,
    edits_working_tree: false,
  },
];

export interface ProjectTypeSeed {
  id: string;
  name: string;
  description: string;
  /** agent columns between `human` and `done` */
  agents: string[];
}

export const BUILTIN_PROJECT_TYPES: readonly ProjectTypeSeed[] = [
  {
    id: 'software-dev',
    name: 'Software development',
    description: 'Code, review, security review, merge',
    agents: ['coding-agent', 'code-reviewer', 'security-reviewer'],
  },
  { id: 'content', name: 'Content', description: 'Write and edit', agents: ['writer', 'editor'] },
  { id: 'vps-maintenance', name: 'VPS maintenance', description: 'Operate and audit a host', agents: ['sysadmin', 'security-auditor'] },
  { id: 'research', name: 'Research', description: 'Research and summarise', agents: ['researcher'] },
  { id: 'personal', name: 'Personal', description: 'A to-do board with no agents', agents: [] },
];

export function seed(db: Db, now = Date.now()): void {
  const insertAgent = db.prepare(
    `INSERT OR IGNORE INTO agent_types
       (id, name, description, model, allowed_tools, permission_mode, timeout_minutes, max_retries, edits_working_tree, builtin, created_at, updated_at)
     VALUES (@id, @name, @description, @model, @allowed_tools, @permission_mode, @timeout_minutes, @max_retries, @edits_working_tree, 1, @now, @now)`,
  );
  const insertType = db.prepare(`INSERT OR IGNORE INTO project_types (id, name, description, builtin, created_at) VALUES (?, ?, ?, 1, ?)`);
  const insertColumn = db.prepare(
    `INSERT OR IGNORE INTO project_type_columns (project_type_id, column_id, name, position, agent_type_id) VALUES (?, ?, ?, ?, ?)`,
  );
  db.transaction(() => {
    for (const a of BUILTIN_AGENT_TYPES) {
      insertAgent.run({ ...a, allowed_tools: JSON.stringify(a.allowed_tools), edits_working_tree: a.edits_working_tree ? 1 : 0, now });
    }
    for (const t of BUILTIN_PROJECT_TYPES) {
      // a type the user already has (and maybe edited) keeps its columns
      if (insertType.run(t.id, t.name, t.description, now).changes === 0) continue;
      const columns = [
        [HUMAN, 'Human', null],
        ...t.agents.map((a) => [a, BUILTIN_AGENT_TYPES.find((x) => x.id === a)!.name, a]),
        [DONE, 'Done', null],
      ];
      columns.forEach(([id, name, agent], i) => insertColumn.run(t.id, id, name, i, agent));
    }
  }).immediate();
}

/** Copies each default prompt that the user does not have yet; returns the files written. */
export function copyDefaultPrompts(promptsDir: string, sourceDir = defaultPromptsDir): string[] {
  fs.mkdirSync(promptsDir, { recursive: true });
  const written: string[] = [];
  for (const name of fs.readdirSync(sourceDir)) {
    if (!name.endsWith('.md')) continue;
    const target = path.join(promptsDir, name);
    try {
      fs.copyFileSync(path.join(sourceDir, name), target, fs.constants.COPYFILE_EXCL);
      written.push(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return written;
}
