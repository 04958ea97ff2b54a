// `dispatch runners add|revoke|list`: the runners that run agents for this daemon (docs/RUNNERS.md).
// A runner's token is printed once, by `add`, with the command line that starts the runner.
import fs from 'node:fs';
import os from 'node:os';
import type { Argv } from 'yargs';
import type { RunnerListItem, Runner } from '../../lib/runners.js';
import { api, daemonTarget } from './client.js';
import { printJson, printTable, say } from './output.js';

/** The daemon's URL as another machine names it: its `listen` address, or this machine's name when that is loopback or all. */
function daemonUrl(): string {
  const target = daemonTarget();
  const port = new URL(target.baseUrl).port;
  let listen = '127.0.0.1';
  try {
    const config = JSON.parse(fs.readFileSync(target.paths.config, 'utf8')) as { listen?: unknown };
    if (typeof config.listen === 'string') listen = config.listen;
  } catch {
    // no config file: the default
  }
  const everywhere = ['0.0.0.0', '::', '127.0.0.1', 'localhost', '::1'].includes(listen) || listen.startsWith('127.');
  const host = everywhere ? os.hostname() : listen.includes(':') ? `[${listen}]` : listen;
  return `http://${host}:${port}`;
}

const ago = (ms: number | null) => {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : new Date(ms).toISOString().replace('T', ' ').slice(0, 16);
};

export function runnerCommands(y: Argv): Argv {
  return y
    .command(
      'add <name>',
      'add a runner and print its token (shown once) with the command that starts it',
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true, describe: 'a name for the runner, e.g. the machine it runs on' })
          .option('slots', { type: 'string', describe: 'the most agents it may run at once (default 2)' }),
      async (argv) => {
        const res = await api<{ runner: Runner; token: string }>('POST', '/api/runners', { name: argv.name, slots: argv.slots });
        if (argv.json) return printJson(res);
        say(`added runner ${res.runner.name} (${res.runner.slots} slots). Its token is shown this once:`);
        say(`  ${res.token}`);
        say('Start it on the machine that runs the agents (the daemon must listen on an address that machine reaches):');
        say(`  dispatch runner --daemon ${daemonUrl()} --token ${res.token}`);
      },
    )
    .command(
      'revoke <name>',
      "end a runner's token now: its calls are refused and its live runs end at their lease",
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (argv) => {
        const res = await api<{ runner: Runner }>('POST', `/api/runners/${encodeURIComponent(argv.name)}/revoke`, {});
        if (argv.json) return printJson(res.runner);
        say(`revoked runner ${res.runner.name}: its token no longer works`);
      },
    )
    .command('list', 'the runners: slots, live runs, last seen', {}, async (argv) => {
      const { runners } = await api<{ runners: RunnerListItem[] }>('GET', '/api/runners');
      if (argv.json) return printJson(runners);
      printTable(
        runners.map((r) => ({
          name: r.name,
          slots: r.slots,
          live: r.live_runs,
          'last seen': ago(r.last_seen_at),
          host: r.host ?? '',
          state: r.revoked_at === null ? 'active' : 'revoked',
        })),
        ['name', 'slots', 'live', 'last seen', 'host', 'state'],
      );
    })
    .demandCommand(1, 'name a runners command: add, revoke or list');
}
