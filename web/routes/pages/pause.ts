// The global agent pause from the page header: POST /pause (stop_running=1 also stops every running
// agent) and POST /resume, each back to the page it came from. The banner on every page shows it.
import { Router } from 'express';
import { pauseAll, resumeAll } from '../../../lib/pausing.js';
import { formValues, returnPath, withNotice } from './form.js';
import type { AppContext } from '../../context.js';

export function pausePages(ctx: AppContext): Router {
  const r = Router();

  r.post('/pause', async (req, res) => {
    const values = formValues(req);
    const stopRunning = values.stop_running === '1';
    await pauseAll(ctx.store, ctx.engine, { stopRunning });
    res.redirect(303, withNotice(returnPath(values, '/inbox'), stopRunning ? 'agents-stopped' : 'agents-paused'));
  });

  r.post('/resume', (req, res) => {
    const values = formValues(req);
    resumeAll(ctx.store, ctx.engine, ctx.config.get());
    res.redirect(303, withNotice(returnPath(values, '/inbox'), 'agents-resumed'));
  });

  return r;
}
