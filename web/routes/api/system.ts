// /api/health, /api/config, and the global agent pause (/api/pause, /api/resume).
import { Router } from 'express';
import { RESTART_FIELDS } from '../../../lib/config.js';
import { getGlobalPause } from '../../../lib/globalPause.js';
import { cliPauseView } from '../../../lib/cliPause.js';
import { pauseAll, pauseState, resumeAll } from '../../../lib/pausing.js';
import { bodyObject, optionalBoolean } from '../../http.js';
import type { AppContext } from '../../context.js';

export function systemApi(ctx: AppContext): Router {
  const r = Router();
  r.get('/health', (_req, res) => {
    res.json({
      ok: true,
      version: ctx.version,
      pid: process.pid,
      home: ctx.paths.home,
      uptime_seconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      agents_paused: getGlobalPause(ctx.store.db),
      agent_cli_paused: cliPauseView(ctx.store.db),
    });
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
    res.json({ config: redact(ctx.config.get()), file: redact(ctx.config.fileValues()), restart_fields: RESTART_FIELDS, last_error: ctx.config.lastError });
  });
  r.patch('/config', (req, res) => {
    const next = ctx.config.update(bodyObject(req));
    res.json({ config: redact(next) });
  });
  return r;
}

/** Secrets never leave the daemon in full. */
function redact<T extends { ai: { api_key: string }; api_token: string }>(config: T): T {
  return { ...config, ai: { ...config.ai, api_key: config.ai.api_key ? '********' : '' }, api_token: config.api_token ? '********' : '' };
}
