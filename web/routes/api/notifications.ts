// GET /api/notifications/recent?since=<id>: what an open page needs to notify in the browser (new
// notifications, the inbox count for the tab title and favicon). Pages read it at
// /notifications/recent, the same answer under a page path, so it works with the login cookie when
// `api_token` is set (the API takes only the bearer). Pages poll it (web/public/notify.js); it is
// meant to move onto the pages' live event stream.
import { Router } from 'express';
import { recentNotifications } from '../../../lib/notifications.js';
import { inboxCount } from '../../../lib/tickets.js';
import { UserError } from '../../../lib/errors.js';
import type { AppContext } from '../../context.js';

export function notificationsApi(ctx: AppContext): Router {
  const r = Router();
  r.get('/recent', (req, res) => {
    const raw = req.query.since;
    let since: number | null = null;
    if (raw !== undefined && raw !== '') {
      since = Number(raw);
      if (typeof raw !== 'string' || !Number.isSafeInteger(since) || since < 0) {
        throw new UserError('since must be a notification id (a whole number)', 'since');
      }
    }
    const db = ctx.store.db;
    res.set('cache-control', 'no-store');
    res.json(recentNotifications(db, ctx.config.get().notifications, inboxCount(db), since));
  });
  return r;
}
