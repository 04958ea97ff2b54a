// /api/runners: the person's side of runners (docs/RUNNERS.md): add one (its token is in this answer
// only), revoke one, list them with their live runs. Behind the usual guards, unlike /api/runner/.
import { Router } from 'express';
import { addRunner, listRunners, revokeRunner } from '../../../lib/runners.js';
import { bodyObject } from '../../http.js';
import type { AppContext } from '../../context.js';

export function runnersApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  r.get('/', (_req, res) => {
    res.json({ runners: listRunners(db) });
  });
  r.post('/', (req, res) => {
    const body = bodyObject(req);
    const { runner, token } = addRunner(db, { name: body.name, slots: body.slots });
    res.status(201).json({ runner, token });
  });
  r.post('/:name/revoke', (req, res) => {
    res.json({ runner: revokeRunner(db, String(req.params.name)) });
  });
  return r;
}
