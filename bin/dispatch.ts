#!/usr/bin/env node
// `dispatch`: the command line. Each command group lives in bin/commands/<group>.ts; every
// command except `daemon` and the install family talks to the running daemon's HTTP API.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from '../lib/errors.js';
import { packageVersion } from '../lib/paths.js';
import { backupCommand, restoreCommand } from './commands/backup.js';
import { installCommand, uninstallCommand, updateCommand } from './commands/install.js';
import { daemonCommands } from './commands/daemon.js';
import { projectCommands } from './commands/projects.js';
import { inboxCommand, ticketCommands } from './commands/tickets.js';
import { queueCommands, runCommands } from './commands/runs.js';
import { costsCommand } from './commands/costs.js';

export function buildCli(argv: string[]) {
  return yargs(argv)
    .scriptName('dispatch')
    .usage('$0 <command>\n\nProject Dispatcher: AI coding agents managed through tickets.')
    .version(packageVersion())
    .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
    .command(installCommand)
    .command(uninstallCommand)
    .command(updateCommand)
    .command(backupCommand)
    .command(restoreCommand)
    .command('daemon', 'start, stop and inspect the daemon', daemonCommands)
    .command('projects', 'list, register, discover and set up projects', projectCommands)
    .command('ticket', 'file, list, show, comment on and move tickets', ticketCommands)
    .command('runs', 'agent runs and their transcripts', runCommands)
    .command('queue', 'the durable job queues', queueCommands)
    .command(costsCommand)
    .command('inbox', 'every ticket waiting for you, across projects', {}, (argv) => inboxCommand({ json: Boolean(argv.json) }))
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`dispatch: ${msg}\n(run "dispatch --help" for usage)\n`);
      process.exit(1);
    });
}

buildCli(hideBin(process.argv))
  .parseAsync()
  .catch((err: unknown) => {
    process.stderr.write(`dispatch: ${err instanceof UserError ? err.message : err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
