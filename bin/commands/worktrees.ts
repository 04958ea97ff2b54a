// `dispatch worktrees list|prune`: the ticket worktrees and spare ones under the data home and their disk use;
// prune removes those of merged, archived or deleted tickets (never one with uncommitted files), and
// half-made spares and those of archived projects.
import type { Argv } from 'yargs';
import { formatBytes, type WorktreeInfo } from '../../lib/workspace.js';
import { api } from './client.js';
import { printJson, printTable, say } from './output.js';

function table(worktrees: WorktreeInfo[]): void {
  printTable(
    worktrees.map((w) => ({
      project: w.project,
      ticket: w.spare ? '(spare)' : (w.ticket ?? '(deleted)'),
      column: w.column ?? '',
      size: formatBytes(w.bytes),
      path: w.path,
    })),
    ['project', 'ticket', 'column', 'size', 'path'],
  );
  const total = worktrees.reduce((n, w) => n + (w.bytes ?? 0), 0);
  say(`${worktrees.length} worktree${worktrees.length === 1 ? '' : 's'}, ${formatBytes(total)}`);
}

export function worktreeCommands(y: Argv): Argv {
  return y
    .command('list', 'every ticket worktree and spare worktree, and its disk use', {}, async (argv) => {
      const { worktrees } = await api<{ worktrees: WorktreeInfo[] }>('GET', '/api/worktrees');
      if (argv.json) return printJson(worktrees);
      table(worktrees);
    })
    .command(
      'prune',
      'remove the worktrees of merged, archived and deleted tickets (ones with uncommitted files stay) and unused spares',
      {},
      async (argv) => {
        const res = await api<{ removed: WorktreeInfo[]; worktrees: WorktreeInfo[] }>('POST', '/api/worktrees/prune', {});
        if (argv.json) return printJson(res);
        for (const w of res.removed) say(`removed ${w.path} (${w.ticket ?? 'deleted ticket'}, ${formatBytes(w.bytes)})`);
        say(`${res.removed.length} removed; ${res.worktrees.length} left`);
      },
    )
    .demandCommand(1, 'name a worktrees command: list or prune');
}
