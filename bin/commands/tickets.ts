// `dispatch ticket new|list|show|comment|move|bulk|reopen|search` and `dispatch inbox`.
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { UserError } from '../../lib/errors.js';
import type { BulkResult, Comment, InboxItem, TicketView } from '../../lib/tickets.js';
import type { Run } from '../../lib/runs.js';
import type { SearchResult } from '../../lib/search.js';
import { api } from './client.js';
import { wholeNumber } from './options.js';
import { printJson, printTable, say, terminalSafe, when } from './output.js';

const enc = encodeURIComponent;

export function ticketCommands(y: Argv): Argv {
  return y
    .command(
      'new',
      'file a ticket',
      (c) =>
        c
          .option('project', { alias: 'p', type: 'string', demandOption: true, describe: 'project key, id or path' })
          .option('title', { alias: 't', type: 'string', demandOption: true })
          .option('body', { alias: 'b', type: 'string' })
          .option('body-file', { type: 'string', describe: 'read the body from a file (- for stdin)' })
          .option('column', { alias: 'c', type: 'string', default: 'human', describe: 'starting column, e.g. coding-agent' })
          .option('priority', { choices: ['low', 'normal', 'high', 'urgent'] as const, default: 'normal' as const })
          .option('tag', { type: 'array', string: true, describe: 'tags (repeatable)' })
          .conflicts('body', 'body-file'),
      async (argv) => {
        let body = argv.body;
        if (argv['body-file']) {
          try {
            body = fs.readFileSync(argv['body-file'] === '-' ? 0 : argv['body-file'], 'utf8');
          } catch (err) {
            throw new UserError(`cannot read --body-file: ${(err as Error).message}`);
          }
        }
        const { ticket } = await api<{ ticket: TicketView }>('POST', '/api/tickets', {
          project: argv.project,
          title: argv.title,
          body,
          column: argv.column,
          priority: argv.priority,
          tags: argv.tag,
        });
        if (argv.json) return printJson(ticket);
        say(`${ticket.key} filed in ${ticket.column_id}: ${terminalSafe(ticket.title, { oneLine: true })}`);
      },
    )
    .command(
      'list',
      'list tickets (newest first)',
      (c) =>
        c
          .option('project', { alias: 'p', type: 'string' })
          .option('column', { alias: 'c', type: 'string' })
          .option('limit', { type: 'number', default: 50, requiresArg: true, coerce: wholeNumber('limit') }),
      async (argv) => {
        const q = new URLSearchParams();
        if (argv.project) q.set('project', argv.project);
        if (argv.column) q.set('column', argv.column);
        q.set('limit', String(argv.limit));
        const { tickets } = await api<{ tickets: TicketView[] }>('GET', `/api/tickets?${q}`);
        if (argv.json) return printJson(tickets);
        printTable(
          tickets.map((t) => ({
            id: t.key,
            column: t.column_id,
            priority: t.priority,
            title: t.title,
            updated: when(t.updated_at),
            running: t.claimed_by_run ? 'yes' : '',
          })),
          ['id', 'column', 'priority', 'title', 'updated', 'running'],
        );
      },
    )
    .command(
      'show <id>',
      'a ticket with its history and runs',
      (c) => c.positional('id', { type: 'string', demandOption: true }),
      async (argv) => {
        const data = await api<{ ticket: TicketView; comments: Comment[]; runs: Run[] }>('GET', `/api/tickets/${enc(argv.id)}`);
        if (argv.json) return printJson(data);
        const { ticket: t, comments, runs } = data;
        say(
          `${t.key}  ${terminalSafe(t.title, { oneLine: true })}\ncolumn: ${t.column_id}   priority: ${t.priority}${t.tags.length ? `   tags: ${t.tags.join(', ')}` : ''}${t.branch ? `   branch: ${t.branch}` : ''}`,
        );
        say(`created ${when(t.created_at)} by ${t.created_by}${t.claimed_by_run ? `   running: ${t.claimed_by_run}` : ''}`);
        if (t.body) say(`\n${t.body}`);
        say('\nhistory:');
        for (const c of comments) say(`  ${when(c.created_at)}  ${describe(c)}`);
        if (runs.length) {
          say('\nruns:');
          for (const r of runs) {
            const cost = r.cost_usd != null ? `  $${r.cost_usd.toFixed(4)}` : '';
            say(
              `  ${r.id}  ${r.agent_type_id}  ${r.status}${r.exit_code != null ? ` (exit ${r.exit_code})` : ''}  ${when(r.started_at ?? r.created_at)}${cost}`,
            );
          }
        }
      },
    )
    .command(
      'comment <id> <text..>',
      'add a comment',
      (c) =>
        c
          .positional('id', { type: 'string', demandOption: true })
          .positional('text', { type: 'string', array: true, demandOption: true })
          .option('type', { choices: ['comment', 'journal', 'block', 'complete'] as const, default: 'comment' as const }),
      async (argv) => {
        const { comment } = await api<{ comment: Comment }>('POST', `/api/tickets/${enc(argv.id)}/comments`, {
          type: argv.type,
          body: (argv.text as string[]).join(' '),
        });
        if (argv.json) return printJson(comment);
        say(`commented on ${argv.id}`);
      },
    )
    .command(
      'move <id> <column>',
      'move a ticket to another column',
      (c) =>
        c
          .positional('id', { type: 'string', demandOption: true })
          .positional('column', { type: 'string', demandOption: true })
          .option('comment', { alias: 'm', type: 'string' }),
      async (argv) => {
        const result = await api<{ ticket: TicketView; from: string; to: string }>('POST', `/api/tickets/${enc(argv.id)}/move`, {
          column: argv.column,
          comment: argv.comment,
        });
        if (argv.json) return printJson(result);
        say(`${result.ticket.key}: ${result.from} → ${result.to}`);
      },
    )
    .command(
      'bulk <action> <ids..>',
      'move, set the priority of, or close several tickets at once (all or none)',
      (c) =>
        c
          .positional('action', { choices: ['move', 'priority', 'close'] as const, demandOption: true })
          .positional('ids', { type: 'string', array: true, demandOption: true })
          .option('column', { alias: 'c', type: 'string', describe: 'the column to move them to (move)' })
          .option('priority', { choices: ['low', 'normal', 'high', 'urgent'] as const, describe: 'their new priority (priority)' }),
      async (argv) => {
        const body = { keys: argv.ids, action: argv.action, column: argv.column, priority: argv.priority };
        const result = await api<BulkResult>('POST', '/api/tickets/bulk', body);
        if (argv.json) return printJson(result);
        const verb = { move: `moved to ${argv.column}`, priority: `set to ${argv.priority}`, close: 'closed' }[result.action];
        say(result.changed.length ? `${verb}: ${result.changed.join(' ')}` : `nothing to change`);
        if (result.unchanged.length) say(`already so: ${result.unchanged.join(' ')}`);
      },
    )
    .command(
      'reopen <id>',
      'bring a closed ticket back to its column',
      (c) => c.positional('id', { type: 'string', demandOption: true }),
      async (argv) => {
        const { ticket } = await api<{ ticket: TicketView }>('POST', `/api/tickets/${enc(argv.id)}/reopen`);
        if (argv.json) return printJson(ticket);
        say(`${ticket.key}: reopened in ${ticket.column_id}`);
      },
    )
    .command(
      'search <query..>',
      'find tickets by words in their title, description or history',
      (c) =>
        c
          .positional('query', {
            type: 'string',
            array: true,
            demandOption: true,
            describe: 'words, all of which must match; word* for a prefix; "a phrase" in quotes',
          })
          .option('project', { alias: 'p', type: 'string' })
          .option('column', { alias: 'c', type: 'string' })
          .option('limit', { type: 'number', default: 20 })
          .option('offset', { type: 'number', default: 0 }),
      async (argv) => {
        const q = new URLSearchParams({ q: (argv.query as string[]).join(' ') });
        if (argv.project) q.set('project', argv.project);
        if (argv.column) q.set('column', argv.column);
        q.set('limit', String(argv.limit));
        q.set('offset', String(argv.offset));
        const result = await api<SearchResult>('GET', `/api/search?${q}`);
        if (argv.json) return printJson(result);
        printSearch(result);
      },
    )
    .demandCommand(1, 'name a ticket command: new, list, show, comment, move, bulk, reopen or search');
}

