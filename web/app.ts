// The Express app: security guards first, then the JSON API under /api/ and the HTML pages.
// Errors become 4xx JSON (API) or an HTML error page, 503/507 when the disk or the database lock
// refuses a write; a bad request never takes the daemon down.
import crypto from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { UserError } from '../lib/errors.js';
import { storageError } from '../lib/db/connection.js';
import { publicDir } from '../lib/paths.js';
import { csrfGuard, hostGuard, isApiPath, originGuard, peerGuard, securityHeaders, tokenGuard } from './security.js';
import { agentApi, runnerApi } from './routes/api/runner.js';
import { runnersApi } from './routes/api/runners.js';
import { setupViews } from './views.js';
import { pages } from './routes/pages/index.js';
import { loginPages } from './routes/pages/login.js';
import { projectsApi } from './routes/api/projects.js';
import { inboxApi, ticketsApi } from './routes/api/tickets.js';
import { agentTypesApi, projectTypesApi } from './routes/api/agentTypes.js';
import { backupsApi } from './routes/api/backups.js';
import { systemApi } from './routes/api/system.js';
import { queuesApi, runsApi } from './routes/api/runs.js';
import { costsApi } from './routes/api/costs.js';
import { searchApi } from './routes/api/search.js';
import { EventStreams } from './sse.js';
import { liveEvents } from './live.js';
import { worktreesApi } from './routes/api/worktrees.js';
import type { AppContext } from './context.js';

export function createApp(ctx: AppContext): express.Express {
  const app = express();
  // one form token per daemon process: a page served by this daemon can post, nothing else can
  const csrfToken = crypto.randomBytes(32).toString('base64url');
  setupViews(app);
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(peerGuard);
  app.use(hostGuard);
  app.use(securityHeaders);
  app.use(originGuard);
  app.use(tokenGuard(() => ctx.config.get().api_token));
  // token-authenticated by their routes, with their own body limits (docs/RUNNERS.md)
  app.use('/api/runner', runnerApi(ctx));
  app.use('/api/agent', agentApi(ctx));
  app.use(express.json({ limit: '1mb' }));
  app.use(express.urlencoded({ extended: false, limit: '1mb', parameterLimit: 2000 }));
  app.use(csrfGuard(csrfToken));
  app.use('/static', express.static(publicDir, { index: false, maxAge: '1h' }));
  // a missing asset is a plain 404, never a page: /static/ is open with api_token set and must not reach page data
  app.use('/static', (_req, res) => {
    res.status(404).type('text/plain').send('not found');
  });

  app.use('/api', systemApi(ctx));
  app.use('/api/backups', backupsApi(ctx));
  app.use('/api/projects', projectsApi(ctx));
  app.use('/api/tickets', ticketsApi(ctx));
  app.use('/api/inbox', inboxApi(ctx));
  app.use('/api/agent-types', agentTypesApi(ctx));
  app.use('/api/project-types', projectTypesApi(ctx));
  app.use('/api/runs', runsApi(ctx));
  app.use('/api/queues', queuesApi(ctx));
  app.use('/api/costs', costsApi(ctx));
  app.use('/api/search', searchApi(ctx));
  app.use('/api/worktrees', worktreesApi(ctx));
  app.use('/api/runners', runnersApi(ctx));
  app.use('/api', (_req, res) => {
    res.status(404).json({ error: 'no such API endpoint' });
  });
  app.use(loginPages(ctx, csrfToken));
  // the live pages' stream and the live transcripts share one cap on open streams
  const streams = new EventStreams();
  app.use(liveEvents(ctx, streams));
  app.use(pages(ctx, csrfToken, streams));
  app.use((req, res) => {
    res.status(404);
    if (req.accepts('html')) res.render('error.njk', { title: 'Not found', status: 404, message: `No page at ${req.path}` });
    else res.json({ error: 'not found' });
  });

  app.use(errorHandler);
  return app;
}

function errorHandler(err: unknown, req: Request, res: Response, _next: NextFunction): void {
  let status = 500;
  let message = 'internal error';
  let field: string | undefined;
  const storage = storageError(err);
  if (storage) {
    status = storage.status;
    message = storage.message;
    console.error(`[http] ${req.method} ${req.path}: ${(err as Error).message}`);
  } else if (err instanceof UserError) {
    status = err.status;
    message = err.message;
    field = err.field;
  } else if (isBodyParserError(err)) {
    // malformed JSON, too large, bad charset, or a body that is not what its Content-Encoding says
    status = err.status;
    if (err.type === 'entity.parse.failed') message = 'request body is not valid JSON';
    else if (err.type === undefined && typeof (err as { code?: unknown }).code === 'string') {
      message = `request body could not be decoded as its Content-Encoding says: ${err.message}`;
    } else message = err.message;
  } else {
    console.error(`[http] ${req.method} ${req.path}:`, err);
  }
  if (res.headersSent) return;
  if (isApiPath(req.path) || !req.accepts('html')) {
    res.status(status).json(field ? { error: message, field } : { error: message });
  } else {
    res
      .status(status)
      .render('error.njk', { title: status === 404 ? 'Not found' : 'Error', status, message }, (renderErr: Error | null, html?: string) => {
        if (renderErr) res.type('text/plain').send(`${status}: ${message}`);
        else res.type('html').send(html);
      });
  }
}

/** body-parser's errors are http-errors: a 4xx status and `expose`; most carry a `type`, a failed decompression none. */
function isBodyParserError(err: unknown): err is Error & { status: number; type?: string } {
  if (!(err instanceof Error)) return false;
  const { status, expose } = err as { status?: unknown; expose?: unknown };
  return typeof status === 'number' && status >= 400 && status < 500 && expose === true;
}
