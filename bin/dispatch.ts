#!/usr/bin/env node
// `dispatch`: the command line. Each command group lives in bin/commands/<group>.ts; every
// command except `daemon`, `runner` and the install family talks to the running daemon's HTTP API.
// Failures are one line on stderr and exit 1: usage errors from yargs (its multi-line messages
// folded), UserErrors from handlers. A reader that goes away (`dispatch runs list | head -1`)
// ends the command quietly, here once for every command.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from '../lib/errors.js';
import { packageVersion } from '../lib/paths.js';
import { backupCommand, restoreCommand } from './commands/backup.js';
import { installCommand, uninstallCommand, updateCommand } from './commands/install.js';
import { daemonCommands } from './commands/daemon.js';
import { terminalSafe } from './commands/output.js';
import { projectCommands } from './commands/projects.js';
import { inboxCommand, inboxOptions, ticketCommands } from './commands/tickets.js';
import { queueCommands, runCommands } from './commands/runs.js';
import { worktreeCommands } from './commands/worktrees.js';
import { pauseCommand, resumeCommand } from './commands/pause.js';
import { costsCommand } from './commands/costs.js';
import { runnerCommand } from './commands/runner.js';
import { runnerCommands } from './commands/runners.js';

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
    .command('projects', 'list, register, discover, set up, pause, resume and archive projects', projectCommands)
    .command('ticket', 'file, list, show, comment on and move tickets', ticketCommands)
    .command('runs', 'agent runs and their transcripts', runCommands)
    .command('worktrees', 'ticket worktrees and their disk use; prune finished ones', worktreeCommands)
    .command('queue', 'the durable job queues', queueCommands)
    .command('runners', 'runners that run agents on other machines: add, revoke, list', runnerCommands)
    .command(costsCommand)
    .command(runnerCommand)
    .command(pauseCommand)
    .command(resumeCommand)
    .command('inbox', 'what waits for you, across projects (--backlog: what you filed there)', inboxOptions, (argv) => inboxCommand(argv))
    .demandCommand(1, 'name a command')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      // yargs' own errors (YError, also what a failing `coerce` becomes) are usage errors; any
      // other error was thrown by a handler and goes to the catch below
      if (err && err.name !== 'YError') throw err;
      const text = terminalSafe((msg || err?.message || 'invalid command line').replace(/\s*\n\s*/g, ' ').trim(), { oneLine: true });
      process.stderr.write(`dispatch: ${text} (see "dispatch --help")\n`);
      process.exit(1);
    });
}

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

buildCli(hideBin(process.argv))
  .parseAsync()
  .catch((err: unknown) => {
    process.stderr.write(
      `dispatch: ${err instanceof UserError ? terminalSafe(err.message) : err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  });
