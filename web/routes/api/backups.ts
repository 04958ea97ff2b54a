// /api/backups: list the database snapshots, and take one now (`dispatch backup` while the daemon
// runs, so the daemon that owns the schedule also owns every snapshot it rotates).
import { Router } from 'express';
import { backupDatabase, listBackups } from '../../../lib/backups.js';
import type { AppContext } from '../../context.js';

export function backupsApi(ctx: AppContext): Router {
  const r = Router();
  r.get('/', (_req, res) => {
    res.json({ backups: listBackups(ctx.paths.backups) });
  });
  r.post('/', async (_req, res) => {
    const result = await backupDatabase(ctx.store.db, ctx.paths.backups, ctx.config.get().backups.keep);
    res.status(201).json(result);
  });
  return r;
}
