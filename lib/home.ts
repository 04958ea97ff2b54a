// Preparing a data home: folders, migrated and seeded database, default prompts that are
// missing, and a default config.json when there is none. Idempotent; used by the daemon's start
// and by `dispatch install`. It never overwrites a user's prompt or config.
import fs from 'node:fs';
import { defaultConfig, writeJsonAtomic } from './config.js';
import { openDb, type Db } from './db/connection.js';
import { migrate } from './db/migrations.js';
import { copyDefaultPrompts, seed } from './seed.js';
import type { Paths } from './paths.js';

export interface PreparedHome {
  db: Db;
  migrated: number[];
  promptsWritten: string[];
  configWritten: boolean;
}

export function prepareHome(paths: Paths): PreparedHome {
  for (const dir of [paths.home, paths.prompts, paths.runs, paths.logs, paths.backups, paths.worktrees])
    fs.mkdirSync(dir, { recursive: true });
  let configWritten = false;
  if (!fs.existsSync(paths.config)) {
    const { projects_root, ...rest } = defaultConfig();
    writeJsonAtomic(paths.config, { projects_root, ...rest });
    configWritten = true;
  }
  const db = openDb(paths.db);
  const migrated = migrate(db);
  seed(db);
  const promptsWritten = copyDefaultPrompts(paths.prompts);
  return { db, migrated, promptsWritten, configWritten };
}
