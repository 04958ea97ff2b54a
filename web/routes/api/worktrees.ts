// /api/worktrees: the ticket worktrees the daemon made, with their disk use; prune removes those of
// finished tickets (merged, archived or deleted), keeping any with uncommitted files.
import { Router } from 'express';
import { listTicketWorktrees, pruneWorktrees } from '../../../lib/workspace.js';
import type { AppContext } from '../../context.js';

export function worktreesApi(ctx: AppContext): Router {
  const r = Router();
  r.get('/', async (_req, res) => {
    res.json({ worktrees: await listTicketWorktrees(ctx.store, ctx.paths) });
  });
  r.post('/prune', async (_req, res) => {
    const before = await listTicketWorktrees(ctx.store, ctx.paths);
    await pruneWorktrees({ store: ctx.store, paths: ctx.paths });
    const worktrees = await listTicketWorktrees(ctx.store, ctx.paths);
    const left = new Set(worktrees.map((w) => w.path));
    res.json({ removed: before.filter((w) => !left.has(w.path)), worktrees });
  });
  return r;
}
