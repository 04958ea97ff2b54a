// The search index on real SQLite files: migration 7 indexes the tickets an older database already
// has, and its triggers keep the index equal to what it should hold (the ticket_search_source view)
// through every kind of write, including ticket.cjs in its own process. Queries typed by a person
// are never FTS5 syntax: hostile ones return results or a 400, never another error.
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { openDb, type Db } from '../lib/db/connection.js';
import { LATEST_VERSION, migrate, migrations, schemaVersion } from '../lib/db/migrations.js';
import { UserError } from '../lib/errors.js';
import { ftsQuery, IN_LIST_MAX, RANK_LIMIT, searchTickets, snippetParts } from '../lib/search.js';
import { addComment, addFinding, addSystemComment, createTicket, moveTicket, updateTicket } from '../lib/tickets.js';
import { makeTestHome, startRun, tempDir, type TestHome } from './helpers/home.js';
import { ticketBin } from './helpers/daemon.js';

/** Fails unless the index holds exactly what the source view says, and FTS5's own check passes. */
function expectInStep(db: Db): void {
  const index = db.prepare(`SELECT rowid AS id, title, body, history FROM ticket_search ORDER BY rowid`).all();
  const source = db.prepare(`SELECT id, title, body, history FROM ticket_search_source ORDER BY id`).all();
  expect(index).toEqual(source);
  db.prepare(`INSERT INTO ticket_search (ticket_search) VALUES ('integrity-check')`).run();
}

const keys = (db: Db, q: string, opts: { project?: string; column?: string } = {}) =>
  searchTickets(db, { q, ...opts }).hits.map((h) => h.key);

