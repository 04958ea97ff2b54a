// /tickets/<abbr-N>: the ticket with its rendered body, thread, findings (critical first), runs
// and, when it has a branch, the branch diff against main; reply, move, close/reopen and edit forms.
// Every form posts here and redirects back (PRG). The diff is rendered capped (DIFF_LINES lines of at most
// DIFF_LINE_CHARS characters) and the page says when it is.
import { Router, type Response } from 'express';
import { ticketMergeStatus } from '../../../lib/checks.js';
import { renderMarkdown } from '../../../lib/markdown.js';
import { DIFF_PATCH_LIMIT_BYTES, ticketDiff } from '../../../lib/merge.js';
import { GitError } from '../../../lib/git.js';
import { UserError } from '../../../lib/errors.js';
import { getColumns, getProject } from '../../../lib/projects.js';
import { listRunsForTicket, LIVE_STATUSES } from '../../../lib/runs.js';
import {
  addComment,
  closeTicket,
  getMergeRecord,
  getThread,
  moveTicket,
  PRIORITIES,
  reopenTicket,
  requireTicket,
  SEVERITIES,
  toView,
  updateTicket,
} from '../../../lib/tickets.js';
import { HUMAN } from '../../../lib/columns.js';
import { formValues, optional, required, returnPath, submit, withNotice, type FormError, type FormValues } from './form.js';
import type { AppContext } from '../../context.js';
import type { Store } from '../../../lib/store.js';

const DIFF_LINES = 2000;
const DIFF_LINE_CHARS = 400;

export function ticketPages(ctx: AppContext): Router {
  const r = Router();
  const { store } = ctx;
  const db = store.db;

  async function render(res: Response, key: string, error: FormError | null = null, values: FormValues = {}): Promise<void> {
    const ticket = toView(requireTicket(db, key));
    const diff = ticket.branch ? await diffView(store, ticket.id, ticket.branch) : null;
    const columns = getColumns(db, ticket.project_id);
    const names = new Map(columns.map((c) => [c.column_id, c.name]));
    const thread = getThread(db, ticket.id).map((c) => ({
      id: c.id,
      type: c.type,
      author: c.author,
      at: c.created_at,
      // a creation is recorded as a move from nowhere whose body is just "created"
      html: c.body && !(c.type === 'move' && c.from_column === null && c.body === 'created') ? renderMarkdown(c.body) : '',
      severity: c.severity,
      title: c.title,
      from: c.from_column,
      to: c.to_column,
    }));
    const findings = thread
      .filter((c) => c.type === 'finding')
      .sort((a, b) => SEVERITIES.indexOf(a.severity!) - SEVERITIES.indexOf(b.severity!) || a.id - b.id);
    const runs = listRunsForTicket(db, ticket.id)
      .reverse()
      .map((run) => ({
        id: run.id,
        agent: run.agent_type_id,
        model: run.model,
        column: run.column_id,
        status: run.status,
        live: LIVE_STATUSES.includes(run.status),
        startedAt: run.started_at ?? run.created_at,
        durationMs: run.started_at ? (run.ended_at ?? Date.now()) - run.started_at : null,
        tokensIn: run.tokens_in,
        tokensOut: run.tokens_out,
        cost: run.cost_usd,
        error: run.error,
      }));
    const status = ticketMergeStatus(db, ticket);
    const project = getProject(db, ticket.project_id);
    const merging = {
      check: project.check_command,
      queue: status.queue,
      mergeCommit: status.merge_commit,
      checks: status.check_runs.reverse().map((c) => ({
        attempt: c.attempt,
        status: c.status,
        note: c.note,
        startedAt: c.started_at,
        durationMs: c.duration_ms,
        tested: c.tested_commit,
        landed: c.merge_commit,
        tail: c.tail,
        output: `/api/tickets/${ticket.key}/checks/${c.attempt}/output`,
      })),
    };
    res.render('tickets/show.njk', {
      title: `${ticket.key} ${ticket.title}`,
      section: 'projects',
      ticket: {
        key: ticket.key,
        title: ticket.title,
        abbreviation: ticket.abbreviation,
        column: ticket.column_id,
        columnName: names.get(ticket.column_id) ?? ticket.column_id,
        priority: ticket.priority,
        tags: ticket.tags,
        createdBy: ticket.created_by,
        createdAt: ticket.created_at,
        updatedAt: ticket.updated_at,
        claimedBy: runs.some((r) => r.live && r.id === ticket.claimed_by_run) ? ticket.claimed_by_run : null,
        // an archived project's tickets cannot be changed (lib/tickets.ts): no forms to offer
        readOnly: getProject(db, ticket.project_id).status === 'archived',
        closedAt: ticket.archived_at,
        branch: ticket.branch,
        bodyHtml: ticket.body ? renderMarkdown(ticket.body) : '',
        body: ticket.body,
      },
      columns: columns.map((c) => ({ id: c.column_id, name: c.name, current: c.column_id === ticket.column_id })),
      priorities: PRIORITIES,
      thread,
      findings,
      runs,
      diff,
      merging,
      error,
      values,
      self: `/tickets/${ticket.key}`,
    });
  }

  r.get('/tickets/:key', async (req, res) => render(res, req.params.key));

  r.post('/tickets/:key/move', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const { ticket } = moveTicket(store, req.params.key, required(values, 'column'), {
          actor: HUMAN,
          comment: optional(values, 'comment'),
          expectFrom: optional(values, 'from'),
        });
        return withNotice(returnPath(values, `/tickets/${ticket.key}`), 'moved');
      },
      (error) => render(res, req.params.key, error, values),
      'move',
    );
  });

  r.post('/tickets/:key/close', async (req, res) => {
    await submit(
      res,
      () => withNotice(`/tickets/${closeTicket(store, req.params.key, { actor: HUMAN }).key}`, 'closed'),
      (error) => render(res, req.params.key, error),
      'close',
    );
  });

  r.post('/tickets/:key/reopen', async (req, res) => {
    await submit(
      res,
      () => withNotice(`/tickets/${reopenTicket(store, req.params.key, { actor: HUMAN }).key}`, 'reopened'),
      (error) => render(res, req.params.key, error),
      'close',
    );
  });

  r.post('/tickets/:key/reply', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const to = optional(values, 'column');
        const ticket = requireTicket(db, req.params.key);
        if (to) moveTicket(store, ticket.id, to, { actor: HUMAN, comment: required(values, 'body', 'reply') });
        else addComment(store, ticket.id, 'comment', required(values, 'body', 'reply'), HUMAN);
        return withNotice(`/tickets/${ticket.abbreviation}-${ticket.number}`, to ? 'moved' : 'replied');
      },
      (error) => render(res, req.params.key, error, values),
      'reply',
    );
  });

  r.post('/tickets/:key/edit', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const ticket = updateTicket(store, req.params.key, { title: values.title, priority: values.priority, body: values.body });
        return withNotice(`/tickets/${ticket.key}`, 'saved');
      },
      (error) => render(res, req.params.key, error, values),
      'edit',
    );
  });

  return r;
}