/** `dispatch inbox`: what needs the person (or, with --backlog, what they filed into human themselves). */
export function inboxOptions(y: Argv): Argv<{ project?: string; priority?: string; backlog: boolean; limit: number }> {
  return y
    .option('project', { alias: 'p', type: 'string', describe: 'only this project (key, id or path)' })
    .option('priority', { choices: ['urgent', 'high', 'normal', 'low'] as const, describe: 'only this priority' })
    .option('backlog', { type: 'boolean', default: false, describe: 'the tickets you filed into human yourself' })
    .option('limit', { type: 'number', default: 50, requiresArg: true, coerce: wholeNumber('limit') });
}

interface InboxArgs {
  json?: boolean;
  project?: string;
  priority?: string;
  backlog?: boolean;
  limit?: number;
}

export async function inboxCommand(argv: InboxArgs): Promise<void> {
  const q = new URLSearchParams({ limit: String(argv.limit ?? 50) });
  if (argv.backlog) q.set('tab', 'backlog');
  if (argv.project) q.set('project', argv.project);
  if (argv.priority) q.set('priority', argv.priority);
  const { tickets, total } = await api<{ tickets: InboxItem[]; total: number }>('GET', `/api/inbox?${q}`);
  if (argv.json) return printJson(tickets);
  const filtered = Boolean(argv.project || argv.priority);
  if (tickets.length === 0) {
    return void say(filtered ? 'nothing matches the filter' : argv.backlog ? 'no backlog' : 'inbox zero: nothing is waiting for you');
  }
  printTable(
    tickets.map((t) => ({
      id: t.key,
      project: t.project_name,
      priority: t.priority,
      title: t.title,
      by: t.parked_by ?? '',
      note: t.note,
      since: when(t.column_entered_at),
    })),
    ['id', 'project', 'priority', 'title', 'by', 'note', 'since'],
  );
  if (total > tickets.length) say(`${tickets.length} of ${total} shown; --limit shows more`);
}

