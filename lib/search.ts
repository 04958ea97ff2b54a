// Full-text search over tickets: title, body and history, through the FTS5 index that migration 7
// creates and its triggers keep in step (so tickets written by ticket.cjs are found too). What a
// person types never reaches FTS5's query syntax: each word, or each "quoted phrase", becomes a
// quoted term, so `"`, `AND`, `*`, `-` or `NEAR(` are plain text, never a syntax error.
import { UserError } from './errors.js';
import { getColumns, getProject } from './projects.js';
import type { Db } from './db/connection.js';
import type { Priority } from './tickets.js';

export const QUERY_MAX_CHARS = 500;
export const QUERY_MAX_TERMS = 20;
export const SEARCH_PAGE_MAX = 100;
/**
 * Up to this many matches, hits come best first (bm25, title hits weigh most). Past it they come
 * newest first: ranking every match of a word that is in most tickets costs more than it tells,
 * and the filters narrow such a search better (BENCHMARKS.md).
 */
export const RANK_LIMIT = 500;
/** Largest id list a filter is built as; a bigger column is checked by an index seek per match. */
export const IN_LIST_MAX = 20_000;

// private-use characters as snippet markers: they are split out before anything is shown
const OPEN = '\uE000';
const CLOSE = '\uE001';
const SNIPPET_TOKENS = 24;
// a hit in the title counts most, one in the history least
const RANK = 'bm25(ticket_search, 10.0, 3.0, 1.0), s.rowid DESC';

export interface SearchInput {
  q: string;
  project?: string | number;
  column?: string;
  limit?: number;
  offset?: number;
}

/** A piece of a snippet: text, and whether it is what the query matched. */
export interface SnippetPart {
  text: string;
  match: boolean;
}

export interface SearchHit {
  key: string;
  project: string;
  project_name: string;
  number: number;
  title: string;
  /** the title cut into matched and unmatched parts */
  title_parts: SnippetPart[];
  column_id: string;
  column_name: string;
  priority: Priority;
  updated_at: number;
  running: boolean;
  /** the best-matching passage of the body or history as plain text (the body's start when only the title matched) */
  snippet: string;
  /** the same passage cut into matched and unmatched parts, for highlighting */
  snippet_parts: SnippetPart[];
}

export interface SearchResult {
  total: number;
  /** how hits are ordered: by relevance, or newest first when there are more than RANK_LIMIT */
  order: 'relevance' | 'newest';
  limit: number;
  offset: number;
  hits: SearchHit[];
}

/**
 * The FTS5 query for what a person typed, or null when it holds no word to look for. Terms are
 * ANDed; each is a quoted string (inner quotes doubled), so FTS5 reads it as text. A word ending
 * in `*` with three characters or more before it is a prefix; any other `*` is text. Words are
 * not prefixes by default: FTS5 reads a word's list of tickets as a stream that a page of hits
 * stops early, but merges a prefix's lists whole first, 10-30 ms for a common one at 100,000
 * tickets (BENCHMARKS.md).
 */
export function ftsQuery(q: string): string | null {
  const terms: string[] = [];
  for (const m of q.slice(0, QUERY_MAX_CHARS).matchAll(/"([^"]+)"|(\S+)/g)) {
    // control characters are never text anyone searches for
    const raw = (m[1] ?? m[2]!).replace(/[\p{Cc}\uE000\uE001]/gu, ' ').trim();
    const stem = m[2] !== undefined && raw.endsWith('*') ? raw.replace(/\*+$/, '') : null;
    const term = stem ?? raw;
    if (!/[\p{L}\p{N}]/u.test(term)) continue;
    const prefix = stem !== null && [...stem].length >= 3;
    terms.push(`"${term.replace(/"/g, '""')}"${prefix ? '*' : ''}`);
    if (terms.length === QUERY_MAX_TERMS) break;
  }
  return terms.length ? terms.join(' ') : null;
}