describe('migration 7', () => {
  test('indexes the tickets and history an older database already holds', () => {
    const db = openDb(path.join(tempDir(), 'tasks.db'));
    // the database as the release before search left it: every migration below 7 applied
    for (const m of migrations.filter((m) => m.version < 7)) {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
    expect(migrations.map((m) => m.version)).toEqual([...migrations.map((m) => m.version)].sort((a, b) => a - b));
    db.prepare(`INSERT INTO project_types (id, name, builtin, created_at) VALUES ('personal', 'Personal', 1, 0)`).run();
    db.prepare(
      `INSERT INTO projects (name, path, abbreviation, project_type_id, status, created_at, updated_at)
       VALUES ('old', '/old', 'od', 'personal', 'active', 0, 0)`,
    ).run();
    const insert = db.prepare(
      `INSERT INTO tickets (project_id, number, title, body, column_id, created_by, created_at, updated_at, column_entered_at)
       VALUES (1, ?, ?, ?, 'human', 'me', 0, 0, 0)`,
    );
    insert.run(1, 'Invoice totals are wrong', 'The VAT line rounds twice.');
    insert.run(2, 'Login page', 'Nothing about money here.');
    const comment = db.prepare(
      `INSERT INTO comments (ticket_id, type, author, body, title, from_column, to_column, created_at) VALUES (?, ?, 'me', ?, ?, ?, ?, 0)`,
    );
    comment.run(1, 'move', 'created', null, null, 'human');
    comment.run(2, 'move', 'created', null, null, 'human');
    comment.run(2, 'journal', 'Tried the Kerberos setup again', null, null, null);
    comment.run(2, 'finding', 'Session cookie lacks SameSite', 'Cookie flags', null, null);
    comment.run(2, 'claim', 'claimed by run-secret-word', null, null, null);
    expect(schemaVersion(db)).toBe(6);

    expect(migrate(db)).toEqual(migrations.map((m) => m.version).filter((v) => v >= 7));
    expect(schemaVersion(db)).toBe(LATEST_VERSION);
    expectInStep(db);
    expect(keys(db, 'vat rounds')).toEqual(['od-1']);
    expect(keys(db, 'kerberos')).toEqual(['od-2']);
    expect(keys(db, 'samesite')).toEqual(['od-2']);
    expect(keys(db, 'cookie flags')).toEqual(['od-2']);
    // claims and the creation marker are not text anyone looks for
    expect(searchTickets(db, { q: 'secret' }).total).toBe(0);
    expect(searchTickets(db, { q: 'created' }).total).toBe(0);
    expect(migrate(db)).toEqual([]);
    db.close();
  });
});

describe('the triggers keep the index in step', () => {
  let h: TestHome;
  beforeEach(() => {
    h = makeTestHome();
    h.addProject('shop', 'software-dev', 'sh');
    h.addProject('notes', 'personal', 'nt');
  });
  afterEach(() => h.cleanup());

  test('file, edit, comment, find, move, merge note, archive, restore and delete', () => {
    const t = createTicket(h.store, {
      project: 'sh',
      title: 'Coupons above 100% make totals negative',
      body: 'Clamp in `applyCoupon`.',
      createdBy: 'human',
    });
    createTicket(h.store, { project: 'nt', title: 'Buy a new kettle', createdBy: 'human' });
    expectInStep(h.db);
    expect(keys(h.db, 'coupons')).toEqual(['sh-1']);
    expect(keys(h.db, 'applycoupon')).toEqual(['sh-1']);

    updateTicket(h.store, t.key, { title: 'Discounts above 100% make totals negative', body: 'Clamp the discount.' });
    expectInStep(h.db);
    expect(searchTickets(h.db, { q: 'coupons' }).total).toBe(0);
    expect(keys(h.db, 'discounts clamp')).toEqual(['sh-1']);

    addComment(h.store, t.key, 'journal', 'Reproduced with a Zürich storefront', 'coding-agent:run-1');
    addFinding(h.store, t.key, 'high', 'Refund path too', 'refunds skip the clamp', 'security-reviewer:run-2');
    moveTicket(h.store, t.key, 'coding-agent', { actor: 'human', comment: 'please handle the mollusc case' });
    moveTicket(h.store, t.key, 'human', { actor: 'coding-agent:run-3' });
    addSystemComment(h.db, t.id, 'merge', 'Merged as deadbeef', 'merge');
    addSystemComment(h.db, t.id, 'claim', 'claimed by run-zz', 'x');
    expectInStep(h.db);
    // accents fold both ways; findings are found by title and body; move notes too
    expect(keys(h.db, 'zurich')).toEqual(['sh-1']);
    expect(keys(h.db, 'refund path')).toEqual(['sh-1']);
    expect(keys(h.db, 'mollusc')).toEqual(['sh-1']);
    expect(keys(h.db, 'deadbeef')).toEqual(['sh-1']);
    expect(searchTickets(h.db, { q: 'run-zz' }).total).toBe(0);

    h.db.prepare(`UPDATE tickets SET archived_at = 1 WHERE id = ?`).run(t.id);
    expectInStep(h.db);
    expect(searchTickets(h.db, { q: 'zurich' }).total).toBe(0);
    h.db.prepare(`UPDATE tickets SET archived_at = NULL WHERE id = ?`).run(t.id);
    expectInStep(h.db);
    expect(keys(h.db, 'zurich')).toEqual(['sh-1']);

    // a ticket row written without history (only such a row can be deleted: history is append-only)
    const loose = Number(
      h.db
        .prepare(
          `INSERT INTO tickets (project_id, number, title, column_id, created_by, created_at, updated_at, column_entered_at)
           VALUES (?, 99, 'Temporary walrus note', 'human', 'me', 0, 0, 0)`,
        )
        .run(t.project_id).lastInsertRowid,
    );
    expect(keys(h.db, 'walrus')).toEqual(['sh-99']);
    h.db.prepare(`DELETE FROM tickets WHERE id = ?`).run(loose);
    expectInStep(h.db);
    expect(searchTickets(h.db, { q: 'walrus' }).total).toBe(0);
  });

  test('a change that touches neither title nor body leaves the document alone', () => {
    const t = createTicket(h.store, { project: 'sh', title: 'Stable title', body: 'Stable body', createdBy: 'human' });
    const before = h.db.prepare(`SELECT COUNT(*) FROM ticket_search_data`).pluck().get();
    h.db.prepare(`UPDATE tickets SET column_id = 'done', updated_at = updated_at + 1, claimed_by_run = 'r' WHERE id = ?`).run(t.id);
    updateTicket(h.store, t.key, { priority: 'high' });
    expect(h.db.prepare(`SELECT COUNT(*) FROM ticket_search_data`).pluck().get()).toBe(before);
    expectInStep(h.db);
  });

  test("ticket.cjs writes in its own process are indexed by the database's triggers", () => {
    createTicket(h.store, { project: 'sh', title: 'Agent writes', column: 'coding-agent', createdBy: 'human' });
    const { secret } = startRun(h, 'sh-1');
    const env = { PATH: process.env.PATH, DISPATCH_DB_PATH: h.paths.db, DISPATCH_RUN_SECRET: secret };
    const run = (...args: string[]) => spawnSync(process.execPath, [ticketBin, ...args], { env, encoding: 'utf8' });
    expect(run('comment', 'sh-1', 'journal', 'Replaced the flaky quokka fixture').status).toBe(0);
    expect(run('finding', 'sh-1', 'medium', 'Numbat leak', 'the handle is never closed').status).toBe(0);
    expect(run('move', 'sh-1', 'code-reviewer', 'ready: see the wombat test').status).toBe(0);
    expectInStep(h.db);
    for (const word of ['quokka', 'numbat', 'wombat']) expect(keys(h.db, word)).toEqual(['sh-1']);
  });
});

describe('queries', () => {
  let h: TestHome;
  beforeAll(() => {
    h = makeTestHome();
    h.addProject('shop', 'software-dev', 'sh');
    h.addProject('notes', 'personal', 'nt');
    createTicket(h.store, { project: 'sh', title: 'Payment page times out', body: 'The gateway call has no timeout.', createdBy: 'human' });
    createTicket(h.store, {
      project: 'sh',
      title: 'Refactor payments module',
      body: 'Split `payments.ts` in two.',
      column: 'coding-agent',
      createdBy: 'human',
    });
    createTicket(h.store, { project: 'nt', title: 'Pay the electricity bill', body: 'before the 5th', createdBy: 'human' });
    createTicket(h.store, { project: 'sh', title: 'Dark mode', body: 'a UI toggle in the settings; DB unchanged', createdBy: 'human' });
    createTicket(h.store, { project: 'sh', title: '<script>alert(1)</script> in title', body: 'payment <b>bold</b>', createdBy: 'human' });
  });
  afterAll(() => h.cleanup());

  test('words are ANDed whole words, word* is a prefix, phrases in quotes; the title weighs most', () => {
    expect(keys(h.db, 'pay*').sort()).toEqual(['nt-1', 'sh-1', 'sh-2', 'sh-4']);
    expect(keys(h.db, 'pay')).toEqual(['nt-1']);
    expect(keys(h.db, 'payments')).toEqual(['sh-2']);
    // two letters and a star are no prefix: the word "pa" itself
    expect(searchTickets(h.db, { q: 'pa*' }).total).toBe(0);
    expect(keys(h.db, 'payment timeout')).toEqual(['sh-1']);
    expect(keys(h.db, 'ui db')).toEqual(['sh-3']);
    expect(searchTickets(h.db, { q: 'u' }).total).toBe(0);
    expect(keys(h.db, '"gateway call"')).toEqual(['sh-1']);
    expect(searchTickets(h.db, { q: '"call gateway"' }).total).toBe(0);
    // "payment" is in the title of sh-1, and only in the body of sh-4
    expect(keys(h.db, 'payment', { project: 'sh' })).toEqual(['sh-1', 'sh-4']);
    expect(searchTickets(h.db, { q: 'pay*' }).order).toBe('relevance');
  });

  test('project and column filters, total and paging', () => {
    expect(keys(h.db, 'pay*', { project: 'nt' })).toEqual(['nt-1']);
    expect(keys(h.db, 'pay*', { column: 'coding-agent' })).toEqual(['sh-2']);
    expect(keys(h.db, 'pay*', { project: 'sh', column: 'human' }).sort()).toEqual(['sh-1', 'sh-4']);
    const first = searchTickets(h.db, { q: 'pay*', limit: 2 });
    const second = searchTickets(h.db, { q: 'pay*', limit: 2, offset: 2 });
    expect([first.total, first.hits.length, second.hits.length]).toEqual([4, 2, 2]);
    expect(new Set([...first.hits, ...second.hits].map((x) => x.key)).size).toBe(4);
    expect(searchTickets(h.db, { q: 'pay*', offset: 50 }).hits).toEqual([]);
    expect(() => searchTickets(h.db, { q: 'pay', project: 'nt', column: 'coding-agent' })).toThrow(
      /unknown column "coding-agent" in project nt/,
    );
    expect(() => searchTickets(h.db, { q: 'pay', project: 'nope' })).toThrow(/project not found: nope/);
  });

  test('snippets mark the matches and keep the text as text', () => {
    const hit = searchTickets(h.db, { q: 'gateway' }).hits[0]!;
    expect(hit.snippet_parts).toContainEqual({ text: 'gateway', match: true });
    expect(hit.snippet).toBe('The gateway call has no timeout.');
    expect(hit.title_parts).toEqual([{ text: 'Payment page times out', match: false }]);
    // a hit in the title only: the title is highlighted, the passage is the body's start
    const evil = searchTickets(h.db, { q: 'script alert' }).hits[0]!;
    expect(evil.title).toBe('<script>alert(1)</script> in title');
    expect(evil.title_parts.filter((p) => p.match).map((p) => p.text)).toEqual(['script', 'alert', 'script']);
    expect(evil.title_parts.map((p) => p.text).join('')).toBe(evil.title);
    expect(evil.snippet_parts).toEqual([{ text: 'payment <b>bold</b>', match: false }]);
    // a hit in the history shows the history's passage
    addComment(h.store, 'nt-1', 'comment', 'Paid by standing order from now on', 'human');
    expect(searchTickets(h.db, { q: 'standing order' }).hits[0]!.snippet_parts).toEqual([
      { text: 'Paid by ', match: false },
      { text: 'standing', match: true },
      { text: ' ', match: false },
      { text: 'order', match: true },
      { text: ' from now on', match: false },
    ]);
    // a marker character inside the text itself can never leave a highlight open or unbalanced
    expect(snippetParts('a\uE000b\uE000c\uE001\uE001d')).toEqual([
      { text: 'a', match: false },
      { text: 'bc', match: true },
      { text: 'd', match: false },
    ]);
  });

  test('hostile queries are text: results or a clear refusal, never an FTS5 error', () => {
    for (const q of [
      '"',
      '""',
      'AND',
      'OR',
      'NOT',
      '*',
      '-',
      '+',
      '^',
      'NEAR(',
      'NEAR(a b',
      ')',
      '(',
      'a:b',
      '{title}: x',
      'title:pay',
      'pay*',
      '"pay',
      'pay"',
      "'",
      '\\',
      '\u0000',
      'payment AND',
      '- pay',
      'NOT pay',
    ]) {
      try {
        const r = searchTickets(h.db, { q });
        expect(r.total).toBeGreaterThanOrEqual(0);
      } catch (err) {
        expect([q, err instanceof UserError && err.status === 400]).toEqual([q, true]);
      }
    }
    expect(keys(h.db, 'NEAR(pay').length).toBe(0);
    expect(keys(h.db, 'pay**').sort()).toEqual(keys(h.db, 'pay*').sort());
    expect(() => searchTickets(h.db, { q: '*' })).toThrow(/must contain a word/);
    expect(() => searchTickets(h.db, { q: 'x'.repeat(501) })).toThrow(/longer than 500/);
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom('"', '*', '(', ')', ':', '-', '^', '{', '}', 'a', 'N', 'E', 'A', 'R', ' ', 'p', 'é', '\u0000', '\uE000'),
        }),
        (q) => {
          try {
            searchTickets(h.db, { q });
            expect(ftsQuery(q)).not.toBeNull();
          } catch (err) {
            if (!(err instanceof UserError)) throw err;
            expect(ftsQuery(q)).toBeNull();
          }
        },
      ),
      { seed: 20261125, numRuns: 500 },
    );
  });
});

