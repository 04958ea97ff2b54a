// /tickets/<abbr-N>: the ticket with its rendered body, thread, findings (critical first) and
// runs; reply, move and edit forms. Every form posts here and redirects back (PRG).
import { Router, type Response } from 'express';
import { renderMarkdown } from '../../../lib/markdown.js';
import { getColumns } from '../../../lib/projects.js';
import { listRunsForTicket, LIVE_STATUSES } from '../../../lib/runs.js';
import { addComment, getThread, moveTicket, PRIORITIES, requireTicket, SEVERITIES, toView, updateTicket } from '../../../lib/tickets.js';
import { HUMAN } from '../../http.js';
import { formValues, optional, required, returnPath, submit, withNotice, type FormError, type FormValues } from './form.js';
import type { AppContext } from '../../context.js';

export function ticketPages(ctx: AppContext): Router {
  const r = Router();
  const { store } = ctx;
  const db = store.db;

  function render(res: Response, key: string, error: FormError | null = null, values: FormValues = {}): void {
    const ticket = toView(requireTicket(db, key));
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
    const findings = thread.filter((c) => c.type === 'finding').sort((a, b) => SEVERITIES.indexOf(a.severity!) - SEVERITIES.indexOf(b.severity!) || a.id - b.id);
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
        claimedBy: ticket.claimed_by_run,
        branch: ticket.branch,
        bodyHtml: ticket.body ? renderMarkdown(ticket.body) : '',
        body: ticket.body,
      },
      columns: columns.map((c) => ({ id: c.column_id, name: c.name, current: c.column_id === ticket.column_id })),
      priorities: PRIORITIES,
      thread,
      findings,
      runs,
      error,
      values,
      self: `/tickets/${ticket.key}`,
    });
  }

  r.get('/tickets/:key', (req, res) => render(res, req.params.key));

  r.post('/tickets/:key/move', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const { ticket } = moveTicket(store, req.params.key, required(values, 'column'), { actor: HUMAN, comment: optional(values, 'comment'), expectFrom: optional(values, 'from') });
        return withNotice(returnPath(values, `/tickets/${ticket.key}`), 'moved');
      },
      (error) => render(res, req.params.key, error, values),
      'move',
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
