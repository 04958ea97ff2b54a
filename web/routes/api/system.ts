// /api/health (with the health checks' last results; POST /api/health/check runs them now),
// /api/config, and the global agent pause (/api/pause, /api/resume). PATCH /api/config refuses a
// claude_binary or projects_root that points at nothing unless the body says "save_anyway": true.
import { refuseListenWithoutToken } from '../../../lib/runners.js';
import { Router } from 'express';
import { RESTART_FIELDS, type Config } from '../../../lib/config.js';
import { getGlobalPause } from '../../../lib/globalPause.js';
import { cliPauseView } from '../../../lib/cliPause.js';
import { refuseMissingSetup } from '../../../lib/health.js';
import { pauseAll, pauseState, resumeAll } from '../../../lib/pausing.js';
import { maskUrl } from '../../../lib/notifications.js';
import { bodyObject, optionalBoolean } from '../../http.js';
import type { AppContext } from '../../context.js';

export function systemApi(ctx: AppContext): Router {
  const r = Router();
  // without the api_token (when one is set) only what `dispatch daemon status` needs to find its daemon:
  // the checks' messages name paths on this machine
  r.get('/health', (_req, res) => {
    const authorized = res.locals.authorized !== false;
    res.json({
      ok: true,
      version: ctx.version,
      pid: process.pid,
      home: ctx.paths.home,
      uptime_seconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      agents_paused: getGlobalPause(ctx.store.db),
      agent_cli_paused: cliPauseView(ctx.store.db),
      ...(authorized ? { health: ctx.health.report() } : {}),
    });
  });
  r.post('/health/check', async (_req, res) => {
    res.json(await ctx.health.check());
  });
  r.get('/pause', (_req, res) => {
    res.json(pauseState(ctx.store.db));
  });
  // { stop_running: true } also stops every running agent (their tickets stay in their columns)
  r.post('/pause', async (req, res) => {
    res.json(await pauseAll(ctx.store, ctx.engine, { stopRunning: optionalBoolean(bodyObject(req), 'stop_running') ?? false }));
  });
  r.post('/resume', (_req, res) => {
    res.json(resumeAll(ctx.store, ctx.engine, ctx.config.get()));
  });
  r.get('/config', (_req, res) => {
    res.json({
      config: redact(ctx.config.get()),
      file: redact(ctx.config.fileValues()),
      restart_fields: RESTART_FIELDS,
      last_error: ctx.config.lastError,
    });
  });
  r.patch('/config', (req, res) => {
    const body = bodyObject(req);
    const saveAnyway = optionalBoolean(body, 'save_anyway') ?? false;
    const patch = { ...body };
    delete patch.save_anyway;
    const next = ctx.config.update(patch, (n: Config, p: Config) => {
      refuseListenWithoutToken(ctx.store.db, n, p);
      if (!saveAnyway) refuseMissingSetup(n, p, 'send "save_anyway": true');
    });
    res.json({ config: redact(next) });
  });
  return r;
}

/** Secrets never leave the daemon in full (a webhook or Redis URL keeps its host, so the person knows which service it is). */
function redact<
  T extends { ai: { api_key: string }; api_token: string; notifications: { webhook_url: string }; queue: { redis_url: string } },
>(config: T): T {
  return {
    ...config,
    ai: { ...config.ai, api_key: config.ai.api_key ? '********' : '' },
    api_token: config.api_token ? '********' : '',
    notifications: { ...config.notifications, webhook_url: maskUrl(config.notifications.webhook_url) },
    queue: { ...config.queue, redis_url: maskUrl(config.queue.redis_url) },
  };
}
