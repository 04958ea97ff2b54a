// `dispatch install | uninstall [--yes] [--keep-data] | update`: thin wrappers over lib/install.ts
// and lib/update.ts. Uninstall decides about the data home before touching anything, so a refusal
// leaves everything as it was.
import fs from 'node:fs';
import readline from 'node:readline/promises';
import type { CommandModule } from 'yargs';
import { packageRoot, packageVersion } from '../../lib/paths.js';
import { UserError } from '../../lib/errors.js';
import { localPaths } from './client.js';
import { wholeNumber } from './options.js';
import { say, waitingIndicator } from './output.js';

export const installCommand: CommandModule<object, { start: boolean; open: boolean; timeout: number }> = {
  command: 'install',
  describe: 'set up the data home and the service, start the daemon, open the UI (safe to run again)',
  builder: (y) =>
    y
      .option('start', { type: 'boolean', default: true, describe: 'start the daemon (--no-start only prepares files)' })
      .option('open', { type: 'boolean', default: true, describe: 'open the UI in a browser when one is available' })
      .option('timeout', {
        type: 'number',
        default: 30,
        requiresArg: true,
        coerce: wholeNumber('timeout'),
        describe: 'seconds to wait for the daemon to answer',
      }),
  handler: async (argv) => {
    const waiting = waitingIndicator('waiting for the daemon to answer /api/health');
    const { install } = await import('../../lib/install.js');
    await install({
      paths: localPaths(),
      start: argv.start,
      open: argv.open,
      timeoutMs: argv.timeout * 1000,
      ui: {
        say: (line) => {
          waiting.done();
          say(line);
        },
        warn: (line) => {
          waiting.done();
          process.stderr.write(`warning: ${line}\n`);
        },
        waiting: (ms) => waiting.tick(ms),
      },
    }).finally(() => waiting.done());
  },
};

/** Asks a yes/no question on the terminal; only "y" or "yes" is a yes. */
export async function confirm(question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export const uninstallCommand: CommandModule<object, { yes: boolean; 'keep-data': boolean }> = {
  command: 'uninstall',
  describe: 'stop and remove the service; asks before deleting the data home',
  builder: (y) =>
    y
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'also delete the data home without asking' })
      .option('keep-data', { type: 'boolean', default: false, describe: 'keep the data home (tickets, prompts, config, backups)' }),
  handler: async (argv) => {
    const paths = localPaths();
    if (argv.yes && argv['keep-data']) throw new UserError('--yes deletes the data home and --keep-data keeps it: pick one');
    let deleteData = false;
    if (argv['keep-data'] || !fs.existsSync(paths.home)) deleteData = false;
    else if (argv.yes) deleteData = true;
    else if (process.stdin.isTTY && process.stdout.isTTY) {
      deleteData = await confirm(
        `Delete all Project Dispatcher data in ${paths.home} (tickets, history, prompts, config, backups)? [y/N] `,
      );
    } else {
      throw new UserError(
        `not deleting ${paths.home} without confirmation: run "dispatch uninstall --yes" to delete it, or "dispatch uninstall --keep-data" to keep it`,
      );
    }
    const { uninstall } = await import('../../lib/install.js');
    await uninstall({ paths, deleteData, ui: { say, warn: (line) => process.stderr.write(`warning: ${line}\n`) } });
  },
};

export const updateCommand: CommandModule = {
  command: 'update',
  describe: "is there a newer release? (compares with the version tags of this checkout's git remote)",
  handler: async () => {
    const { checkForUpdate } = await import('../../lib/update.js');
    const check = await checkForUpdate(packageVersion(), packageRoot);
    if (!check.source) {
      say(
        `projectdispatcher ${check.current} at ${packageRoot} is not a git checkout, so it has no release source to compare with. ` +
          'To upgrade, install the newer version the way this one was installed (README, "Quick start").',
      );
    } else if (check.latest === null) {
      say(`projectdispatcher ${check.current}: ${check.source.url} (remote "${check.source.remote}") has no release tags (v1.2.3) yet`);
    } else if (!check.newer) {
      say(`projectdispatcher ${check.current} is up to date (latest release: ${check.latest} on ${check.source.url})`);
    } else {
      const { latest, current, source, command } = check;
      say(`projectdispatcher ${latest} is available on ${source.url} (installed: ${current}). Upgrade with:\n  ${command}`);
    }
  },
};
