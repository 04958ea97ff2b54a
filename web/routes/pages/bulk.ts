// Bulk actions from board and list pages. Each page renders the bulk bar (views/partials/bulk-bar.njk),
// a plain form whose checkboxes sit on the cards or rows and join it by their form="bulk" attribute,
// so it works without JavaScript and without nesting forms. The pressed button names the action;
// lib/tickets.ts applies it to every ticket in one transaction or refuses the whole batch.
import { Router } from 'express';
import { UserError } from '../../../lib/errors.js';
import { getColumns } from '../../../lib/projects.js';
import { bulkUpdate, PRIORITIES } from '../../../lib/tickets.js';
import type { Db } from '../../../lib/db/connection.js';
import { HUMAN } from '../../../lib/columns.js';
import { formList, formValues, optional, returnPath, withNotice } from './form.js';
import type { AppContext } from '../../context.js';

export interface BulkBar {
  columns: { id: string; name: string }[];
  priorities: readonly string[];
  returnTo: string;
}

/** The bar's choices for a page showing tickets of these projects: every column of any of them, in board order. */
export function bulkBar(db: Db, projectIds: Iterable<number>, returnTo: string): BulkBar {
  const columns = new Map<string, string>();
  for (const id of new Set(projectIds)) for (const c of getColumns(db, id)) if (!columns.has(c.column_id)) columns.set(c.column_id, c.name);
  return { columns: [...columns].map(([id, name]) => ({ id, name })), priorities: [...PRIORITIES].reverse(), returnTo };
}

const NOTICE = { move: 'bulk-moved', priority: 'bulk-priority', close: 'bulk-closed' } as const;

export function bulkPages(ctx: AppContext): Router {
  const r = Router();
  // `key` once per ticket ticked; a refusal is an error page that links back and says nothing changed
  r.post('/tickets/bulk', (req, res) => {
    const values = formValues(req);
    const back = returnPath(values, '/inbox');
    try {
      const result = bulkUpdate(ctx.store, {
        keys: formList(req, 'key'),
        action: values.action,
        column: optional(values, 'column'),
        priority: optional(values, 'priority'),
        actor: HUMAN,
      });
      res.redirect(303, withNotice(back, NOTICE[result.action]));
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      res.status(err.status).render('error.njk', { title: 'Nothing changed', status: err.status, message: err.message, back });
    }
  });
  return r;
}
