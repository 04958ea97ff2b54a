// `dispatch projects list|register|discover|set`.
import path from 'node:path';
import type { Argv } from 'yargs';
import type { Project } from '../../lib/projects.js';
import { UserError } from '../../lib/errors.js';
import { api } from './client.js';
import { printJson, printTable } from './output.js';

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
      'register <path>',
      'register a folder as a project',
      (c) =>
        c
          .positional('path', { type: 'string', demandOption: true })
          .option('type', { type: 'string', demandOption: true, describe: 'software-dev, content, vps-maintenance, research, personal, or your own' })
          .option('abbreviation', { alias: 'key', type: 'string', describe: 'short ticket prefix, e.g. pd' })
          .option('name', { type: 'string' })
          .option('main-branch', { type: 'string', describe: 'branch ticket work merges into (detected when omitted)' }),
      async (argv) => {
        const { project } = await api<{ project: Project }>('POST', '/api/projects', {
          path: path.resolve(argv.path),
          type: argv.type,
          abbreviation: argv.abbreviation,
          name: argv.name,
          main_branch: argv['main-branch'],
        });
        if (argv.json) return printJson(project);
        console.log(`registered ${project.name} as ${project.abbreviation} (${project.project_type_id}): tickets read ${project.abbreviation}-1, ${project.abbreviation}-2, …`);
      },
    )
    .command('discover', 'find new folders under the projects root', {}, async (argv) => {
      const result = await api<{ added: string[]; missing: string[]; returned: string[] }>('POST', '/api/projects/discover', {});
      if (argv.json) return printJson(result);
      console.log(`${result.added.length} new, ${result.missing.length} missing, ${result.returned.length} returned`);
      for (const p of result.added) console.log(`  new: ${p}`);
      for (const p of result.missing) console.log(`  missing: ${p}`);
      for (const p of result.returned) console.log(`  returned: ${p}`);
    })
    .command(
      'set <project>',
      "change a project's settings",
      (c) =>
        c
          .positional('project', { type: 'string', demandOption: true, describe: 'abbreviation, id or name' })
          .option('budget', { type: 'string', describe: 'daily budget in USD; 0 or "none" removes it' }),
      async (argv) => {
        if (argv.budget === undefined) throw new UserError('name a setting to change: --budget <usd>');
        const body = { daily_budget_usd: argv.budget };
        const { project } = await api<{ project: Project }>('PATCH', `/api/projects/${encodeURIComponent(argv.project)}`, body);
        if (argv.json) return printJson(project);
        const budget = project.daily_budget_usd;
        const what = budget === null ? 'removed (the global budgets.daily_usd still applies)' : `$${budget.toFixed(2)}`;
        console.log(`${project.abbreviation}: daily budget ${what}`);
      },
    )
    .demandCommand(1, 'name a projects command: list, register, discover or set');
}
