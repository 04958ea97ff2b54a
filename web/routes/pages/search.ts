// /search?q=&project=&column=&page=: the results page behind the header's search box. A query
// that is exactly an existing ticket key (pd-42) goes straight to that ticket. A query with
// nothing to look for comes back as the page with the message (400), never an error page.
// Each hit has a checkbox for the bulk bar.
import { Router } from 'express';
import { searchFilters, searchTickets, type SearchResult } from '../../../lib/search.js';
import { findTicket, toView } from '../../../lib/tickets.js';
import { getProject } from '../../../lib/projects.js';
import { UserError } from '../../../lib/errors.js';
import { queryString } from '../api/search.js';
import { pageNumber } from './form.js';
import { bulkBar } from './bulk.js';
import type { AppContext } from '../../context.js';

const PAGE_SIZE = 20;

export function searchPages(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;

  r.get('/search', (req, res) => {
    const q = (queryString(req.query.q, 'q') ?? '').trim();
    const projectRef = queryString(req.query.project, 'project');
    const column = queryString(req.query.column, 'column');
    const page = pageNumber(req.query.page);
    if (/^[a-z][a-z0-9]{0,9}-\d+$/i.test(q) && !projectRef && !column) {
      const ticket = findTicket(db, q);
      if (ticket) {
        res.redirect(302, `/tickets/${toView(ticket).key}`);
        return;
      }
    }
    const project = projectRef ? getProject(db, projectRef) : null;
    let result: SearchResult | null = null;
    let error: string | null = null;
    if (q) {
      try {
        result = searchTickets(db, { q, project: project?.id, column, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
      } catch (err) {
        if (!(err instanceof UserError) || err.status !== 400) throw err;
        error = err.message;
        res.status(400);
      }
    }
    const link = (p: number) => {
      const params = new URLSearchParams({ q });
      if (project) params.set('project', project.abbreviation!);
      if (column) params.set('column', column);
      if (p > 1) params.set('page', String(p));
      return `/search?${params}`;
    };
    const pages = result ? Math.max(1, Math.ceil(result.total / PAGE_SIZE)) : 1;
    // a page past the end (an old link, a typed number) goes to the last one
    if (result && page > pages) {
      res.redirect(302, link(pages));
      return;
    }
    res.render('search/index.njk', {
      title: q ? `Search: ${q}` : 'Search',
      section: 'search',
      searchQuery: q,
      q,
      project: project?.abbreviation ?? '',
      column: column ?? '',
      filters: searchFilters(db, project?.id ?? null),
      result,
      bulk: result?.hits.length ? bulkBar(db, hitProjects(result), link(page)) : null,
      error,
      page,
      pages,
      first: result && result.total ? (page - 1) * PAGE_SIZE + 1 : 0,
      last: result ? Math.min(page * PAGE_SIZE, result.total) : 0,
      prev: page > 1 && result ? link(page - 1) : null,
      next: result && page < pages ? link(page + 1) : null,
    });
  });

  /** The projects of a page of hits, for the bulk bar's columns. */
  function hitProjects(result: SearchResult): number[] {
    return [...new Set(result.hits.map((h) => h.project))].map((abbr) => getProject(db, abbr).id);
  }

  return r;
}