function printSearch(r: SearchResult): void {
  const shown = r.hits.length && r.total > r.hits.length ? `, showing ${r.offset + 1}-${r.offset + r.hits.length}` : '';
  const order = r.order === 'newest' ? ' (newest first: too many to rank)' : '';
  console.log(`${r.total} ticket${r.total === 1 ? '' : 's'} found${shown}${order}`);
  // matches in bold on a terminal; plain text anywhere else
  const bold = process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[22m` : (s: string) => s;
  // ticket text may come from an agent: no control character reaches the terminal
  const clean = (s: string) => s.replace(/[\p{Cc}]/gu, ' ');
  for (const h of r.hits) {
    console.log(`\n${h.key}  ${h.column_id}${h.priority !== 'normal' ? `  ${h.priority}` : ''}  ${clean(h.title)}`);
    if (h.snippet) console.log(`    ${h.snippet_parts.map((p) => (p.match ? bold(clean(p.text)) : clean(p.text))).join('')}`);
  }
}

function describe(c: Comment): string {
  switch (c.type) {
    case 'move':
      return `${c.author} moved ${c.from_column ?? '(new)'} → ${c.to_column}${c.body && c.body !== 'created' ? `: ${c.body}` : c.body === 'created' ? ' (created)' : ''}`;
    case 'finding':
      return `${c.author} finding [${c.severity}] ${c.title}${c.body ? `: ${c.body}` : ''}`;
    default:
      return `${c.author} ${c.type}: ${c.body}`;
  }
}