/** Splits an FTS5 snippet at its markers; a stray marker in the text itself can never unbalance the result. */
export function snippetParts(raw: string): SnippetPart[] {
  const parts: SnippetPart[] = [];
  let match = false;
  for (const piece of raw
    .replace(/\s+/g, ' ')
    .trim()
    .split(/([\uE000\uE001])/)) {
    if (piece === OPEN) match = true;
    else if (piece === CLOSE) match = false;
    else if (piece) {
      const last = parts[parts.length - 1];
      if (last && last.match === match) last.text += piece;
      else parts.push({ text: piece, match });
    }
  }
  return parts;
}

interface Passages {
  id: number;
  title: string;
  body: string;
  history: string;
}

interface HitRow {
  id: number;
  number: number;
  title: string;
  column_id: string;
  column_name: string | null;
  priority: Priority;
  updated_at: number;
  claimed_by_run: string | null;
  abbreviation: string;
  project_name: string;
}

/**
 * Costs, measured at 100,000 tickets (BENCHMARKS.md): FTS5 reads a term's whole list of documents
 * for every statement that matches it, even to find one row, so a search runs a fixed, small number
 * of statements (count, page, snippets), never one per hit.
 */
export function searchTickets(db: Db, input: SearchInput): SearchResult {
  if (typeof input.q !== 'string') throw new UserError('q must be a string', 'q');
  if (input.q.length > QUERY_MAX_CHARS) throw new UserError(`q is longer than ${QUERY_MAX_CHARS} characters`, 'q');
  const match = ftsQuery(input.q);
  if (!match) throw new UserError('q must contain a word or number to search for', 'q');
  const limit = Math.min(Math.max(input.limit ?? 20, 1), SEARCH_PAGE_MAX);
  const offset = Math.max(input.offset ?? 0, 0);
  const args: Record<string, string | number> = { match, limit, offset };
  // Filters never read ticket rows (their bodies come first), only indexes of project, column and
  // id. A filter is the list of the ticket ids it keeps, which SQLite builds once per statement
  // (cheap to probe, costly to build past IN_LIST_MAX ids), or, for a bigger column, one index seek
  // per match. The unary + keeps SQLite from handing the list to FTS5 as one lookup per id.
  // Archived tickets are not in the index at all.
  let filter = '';
  if (input.project !== undefined && input.project !== '') {
    const project = getProject(db, input.project);
    if (input.column && !getColumns(db, project.id).some((c) => c.column_id === input.column)) {
      throw new UserError(`unknown column "${input.column}" in project ${project.abbreviation}`, 'column');
    }
    args.project = project.id;
    if (input.column) args.column = input.column;
    const ids = input.column
      ? 'FROM tickets INDEXED BY tickets_board_counts WHERE project_id = @project AND archived_at IS NULL AND column_id = @column'
      : 'FROM tickets INDEXED BY tickets_board_counts WHERE project_id = @project';
    const seek = `EXISTS (SELECT 1 FROM tickets t INDEXED BY tickets_board_counts
                  WHERE t.project_id = @project AND t.archived_at IS NULL AND t.column_id = @column AND t.id = s.rowid)`;
    filter = input.column && countIds(db, ids, args) > IN_LIST_MAX ? ` AND ${seek}` : ` AND +s.rowid IN (SELECT id ${ids})`;
  } else if (input.column) {
    args.column = input.column;
    const ids = 'FROM tickets INDEXED BY tickets_search_column WHERE column_id = @column';
    const seek = 'EXISTS (SELECT 1 FROM tickets t INDEXED BY tickets_search_column WHERE t.column_id = @column AND t.id = s.rowid)';
    filter = countIds(db, ids, args) > IN_LIST_MAX ? ` AND ${seek}` : ` AND +s.rowid IN (SELECT id ${ids})`;
  }
  const where = `WHERE ticket_search MATCH @match${filter}`;
  const total = db.prepare(`SELECT COUNT(*) FROM ticket_search s ${where}`).pluck().get(args) as number;
  // bm25 is computed only for the rows the filters keep, then sorted: bounded by RANK_LIMIT
  const order = total > RANK_LIMIT ? 'newest' : 'relevance';
  // the title highlighted whole; a passage of the body and of the history, the one with a match shown
  const marked = (fn: string, column: number) =>
    `${fn}(ticket_search, ${column}, '${OPEN}', '${CLOSE}'${fn === 'snippet' ? `, '…', ${SNIPPET_TOKENS}` : ''})`;
  const passages = `${marked('highlight', 0)} AS title, ${marked('snippet', 1)} AS body, ${marked('snippet', 2)} AS history`;
  let page: Passages[] = [];
  if (offset < total && order === 'newest') {
    // in rowid order FTS5 stops after the page: one statement, whose snippets are for the page only
    // (rows skipped by OFFSET cost under a microsecond each)
    page = db
      .prepare(`SELECT s.rowid AS id, ${passages} FROM ticket_search s ${where} ORDER BY s.rowid DESC LIMIT @limit OFFSET @offset`)
      .all(args) as Passages[];
  } else if (offset < total) {
    const ids = db
      .prepare(`SELECT s.rowid FROM ticket_search s ${where} ORDER BY ${RANK} LIMIT @limit OFFSET @offset`)
      .pluck()
      .all(args) as number[];
    const found = new Map(
      (
        db
          .prepare(
            `SELECT s.rowid AS id, ${passages} FROM ticket_search s
             WHERE ticket_search MATCH @match AND s.rowid BETWEEN @low AND @high AND +s.rowid IN (SELECT value FROM json_each(@ids))`,
          )
          .all({ match, low: Math.min(...ids), high: Math.max(...ids), ids: JSON.stringify(ids) }) as Passages[]
      ).map((r) => [r.id, r]),
    );
    page = ids.map((id) => found.get(id) ?? { id, title: '', body: '', history: '' });
  }
  const row = db.prepare(
    `SELECT t.id, t.number, t.title, t.column_id, t.priority, t.updated_at, t.claimed_by_run,
            p.abbreviation, p.name AS project_name, pc.name AS column_name
     FROM tickets t JOIN projects p ON p.id = t.project_id
     LEFT JOIN project_columns pc ON pc.project_id = t.project_id AND pc.column_id = t.column_id
     WHERE t.id = ?`,
  );
  const hits = page.map((found): SearchHit => {
    const r = row.get(found.id) as HitRow;
    const hasMatch = (text: string | null) => Boolean(text?.includes(OPEN));
    const passage = [found.body, found.history].find(hasMatch) ?? (found.body || found.history || '');
    const parts = snippetParts(passage);
    return {
      key: `${r.abbreviation}-${r.number}`,
      project: r.abbreviation,
      project_name: r.project_name,
      number: r.number,
      title: r.title,
      title_parts: found.title ? snippetParts(found.title) : [{ text: r.title, match: false }],
      column_id: r.column_id,
      column_name: r.column_name ?? r.column_id,
      priority: r.priority,
      updated_at: r.updated_at,
      running: r.claimed_by_run !== null,
      snippet: parts.map((p) => p.text).join(''),
      snippet_parts: parts,
    };
  });
  return { total, order, limit, offset, hits };
}

function countIds(db: Db, from: string, args: Record<string, string | number>): number {
  const { project, column } = args;
  return db
    .prepare(`SELECT COUNT(*) ${from}`)
    .pluck()
    .get(project === undefined ? { column } : { project, column }) as number;
}

/** What the search page offers as filters: registered projects, and the columns in use (a project's own when one is chosen). */
export function searchFilters(
  db: Db,
  projectId: number | null,
): { projects: { abbreviation: string; name: string }[]; columns: { id: string; name: string }[] } {
  const projects = db
    .prepare(`SELECT abbreviation, name FROM projects WHERE status != 'unregistered' AND abbreviation IS NOT NULL ORDER BY name`)
    .all() as { abbreviation: string; name: string }[];
  const columns =
    projectId === null
      ? (db
          .prepare(`SELECT column_id AS id, MIN(name) AS name FROM project_columns GROUP BY column_id ORDER BY MIN(position), column_id`)
          .all() as { id: string; name: string }[])
      : getColumns(db, projectId).map((c) => ({ id: c.column_id, name: c.name }));
  return { projects, columns };
}
