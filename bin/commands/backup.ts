// `dispatch backup` and `dispatch restore <file>`. The rule for backup: when the daemon runs, it
// takes the snapshot (POST /api/backups) on its own connection; when it does not, the CLI opens
// tasks.db itself. Restore only ever runs with the daemon stopped.
import fs from 'node:fs';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import type { BackupInfo } from '../../lib/backups.js';
import { liveDaemon } from '../../lib/pidfile.js';
import { api, localPaths } from './client.js';
import { printJson, say } from './output.js';

export const backupCommand: CommandModule<object, { json: boolean }> = {
  command: 'backup',
  describe: 'snapshot the database into backups/ now (keeps backups.keep newest)',
  handler: async (argv) => {
    const paths = localPaths();
    const result = liveDaemon(paths.pidFile)
      ? await api<{ backup: BackupInfo; removed: string[] }>('POST', '/api/backups', {})
      : await offlineBackup(paths);
    if (argv.json) return printJson(result);
    say(
      `backed up to ${result.backup.file} (${Math.ceil(result.backup.size / 1024)} KiB)${result.removed.length ? `; removed ${result.removed.length} old backup(s)` : ''}`,
    );
  },
};

/** The daemon is down: the CLI snapshots tasks.db itself (loaded here only, see bin/dispatch.ts). */
async function offlineBackup(paths: ReturnType<typeof localPaths>) {
  const [{ backupHome }, { ConfigStore }] = await Promise.all([import('../../lib/backups.js'), import('../../lib/config.js')]);
  return backupHome(paths, new ConfigStore(paths.config).get().backups.keep);
}

export const restoreCommand: CommandModule<object, { file: string }> = {
  command: 'restore <file>',
  describe: 'replace the database with a backup (the daemon must be stopped; the current one is kept)',
  builder: (y) =>
    y.positional('file', { type: 'string', demandOption: true, describe: 'a file in backups/ (a bare name is looked up there)' }),
  handler: async (argv) => {
    const paths = localPaths();
    const file = fs.existsSync(argv.file) ? path.resolve(argv.file) : path.join(paths.backups, argv.file);
    const { restoreDatabase } = await import('../../lib/backups.js');
    const { previous } = await restoreDatabase(paths, file);
    say(`restored ${paths.db} from ${file}`);
    if (previous) say(`the database it replaced is kept at ${previous}`);
    say('start the daemon with "dispatch daemon start"');
  },
};
