// /inbox: every ticket waiting for the human, across projects, with a reply box and move buttons.
// A reply that also moves the ticket is one move with the reply as its comment (one transaction),
// and a move into an agent column wakes that project (lib/tickets marks it due).
import { Router, type Response } from 'express';
import { getColumns } from '../../../lib/projects.js';
import { addComment, inbox, moveTicket } from '../../../lib/tickets.js';
import { HUMAN } from '../../http.js';
import { formValues, optional, pageNumber, required, returnPath, submit, withNotice, type FormError, type FormValues } from './form.js';
import type { AppContext } from '../../context.js';

const PAGE_SIZE = 50;

export function inboxPages(ctx: AppContext): Router {
  const r = Router();
  const { store } = ctx;
  const db = store.db;

  function render(res: Response, page: number, error: FormError | null = null, values: FormValues = {}): void {
    const rows = inbox(db, { limit: PAGE_SIZE + 1, offset: (page - 1) * PAGE_SIZE });
    const columnsByProject = new Map<number, { id: string; name: string }[]>();
    const items = rows.slice(0, PAGE_SIZE).map((t) => {
      if (!columnsByProject.has(t.project_id)) {
        columnsByProject.set(t.project_id, getColumns(db, t.project_id).filter((c) => c.column_id !== HUMAN).map((c) => ({ id: c.column_id, name: c.name })));
      }
      return {
        key: t.key,
        title: t.title,
        priority: t.priority,
        project: t.project_name,
        abbreviation: t.abbreviation,
        waitingSince: t.column_entered_at,
        reason: t.reason,
        reasonType: t.reason_type,
        reasonAuthor: t.reason_author,
        targets: columnsByProject.get(t.project_id)!,
        error: error?.scope === t.key ? error : null,
        values: error?.scope === t.key ? values : {},
      };
    });
    const self = page > 1 ? `/inbox?page=${page}` : '/inbox';
    res.render('inbox/index.njk', {
      title: 'Inbox',
      section: 'inbox',
      items,
      self,
      page,
      prev: page > 1 ? `/inbox?page=${page - 1}` : null,
      next: rows.length > PAGE_SIZE ? `/inbox?page=${page + 1}` : null,
      error: error && !items.some((i) => i.error) ? error : null,
    });
  }

  r.get('/inbox', (req, res) => render(res, pageNumber(req.query.page)));

  r.post('/inbox/:key/reply', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const to = optional(values, 'column');
        if (to) {
          moveTicket(store, req.params.key, to, { actor: HUMAN, comment: required(values, 'body', 'reply'), expectFrom: HUMAN });
          return withNotice(returnPath(values, '/inbox'), 'moved');
        }
        addComment(store, req.params.key, 'comment', required(values, 'body', 'reply'), HUMAN);
        return withNotice(returnPath(values, '/inbox'), 'replied');
      },
      (error) => render(res, 1, error, values),
      req.params.key,
    );
  });

  return r;
}
