// The data home: every file the daemon owns lives under one folder, `DISPATCH_HOME`
// or `~/Development/.tasks`. Nothing else in the code builds these paths.
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from './packageRoot.js';
import { resolveHome } from './ticketRules.js';

export { packageRoot };

export interface Paths {
  home: string;
  db: string;
  config: string;
  prompts: string;
  runs: string;
  /** each check run's output (lib/checks.ts) */
  checks: string;
  logs: string;
  backups: string;
  worktrees: string;
  pidFile: string;
}

/** DISPATCH_HOME or ~/Development/.tasks: the rule bin/ticket.cjs follows too (lib/shared/ticketRules.cjs). */
export { resolveHome };

export function pathsFor(home: string): Paths {
  return {
    home,
    db: path.join(home, 'tasks.db'),
    config: path.join(home, 'config.json'),
    prompts: path.join(home, 'prompts'),
    runs: path.join(home, 'artifacts', 'runs'),
    checks: path.join(home, 'artifacts', 'checks'),
    logs: path.join(home, 'logs'),
    backups: path.join(home, 'backups'),
    worktrees: path.join(home, 'worktrees'),
    pidFile: path.join(home, 'daemon.pid'),
  };
}

/** The installed package's version. Kept here, not in daemon/daemon.ts, so the CLI does not load the whole daemon to print it. */
export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

export const ticketBin = path.join(packageRoot, 'bin', 'ticket.cjs');
/** Put first on every agent's PATH: holds the `ticket` command agents are allowed to run. */
export const agentPathDir = path.join(packageRoot, 'bin', 'agent-path');
export const defaultPromptsDir = path.join(packageRoot, 'prompts');
export const viewsDir = path.join(packageRoot, 'views');
export const publicDir = path.join(packageRoot, 'web', 'public');