type DiffLineKind = 'meta' | 'hunk' | 'add' | 'del' | 'context';

/** The branch diff as the page shows it; a diff git cannot produce is shown as its reason. */
async function diffView(store: Store, ticketId: number, branch: string) {
  const mergeCommit = getMergeRecord(store.db, ticketId).merge_commit;
  const base = { branch, mergeCommit, mergeShort: mergeCommit?.slice(0, 12) ?? null };
  let diff;
  try {
    diff = await ticketDiff({ store, ticketId });
  } catch (err) {
    if (err instanceof UserError || err instanceof GitError) return { ...base, unavailable: err.message };
    throw err;
  }
  if (!diff)
    return {
      ...base,
      unavailable: mergeCommit
        ? 'the merge commit is no longer in the repository'
        : `there is no branch ${branch} in the project's repository`,
    };
  const lines = diffLines(diff.patch);
  const shown = lines
    .slice(0, DIFF_LINES)
    .map((l) => ({ kind: l.kind, text: l.text.length > DIFF_LINE_CHARS ? `${l.text.slice(0, DIFF_LINE_CHARS)} …` : l.text }));
  return {
    ...base,
    unavailable: null,
    main: diff.main,
    files: diff.files,
    stat: diff.stat.trimEnd(),
    lines: shown,
    totalLines: lines.length,
    hiddenLines: lines.length - shown.length,
    longLines: lines.slice(0, DIFF_LINES).some((l) => l.text.length > DIFF_LINE_CHARS),
    truncated: diff.truncated,
    limitMiB: DIFF_PATCH_LIMIT_BYTES / 1024 / 1024,
  };
}

/** Classifies each line of a unified diff; file headers are told from content by where a hunk starts. */
function diffLines(patch: string): { kind: DiffLineKind; text: string }[] {
  const out: { kind: DiffLineKind; text: string }[] = [];
  let inHunk = false;
  for (const text of patch.split('\n')) {
    let kind: DiffLineKind;
    if (text.startsWith('diff ')) {
      inHunk = false;
      kind = 'meta';
    } else if (text.startsWith('@@')) {
      inHunk = true;
      kind = 'hunk';
    } else if (!inHunk) kind = 'meta';
    else if (text.startsWith('+')) kind = 'add';
    else if (text.startsWith('-')) kind = 'del';
    else if (text.startsWith('\\')) kind = 'meta';
    else kind = 'context';
    out.push({ kind, text });
  }
  if (out.length && out[out.length - 1]!.text === '') out.pop();
  return out;
}
