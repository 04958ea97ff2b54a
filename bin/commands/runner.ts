// `dispatch runner`: this machine runs agents for a daemon (lib/runner/, docs/RUNNERS.md). The
// token comes from --token or DISPATCH_RUNNER_TOKEN (which keeps it out of `ps`). One line per
// event on stdout; SIGTERM/SIGINT stop taking work and let the agents finish, a second one kills them.
import os from 'node:os';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { UserError } from '../../lib/errors.js';
import { Runner, type RunnerLog } from '../../lib/runner/runner.js';
import { wholeNumber } from './options.js';

/** `2026-01-02T03:04:05.678Z event key=value ...`, one line whatever the values hold. */
const logLine: RunnerLog = (event, fields = {}) => {
  const parts = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${/^[\w./:@+-]*$/.test(text) && text !== '' ? text : JSON.stringify(text)}`;
    });
  process.stdout.write(`${new Date().toISOString()} ${event}${parts.length ? ' ' + parts.join(' ') : ''}\n`);
};

interface RunnerArgs {
  daemon: string;
  token?: string;
  slots: number;
  name?: string;
  dir?: string;
}

export const runnerCommand: CommandModule<object, RunnerArgs> = {
  command: 'runner',
  describe: 'run agents for a daemon on this machine (a runner; its token from --token or DISPATCH_RUNNER_TOKEN)',
  builder: (y) =>
    y
      .option('daemon', { type: 'string', demandOption: true, describe: "the daemon's address, e.g. http://build-host:5757" })
      .option('token', { type: 'string', describe: 'the runner token (`dispatch runners add`); better: DISPATCH_RUNNER_TOKEN' })
      .option('slots', { type: 'number', default: 1, coerce: wholeNumber('slots'), describe: 'how many agents run at once' })
      .option('name', { type: 'string', describe: "the runner's name: refuse a token made for another runner" })
      .option('dir', { type: 'string', describe: 'where clones, worktrees and run state live (default ~/.dispatch-runner)' }) as never,
  handler: async (argv) => {
    const token = argv.token ?? process.env.DISPATCH_RUNNER_TOKEN;
    if (!token) throw new UserError('no runner token: pass --token or set DISPATCH_RUNNER_TOKEN');
    let url: URL;
    try {
      url = new URL(argv.daemon);
    } catch {
      throw new UserError(`--daemon is not a URL: ${argv.daemon}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserError(`--daemon must be an http or https URL: ${argv.daemon}`);
    const dir = path.resolve(argv.dir ?? path.join(os.homedir(), '.dispatch-runner'));
    const runner = new Runner({
      daemonUrl: url.href.replace(/\/+$/, ''),
      token,
      slots: argv.slots,
      name: argv.name,
      dir,
      env: process.env,
      log: logLine,
    });
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => runner.stop(signal));
    process.exitCode = await runner.run();
  },
};
