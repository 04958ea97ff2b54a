// The HTML pages. Mounted after the API; every page gets the layout's data (inbox count, the
// form token, a one-word notice after a redirect, the daily budgets used up) through res.locals.
import { Router, type NextFunction, type Request, type Response } from 'express';
import { inboxCount } from '../../../lib/tickets.js';
import { getGlobalPause } from '../../../lib/globalPause.js';
import { cliPauseView } from '../../../lib/cliPause.js';
import { NOTICES } from './form.js';
import { inboxPages } from './inbox.js';
import { projectPages } from './projects.js';
import { ticketPages } from './tickets.js';
import { bulkPages } from './bulk.js';
import { runPages } from './runs.js';
import { agentTypePages } from './agentTypes.js';
import { projectTypePages } from './projectTypes.js';
import { settingsPages } from './settings.js';
import { queuePages } from './queues.js';
import { pausePages } from './pause.js';
import { healthPages } from './health.js';
import { costPages } from './costs.js';
import { budgetStatus } from '../../../lib/budget.js';
import { searchPages } from './search.js';
import type { AppContext } from '../../context.js';
import type { EventStreams } from '../../sse.js';
import { historyCursor } from '../../../lib/live.js';

export function pages(ctx: AppContext, csrfToken: string, streams: EventStreams): Router {
  const r = Router();
  r.use((req: Request, res: Response, next: NextFunction) => {
    res.locals.csrf = csrfToken;
    res.locals.inboxCount = inboxCount(ctx.store.db);
    // the history row the page is rendered at: a live page follows changes from there (web/live.ts)
    res.locals.liveSince = historyCursor(ctx.store.db);
    res.locals.agentsPaused = getGlobalPause(ctx.store.db);
    res.locals.cliPaused = cliPauseView(ctx.store.db);
    res.locals.healthProblems = ctx.health.report().problems;
    res.locals.path = req.path;
    const done = typeof req.query.done === 'string' ? req.query.done : '';
    res.locals.notice = Object.hasOwn(NOTICES, done) ? NOTICES[done] : null;
    res.locals.budgetsReached = budgetStatus(ctx.store.db, ctx.config.get().budgets.daily_usd, Date.now()).reached.map((b) => ({
      message: b.message,
      raise: b.project
        ? { href: `/projects/${b.project.abbreviation}#budget`, text: 'Raise its budget' }
        : { href: '/settings#f-budgets-daily_usd', text: 'Raise the budget' },
    }));
    next();
  });
  r.get('/', (_req, res) => res.redirect(302, '/inbox'));
  r.use(inboxPages(ctx));
  r.use(projectPages(ctx));
  r.use(bulkPages(ctx));
  r.use(ticketPages(ctx));
  r.use(runPages(ctx, streams));
  r.use(agentTypePages(ctx));
  r.use(projectTypePages(ctx));
  r.use(settingsPages(ctx));
  r.use(queuePages(ctx));
  r.use(pausePages(ctx));
  r.use(healthPages(ctx));
  r.use(costPages(ctx));
  r.use(searchPages(ctx));
  return r;
}
