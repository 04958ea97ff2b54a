// `dispatch projects list|register|discover|set|pause|resume|archive`.
import path from 'node:path';
import type { Argv } from 'yargs';
import type { Project } from '../../lib/projects.js';
import type { WorkspaceMode } from '../../lib/workspace.js';
import { UserError } from '../../lib/errors.js';
import { archiveQuestion } from '../../lib/pausing.js';
import { api } from './client.js';
import { confirm } from './install.js';
import { printJson, printTable, say } from './output.js';

export function projectCommands(y: Argv): Argv {
  return y
    .command('list', 'every project and its status', {}, async (argv) => {
      const { projects } = await api<{ projects: Project[] }>('GET', '/api/projects');
      if (argv.json) return printJson(projects);
      printTable(
        projects.map((p) => ({ key: p.abbreviation ?? '', name: p.name, type: p.project_type_id ?? '', status: p.status, path: p.path })),
        ['key', 'name', 'type', 'status', 'path'],
      );
    })
    .command(
      'register <folder>',
      'register a folder as a project: a discovered folder by its name, or any folder by its path',
      (c) =>
        c
          .positional('folder', { type: 'string', demandOption: true, describe: 'name of a discovered folder, or a path' })
          .option('type', { type: 'string', describe: 'software-dev, content, vps-maintenance, research, personal, or your own' })
          .option('abbreviation', { alias: 'key', type: 'string', describe: 'short ticket prefix, e.g. pd' })
          .option('name', { type: 'string' })
          .option('main-branch', { type: 'string', describe: 'branch ticket work merges into (detected when omitted)' }),
      async (argv) => {
        if (!argv.type) {
          const { project_types } = await api<{ project_types: { id: string }[] }>('GET', '/api/project-types');
          throw new UserError(`--type is required: one of ${project_types.map((t) => t.id).join(', ')}`);
        }
        const { project } = await api<{ project: Project }>('POST', '/api/projects', {
          path: await folderPath(argv.folder),
          type: argv.type,
          abbreviation: argv.abbreviation,
          name: argv.name,
          main_branch: argv['main-branch'],
        });
        if (argv.json) return printJson(project);
        say(
          `registered ${project.name} as ${project.abbreviation} (${project.project_type_id}): tickets read ${project.abbreviation}-1, ${project.abbreviation}-2, …`,
        );
      },
    )
    .command('discover', 'find new folders under the projects root', {}, async (argv) => {
      const result = await api<{ added: string[]; missing: string[]; returned: string[] }>('POST', '/api/projects/discover', {});
      if (argv.json) return printJson(result);
      say(`${result.added.length} new, ${result.missing.length} missing, ${result.returned.length} returned`);
      for (const p of result.added) say(`  new: ${p}`);
      for (const p of result.missing) say(`  missing: ${p}`);
      for (const p of result.returned) say(`  returned: ${p}`);
    })
    .command(
      'set <project>',
      "change a project's settings",
      (c) =>
        c
          .positional('project', { type: 'string', demandOption: true, describe: 'abbreviation, id or name' })
          .option('budget', { type: 'string', describe: 'daily budget in USD; 0 or "none" removes it' })
          .option('parallel-coding', {
            type: 'string',
            choices: ['on', 'off', 'default'],
            describe:
              'on: each ticket on its own branch and worktree; off: agents work in the folder itself; default: agents.parallel_coding',
          })
          .option('check', {
            type: 'string',
            describe: 'command that must pass on a branch (main merged in) before it lands on main; "" removes it',
          })
          .option('check-timeout', {
            type: 'string',
            describe: 'minutes the check may take before it is killed and counts as failed (1-1440)',
          })
          .option('setup', { type: 'string', describe: 'command run once in each new ticket worktree, e.g. "npm ci"; "" removes it' })
          .option('copy-files', {
            type: 'string',
            describe: 'comma-separated files copied from the project folder into each new worktree, e.g. ".env,.env.local"',
          })
          .option('mute', { type: 'boolean', describe: 'no notifications for this project (--no-mute sends them again)' })
          .option('remote', { type: 'string', describe: 'a git URL this machine and the runners push to and fetch from; "" removes it' })
          .option('runs-on', {
            type: 'string',
            choices: ['local', 'runners'],
            describe: 'local: agents run on this machine; runners: on runners (needs --remote)',
          }),
      async (argv) => {
        const parallel = argv['parallel-coding'];
        const mute = argv.mute;
        const merging = {
          ...(argv.check !== undefined && { check_command: argv.check }),
          ...(argv['check-timeout'] !== undefined && { check_timeout_minutes: argv['check-timeout'] }),
          ...(argv.setup !== undefined && { setup_command: argv.setup }),
          ...(argv['copy-files'] !== undefined && { copy_files: argv['copy-files'] }),
        };
        const runners = {
          ...(argv.remote !== undefined && { remote_url: argv.remote }),
          ...(argv['runs-on'] !== undefined && { runs_on: argv['runs-on'] }),
        };
        const none = Object.keys(merging).length === 0 && Object.keys(runners).length === 0;
        if (argv.budget === undefined && parallel === undefined && mute === undefined && none) {
          throw new UserError(
            'name a setting to change: --budget <usd>, --parallel-coding on|off|default, --check "<command>", ' +
              '--check-timeout <minutes>, --setup "<command>", --copy-files <files>, --remote <git-url>, --runs-on local|runners, ' +
              'or --mute / --no-mute',
          );
        }
        const body = {
          ...(argv.budget !== undefined && { daily_budget_usd: argv.budget }),
          ...(parallel !== undefined && { parallel_coding: parallel }),
          ...(mute !== undefined && { notifications_muted: mute }),
          ...merging,
          ...runners,
        };
        const res = await api<{ project: Project; workspace: WorkspaceMode }>('PATCH', `/api/projects/${enc(argv.project)}`, body);
        const { project, workspace } = res;
        if (argv.json) return printJson(project);
        if (argv.budget !== undefined) {
          const budget = project.daily_budget_usd;
          const what = budget === null ? 'removed (the global budgets.daily_usd still applies)' : `$${budget.toFixed(2)}`;
          say(`${project.abbreviation}: daily budget ${what}`);
        }
        if (argv.check !== undefined || argv['check-timeout'] !== undefined) {
          const check = project.check_command;
          const what = check
            ? `check "${check}", timeout ${project.check_timeout_minutes} min: branches land on main only when it passes`
            : 'no check: done branches merge untested';
          say(`${project.abbreviation}: ${what}`);
        }
        if (argv.setup !== undefined || argv['copy-files'] !== undefined) {
          const files = JSON.parse(project.copy_files) as string[];
          const setup = project.setup_command ? `setup "${project.setup_command}"` : 'no setup command';
          say(`${project.abbreviation}: new worktrees get ${files.length ? files.join(', ') : 'no copied files'} and ${setup}`);
        }
        if (parallel !== undefined) {
          const from = workspace.from === 'default' ? 'the default, agents.parallel_coding' : "this project's own setting";
          say(`${project.abbreviation}: parallel coding ${workspace.parallel_coding ? 'on' : 'off'} (${from}): ${workspace.summary}`);
        }
        if (mute !== undefined) say(`${project.abbreviation}: notifications ${project.notifications_muted ? 'muted' : 'on'}`);
        if (Object.keys(runners).length > 0) {
          const where = project.runs_on === 'runners' ? 'agents run on runners' : 'agents run on this machine';
          say(`${project.abbreviation}: ${where}; remote ${project.remote_url ?? 'none'}`);
        }
      },
    )
    .command(
      'pause <project>',
      'no new agent runs on the project; --stop-running also stops its running agents (their tickets stay in their columns)',
      (c) =>
        c
          .positional('project', { type: 'string', demandOption: true })
          .option('stop-running', { type: 'boolean', default: false, describe: 'also stop the running agents' }),
      async (argv) => {
        const stopRunning = argv['stop-running'];
        const res = await api<{ project: Project; stopped: number }>('POST', `/api/projects/${enc(argv.project)}/pause`, {
          stop_running: stopRunning,
        });
        if (argv.json) return printJson(res);
        say(`paused ${res.project.abbreviation}${stopRunning ? `; stopped ${agents(res.stopped)}` : '; running agents finish their work'}`);
      },
    )
    .command(
      'resume <project>',
      'agents run on the project again (also restores an archived one)',
      (c) => c.positional('project', { type: 'string', demandOption: true }),
      async (argv) => {
        const res = await api<{ project: Project }>('POST', `/api/projects/${enc(argv.project)}/resume`, {});
        if (argv.json) return printJson(res);
        say(`resumed ${res.project.abbreviation}`);
      },
    )
    .command(
      'archive <project>',
      'archive the project: its running agents are stopped and its tickets become read-only; asks first',
      (c) =>
        c
          .positional('project', { type: 'string', demandOption: true })
          .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask' }),
      async (argv) => {
        const shown = await api<{ project: Project; running: number }>('GET', `/api/projects/${enc(argv.project)}`);
        if (!argv.yes) {
          const question = archiveQuestion(shown.project.name, shown.running);
          if (!process.stdin.isTTY || !process.stdout.isTTY) {
            throw new UserError(`${question} Not archived without confirmation: run "dispatch projects archive ${argv.project} --yes"`);
          }
          if (!(await confirm(`${question} [y/N] `))) {
            say('not archived');
            return;
          }
        }
        const res = await api<{ project: Project; stopped: number }>('POST', `/api/projects/${enc(argv.project)}/archive`, {});
        if (argv.json) return printJson(res);
        say(`archived ${res.project.abbreviation}; stopped ${agents(res.stopped)}`);
      },
    )
    .demandCommand(1, 'name a projects command: list, register, discover, set, pause, resume or archive');
}

const enc = encodeURIComponent;
const agents = (n: number) => `${n} running agent${n === 1 ? '' : 's'}`;

/**
 * The folder `register` means: a discovered, not yet registered folder of that name (as `projects
 * list` shows it) when there is one, else the argument as a path from the current directory.
 */
async function folderPath(folder: string): Promise<string> {
  if (!/[/\\]/.test(folder) && folder !== '.' && folder !== '..') {
    const { projects } = await api<{ projects: Project[] }>('GET', '/api/projects?status=unregistered');
    const found = projects.filter((p) => p.name === folder || path.basename(p.path) === folder);
    if (found.length === 1) return found[0]!.path;
    if (found.length > 1) {
      throw new UserError(`several discovered folders are named "${folder}": ${found.map((p) => p.path).join(', ')}; give the path`);
    }
  }
  return path.resolve(folder);
}
