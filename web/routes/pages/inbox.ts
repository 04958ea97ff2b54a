// /inbox: what needs the person, across projects. The first tab lists the tickets an agent or the
// daemon parked in human (questions, give-ups, merge conflicts, limits, failures), most urgent and
// longest waiting first; the Backlog tab lists what the person filed into human themselves and is
// not in the header badge. Both filter by project and priority with a plain GET form. Each row is
// one line with its reply form in a <details>, so it works without JavaScript; app.js adds keys.
// A checkbox per row feeds the bulk bar (move, set the priority of or close the ticked tickets).
// A reply that also moves the ticket is one move with the reply as its comment (one transaction),
// and a move into an agent column wakes that project (lib/tickets marks it due).
import { Router, type Request, type Response } from 'express';
import { getColumns, listProjects } from '../../../lib/projects.js';
import { addComment, inbox, inboxCount, moveTicket, PRIORITIES, type InboxFilter, type InboxTab } from '../../../lib/tickets.js';
import { HUMAN } from '../../../lib/columns.js';
import { formValues, optional, pageNumber, required, returnPath, submit, withNotice, type FormError, type FormValues } from './form.js';
import { bulkBar } from './bulk.js';
import type { AppContext } from '../../context.js';

const PAGE_SIZE = 50;

interface InboxQuery {
  tab: InboxTab;
  project: string;
  priority: string;
  page: number;
}

function readQuery(query: Request['query']): InboxQuery {
  const text = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  const tab = text(query.tab) === 'backlog' ? 'backlog' : 'needs';
  return { tab, project: text(query.project), priority: text(query.priority), page: pageNumber(query.page) };
}

/** The inbox URL for a query: only the parts that differ from the default, so `/inbox` stays `/inbox`. */
function inboxUrl(q: Partial<InboxQuery>): string {
  const params = new URLSearchParams();
  if (q.tab === 'backlog') params.set('tab', 'backlog');
  if (q.project) params.set('project', q.project);
  if (q.priority) params.set('priority', q.priority);
  if (q.page && q.page > 1) params.set('page', String(q.page));
  const s = params.toString();
  return s ? `/inbox?${s}` : '/inbox';
}

export function inboxPages(ctx: AppContext): Router {
  const r = Router();
  const { store } = ctx;
  const db = store.db;

  function render(res: Response, q: InboxQuery, error: FormError | null = null, values: FormValues = {}): void {
    const filter: InboxFilter = { project: q.project || undefined, priority: q.priority || undefined };
    const rows = inbox(db, { ...filter, tab: q.tab, limit: PAGE_SIZE + 1, offset: (q.page - 1) * PAGE_SIZE });
    const columnsByProject = new Map<number, { id: string; name: string }[]>();
    const items = rows.slice(0, PAGE_SIZE).map((t) => {
      if (!columnsByProject.has(t.project_id)) {
        const targets = getColumns(db, t.project_id).filter((c) => c.column_id !== HUMAN);
        columnsByProject.set(
          t.project_id,
          targets.map((c) => ({ id: c.column_id, name: c.name })),
        );
      }
      const failed = error?.scope === t.key;
      return {
        key: t.key,
        title: t.title,
        priority: t.priority,
        project: t.project_name,
        abbreviation: t.abbreviation,
        waitingSince: t.column_entered_at,
        parkedBy: t.parked_by ?? t.created_by,
        note: t.note,
        noteType: t.reason_type,
        targets: columnsByProject.get(t.project_id)!,
        error: failed ? error : null,
        values: failed ? values : {},
      };
    });
    const self = inboxUrl(q);
    const shown = rows.slice(0, PAGE_SIZE);
    res.render('inbox/index.njk', {
      title: q.tab === 'backlog' ? 'Inbox: backlog' : 'Inbox',
      section: 'inbox',
      items,
      self,
      bulk: shown.length
        ? bulkBar(
            db,
            shown.map((t) => t.project_id),
            self,
          )
        : null,
      query: q,
      tabs: {
        needs: { href: inboxUrl({ ...q, tab: 'needs', page: 1 }), count: inboxCount(db, { ...filter, tab: 'needs' }) },
        backlog: { href: inboxUrl({ ...q, tab: 'backlog', page: 1 }), count: inboxCount(db, { ...filter, tab: 'backlog' }) },
      },
      projects: listProjects(db).filter((p) => p.abbreviation && p.status !== 'unregistered' && p.status !== 'archived'),
      priorities: [...PRIORITIES].reverse(),
      filtered: Boolean(q.project || q.priority),
      clearHref: inboxUrl({ tab: q.tab }),
      page: q.page,
      prev: q.page > 1 ? inboxUrl({ ...q, page: q.page - 1 }) : null,
      next: rows.length > PAGE_SIZE ? inboxUrl({ ...q, page: q.page + 1 }) : null,
      prevLabel: '← Previous',
      nextLabel: 'Next →',
      error: error && !items.some((i) => i.error) ? error : null,
    });
  }

  r.get('/inbox', (req, res) => render(res, readQuery(req.query)));

  r.post('/inbox/:key/reply', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const to = optional(values, 'column');
        if (to) {
          moveTicket(store, req.params.key, to, { actor: HUMAN, comment: required(values, 'body', 'reply'), expectFrom: HUMAN });
          return withNotice(returnPath(values, '/inbox'), 'moved');
        }
        addComment(store, req.params.key, 'comment', required(values, 'body', 'reply'), HUMAN);
        return withNotice(returnPath(values, '/inbox'), 'replied');
      },
      (error) => render(res, returnQuery(values), error, values),
      req.params.key,
    );
  });

  return r;
}

/** The list a refused reply came from (its return_to), so the page comes back with the same tab and filters. */
function returnQuery(values: FormValues): InboxQuery {
  const back = returnPath(values, '/inbox');
  const url = new URL(back, 'http://localhost');
  return url.pathname === '/inbox' ? readQuery(Object.fromEntries(url.searchParams)) : readQuery({});
}