test('a column or project too big for an id list gives the same answers through index seeks; past RANK_LIMIT, newest first', () => {
  const h = makeTestHome();
  try {
    const big = h.addProject('big', 'software-dev', 'bg');
    h.addProject('small', 'personal', 'sm');
    const insert = h.db.prepare(
      `INSERT INTO tickets (project_id, number, title, body, column_id, created_by, created_at, updated_at, column_entered_at)
       VALUES (?, ?, ?, ?, ?, 'me', 0, 0, 0)`,
    );
    const n = IN_LIST_MAX + IN_LIST_MAX / 5;
    h.db.transaction(() => {
      for (let i = 1; i <= n; i++)
        insert.run(big.id, i, `Ticket ${i}`, i % 1000 === 0 ? 'a rare marmot sighting' : 'routine work', i % 10 === 0 ? 'human' : 'done');
    })();
    createTicket(h.store, { project: 'sm', title: 'Marmot outside the window', column: 'done', createdBy: 'human' });
    const done = (q: string, project?: string) => searchTickets(h.db, { q, column: 'done', project, limit: 100 });
    // every thousandth ticket mentions a marmot, and is in human (a multiple of 10)
    expect(searchTickets(h.db, { q: 'marmot', column: 'human' }).total).toBe(Math.floor(n / 1000));
    expect(done('marmot').hits.map((x) => x.key)).toEqual(['sm-1']);
    expect(done('marmot', 'bg').total).toBe(0);
    expect(done('marmot', 'sm').hits.map((x) => x.key)).toEqual(['sm-1']);
    const routine = done('routine', 'bg');
    expect(routine.total).toBe(n - Math.floor(n / 10));
    expect(routine.order).toBe('newest');
    expect(routine.total).toBeGreaterThan(Math.max(RANK_LIMIT, IN_LIST_MAX));
    expect(routine.hits[0]!.key).toBe(`bg-${n - 1}`);
    expect(searchTickets(h.db, { q: 'routine' }).total).toBe(n - Math.floor(n / 1000));
    const newestRoutine = Array.from({ length: 200 }, (_, i) => n - i).filter((i) => i % 1000 !== 0);
    expect(searchTickets(h.db, { q: 'routine', project: 'bg', offset: 100, limit: 5 }).hits.map((x) => x.key)).toEqual(
      newestRoutine.slice(100, 105).map((i) => `bg-${i}`),
    );
  } finally {
    h.cleanup();
  }
});
