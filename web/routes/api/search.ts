// GET /api/search?q=&project=&column=&limit=&offset=: full-text search over tickets and their
// history (lib/search). A query with nothing to look for, or a bad filter, is a 400 with the field.
import { Router } from 'express';
import { searchTickets, SEARCH_PAGE_MAX } from '../../../lib/search.js';
import { UserError } from '../../../lib/errors.js';
import { queryInt } from '../../http.js';
import type { AppContext } from '../../context.js';

export function searchApi(ctx: AppContext): Router {
  const r = Router();
  r.get('/', (req, res) => {
    res.json(
      searchTickets(ctx.store.db, {
        q: queryString(req.query.q, 'q') ?? '',
        project: queryString(req.query.project, 'project'),
        column: queryString(req.query.column, 'column'),
        limit: queryInt(req.query.limit, 'limit', 20, SEARCH_PAGE_MAX),
        offset: queryInt(req.query.offset, 'offset', 0, 1_000_000),
      }),
    );
  });
  return r;
}

/** A query parameter given once, as text (`?q=a&q=b` or `?q[x]=` is refused, not guessed at). */
export function queryString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new UserError(`${field} must be given once, as text`, field);
  return value;
}
