// /api/tickets and /api/inbox: file, list, show, edit, comment, find, move, close, reopen, branch diff,
// merge queue and check runs, and bulk actions (one transaction for the whole batch, refused whole with every reason).
import fs from 'node:fs';
import { Router } from 'express';
import {
  addComment,
  addFinding,
  bulkUpdate,
  closeTicket,
  createTicket,
  getThread,
  inbox,
  inboxCount,
  listTickets,
  moveTicket,
  reopenTicket,
  requireTicket,
  toView,
  updateTicket,
  type InboxFilter,
  type InboxTab,
} from '../../../lib/tickets.js';
import { listRunsForTicket } from '../../../lib/runs.js';
import { ticketDiff } from '../../../lib/merge.js';
import { listCheckRuns, ticketMergeStatus } from '../../../lib/checks.js';
import { NotFoundError } from '../../../lib/errors.js';
import { bodyObject, optionalString, queryInt, requiredString } from '../../http.js';
import { HUMAN } from '../../../lib/columns.js';
import type { AppContext } from '../../context.js';

export function ticketsApi(ctx: AppContext): Router {
  const r = Router();
  const { store } = ctx;
  const db = store.db;

  r.get('/', (req, res) => {
    const tickets = listTickets(db, {
      project: typeof req.query.project === 'string' ? req.query.project : undefined,
      column: typeof req.query.column === 'string' ? req.query.column : undefined,
      limit: queryInt(req.query.limit, 'limit', 200, 1000),
      offset: queryInt(req.query.offset, 'offset', 0, 1_000_000_000),
    });
    res.json({ tickets });
  });

  r.post('/', (req, res) => {
    const body = bodyObject(req);
    const ticket = createTicket(store, {
      project: requiredString(body, 'project'),
      title: body.title,
      body: body.body,
      column: optionalString(body, 'column'),
      priority: body.priority,
      tags: body.tags,
      createdBy: optionalString(body, 'created_by') ?? HUMAN,
    });
    res.status(201).json({ ticket });
  });

  // {keys: ['pd-1', …], action: 'move' | 'priority' | 'close', column?, priority?}
  r.post('/bulk', (req, res) => {
    const body = bodyObject(req);
    res.json(bulkUpdate(store, { keys: body.keys, action: body.action, column: body.column, priority: body.priority, actor: HUMAN }));
  });

  r.get('/:ref', (req, res) => {
    const ticket = requireTicket(db, req.params.ref);
    res.json({ ticket: toView(ticket), comments: getThread(db, ticket.id), runs: listRunsForTicket(db, ticket.id) });
  });

  r.get('/:ref/checks', (req, res) => {
    const ticket = requireTicket(db, req.params.ref);
    res.json(ticketMergeStatus(db, ticket));
  });

  /** A check run's whole output, as the text file it was written to (its path comes from the database, never the request). */
  r.get('/:ref/checks/:attempt/output', (req, res) => {
    const ticket = requireTicket(db, req.params.ref);
    const run = listCheckRuns(db, ticket.id).find((r) => String(r.attempt) === req.params.attempt);
    if (!run || !fs.existsSync(run.output_path)) throw new NotFoundError('check output', `${toView(ticket).key} #${req.params.attempt}`);
    res.type('text/plain; charset=utf-8');
    res.setHeader('content-security-policy', "default-src 'none'");
    fs.createReadStream(run.output_path).pipe(res);
  });

  r.get('/:ref/diff', async (req, res) => {
    const ticket = requireTicket(db, req.params.ref);
    const diff = await ticketDiff({ store, ticketId: ticket.id });
    if (!diff) {
      res.status(404).json({ error: `ticket ${toView(ticket).key} has no branch to diff` });
      return;
    }
    res.json({ diff });
  });

  r.patch('/:ref', (req, res) => {
    const body = bodyObject(req);
    res.json({
      ticket: updateTicket(store, req.params.ref, { title: body.title, body: body.body, priority: body.priority, tags: body.tags }),
    });
  });

  r.post('/:ref/comments', (req, res) => {
    const body = bodyObject(req);
    const comment = addComment(
      store,
      req.params.ref,
      optionalString(body, 'type') ?? 'comment',
      body.body,
      optionalString(body, 'author') ?? HUMAN,
    );
    res.status(201).json({ comment });
  });

  r.post('/:ref/findings', (req, res) => {
    const body = bodyObject(req);
    const finding = addFinding(
      store,
      req.params.ref,
      requiredString(body, 'severity'),
      body.title,
      body.body,
      optionalString(body, 'author') ?? HUMAN,
    );
    res.status(201).json({ comment: finding });
  });

  r.post('/:ref/move', (req, res) => {
    const body = bodyObject(req);
    res.json(
      moveTicket(store, req.params.ref, requiredString(body, 'column'), {
        actor: optionalString(body, 'actor') ?? HUMAN,
        comment: optionalString(body, 'comment'),
      }),
    );
  });

  r.post('/:ref/close', (req, res) => {
    const body = bodyObject(req);
    res.json({ ticket: closeTicket(store, req.params.ref, { actor: HUMAN, comment: optionalString(body, 'comment') }) });
  });

  r.post('/:ref/reopen', (req, res) => {
    res.json({ ticket: reopenTicket(store, req.params.ref, { actor: HUMAN }) });
  });

  return r;
}

export function inboxApi(ctx: AppContext): Router {
  const r = Router();
  // ?tab=backlog for the tickets the person filed into human; ?project= and ?priority= filter either list
  r.get('/', (req, res) => {
    const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const tab = (text(req.query.tab) ?? 'needs') as InboxTab;
    const filter: InboxFilter = { tab, project: text(req.query.project), priority: text(req.query.priority) };
    const limit = queryInt(req.query.limit, 'limit', 200, 1000);
    const tickets = inbox(ctx.store.db, { ...filter, limit, offset: queryInt(req.query.offset, 'offset', 0, 1_000_000_000) });
    res.json({ tab: filter.tab, total: inboxCount(ctx.store.db, filter), tickets });
  });
  return r;
}
