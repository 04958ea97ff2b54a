// POST /health/check: the health banner's "Check again" runs every check now, then goes back to the
// page it came from (the banner shows the new results there).
import { Router } from 'express';
import { formValues, returnPath, withNotice } from './form.js';
import type { AppContext } from '../../context.js';

export function healthPages(ctx: AppContext): Router {
  const r = Router();
  r.post('/health/check', async (req, res) => {
    await ctx.health.check();
    res.redirect(303, withNotice(returnPath(formValues(req), '/inbox'), 'checked'));
  });
  return r;
}
