// /api/health and /api/config.
import { Router } from 'express';
import { RESTART_FIELDS } from '../../../lib/config.js';
import { bodyObject } from '../../http.js';
import type { AppContext } from '../../context.js';

export function systemApi(ctx: AppContext): Router {
  const r = Router();
  r.get('/health', (_req, res) => {
    res.json({ ok: true, version: ctx.version, pid: process.pid, home: ctx.paths.home, uptime_seconds: Math.round((Date.now() - ctx.startedAt) / 1000) });
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
