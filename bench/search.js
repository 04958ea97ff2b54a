// Search at scale: 100,000 tickets with varied text (a vocabulary of a few thousand words in a
// Zipf distribution, identifiers and paths in the bodies, a few history rows each), written
// through the real triggers of the search index; then /api/search and the /search page are
// requested one after another on a kept-alive connection with a mix of queries: words taken from
// a ticket's title (finding a ticket you remember, some as a prefix), single words drawn like the
// text itself, and both with a project or column filter. The time is the client's, an upper bound
// of the server's.
// Last, the database is rewound to before search and migrated, timing migration 7's indexing.
import path from 'node:path';
import Database from 'better-sqlite3';
import { cpuSchedSeconds, note, percentile, report, settle, startDaemon, tempRoot, timeGets } from './lib.js';
import { seedHome } from './seed.js';
import { openDb } from '../dist/lib/db/connection.js';
import { migrate, migrations } from '../dist/lib/db/migrations.js';

const TIME = { op: '<', value: 50 };
const AGENT_COLUMNS = ['coding-agent', 'code-reviewer', 'security-reviewer'];
const COMMON = (
  'add fix refactor payment invoice export login cache report search upload webhook retry timeout audit currency session token ' +
  'parser migration schema button modal dropdown avatar profile settings billing refund coupon discount checkout cart shipping ' +
  'address email notification queue worker cron backup restore deploy docker nginx certificate memory leak crash performance ' +
  'latency index query database sqlite postgres redis the a to of and in for on with when is not should after before page user ' +
  'error test tests build api endpoint handler config file order customer product admin dashboard mobile layout style dark mode'
).split(' ');

/** A deterministic generator, so every run searches the same text. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function vocabulary(rand, size) {
  const syllables = 'ka lo mi ne ru ta vo shi pen dar gel fon tri bas quo lum zer hex vin mor cal pid sol yar'.split(' ');
  const words = new Set(COMMON);
  while (words.size < size) {
    const n = 2 + Math.floor(rand() * 3);
    let w = '';
    for (let i = 0; i < n; i++) w += syllables[Math.floor(rand() * syllables.length)];
    words.add(w);
  }
  return [...words];
}

/** Draws words with probability ~ 1/rank, the shape of natural text. */
function zipf(rand, words) {
  const weights = words.map((_, i) => 1 / (i + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative = [];
  let acc = 0;
  for (const w of weights) cumulative.push((acc += w / total));
  return () => {
    const x = rand();
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return words[lo];
  };
}

function seedTickets(dbPath, projectIds, count, rand, word) {
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  const sentence = (n) => Array.from({ length: n }, word).join(' ');
  const ident = () => `${word()}${word().replace(/^./, (c) => c.toUpperCase())}`;
  const insertTicket = db.prepare(
    `INSERT INTO tickets (project_id, number, title, body, column_id, priority, tags, created_by, created_at, updated_at, column_entered_at)
     VALUES (?, ?, ?, ?, ?, ?, '[]', 'human', ?, ?, ?)`,
  );
  const insertComment = db.prepare(
    `INSERT INTO comments (ticket_id, type, author, body, from_column, to_column, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const numbers = new Map(projectIds.map((id) => [id, 0]));
  const titles = [];
  let clock = Date.now() - 365 * 86400_000;
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const projectId = projectIds[i % projectIds.length];
      const number = numbers.get(projectId) + 1;
      numbers.set(projectId, number);
      clock += 60_000;
      const title = sentence(4 + Math.floor(rand() * 6));
      const body =
        `## What\n${sentence(20 + Math.floor(rand() * 60))}.\n\nSee \`lib/${word()}/${ident()}.ts\` and \`${ident()}()\`.\n\n` +
        `## Why\n${sentence(20 + Math.floor(rand() * 100))}.`;
      // the shares bench/seed.js uses: most tickets are done, a few wait for you or an agent
      const r = Math.floor(rand() * 100);
      const column = r < 6 ? 'human' : r < 9 ? AGENT_COLUMNS[r - 6] : 'done';
      const id = Number(
        insertTicket.run(projectId, number, title, body, column, ['low', 'normal', 'high', 'urgent'][i % 4], clock, clock, clock)
          .lastInsertRowid,
      );
      insertComment.run(id, 'move', 'human', 'created', null, 'coding-agent', clock);
      const notes = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < notes; k++)
        insertComment.run(
          id,
          k % 2 ? 'comment' : 'journal',
          'coding-agent:seed',
          sentence(10 + Math.floor(rand() * 50)),
          null,
          null,
          clock + k + 1,
        );
      insertComment.run(id, 'move', 'coding-agent:seed', '', 'coding-agent', column, clock + 10);
      titles.push({ title, project: `p${i % projectIds.length}` });
    }
    for (const [id, n] of numbers) db.prepare(`UPDATE projects SET next_ticket_number = ? WHERE id = ?`).run(n + 1, id);
  }).immediate();
  db.close();
  return titles;
}

function queries(rand, word, rank, titles, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = rand();
    const t = titles[Math.floor(rand() * titles.length)];
    // the words that tell this ticket apart: the rarest of its title first
    const words = [...new Set(t.title.split(' '))].sort((a, b) => rank.get(b) - rank.get(a));
    let q;
    if (r < 0.6) {
      // one or two words remembered from a title, the second maybe only begun (a prefix: word*)
      const b = words[1] ?? words[0];
      q = rand() < 0.5 ? words[0] : `${words[0]} ${rand() < 0.5 ? `${b.slice(0, Math.max(3, b.length - 2))}*` : b}`;
    } else {
      // a single word drawn like the text itself: often one that is in thousands of tickets
      q = word();
    }
    const filter = rand();
    const params = new URLSearchParams({ q });
    if (filter < 0.15) params.set('project', t.project);
    else if (filter < 0.25) params.set('column', ['human', ...AGENT_COLUMNS, 'done'][Math.floor(rand() * 5)]);
    out.push(params.toString());
  }
  return out;
}

export async function search({
  tickets = Number(process.env.BENCH_SEARCH_TICKETS ?? 100_000),
  requests = Number(process.env.BENCH_SEARCH_QUERIES ?? 200),
} = {}) {
  console.log(`\nsearch at scale (${tickets} tickets in 20 projects, ${requests} queries per endpoint)`);
  const root = tempRoot('pd-bench-search-');
  const t = Date.now();
  const { paths, projectIds } = seedHome(root, { projects: 20, status: 'dormant' });
  const rand = rng(20261125);
  const words = vocabulary(rand, 5000);
  const word = zipf(rand, words);
  const titles = seedTickets(path.join(paths.home, 'tasks.db'), projectIds, tickets, rand, word);
  note(`seeded through the index triggers in ${((Date.now() - t) / 1000).toFixed(1)} s (${root})`);
  const d = await startDaemon(root);
  note(`daemon settled ${(await settle(d)).toFixed(1)} s after answering`);
  try {
    const mix = queries(rand, word, new Map(words.map((w, i) => [w, i])), titles, requests);
    for (const target of [
      { name: 'search JSON /api/search', base: '/api/search?' },
      { name: 'search page /search', base: '/search?' },
    ]) {
      const times = [];
      const totals = [];
      for (const q of mix.slice(0, 10)) await timeGets(d.url + target.base + q, 1); // warm-up
      const cpu = cpuSchedSeconds(d.pid);
      for (const q of mix) {
        const {
          times: [ms],
          last,
        } = await timeGets(d.url + target.base + q, 1);
        if (last.status !== 200) throw new Error(`${target.base}${q} answered ${last.status}`);
        times.push(ms);
      }
      const cpuMs = ((cpuSchedSeconds(d.pid) - cpu) * 1000) / mix.length;
      if (target.base.startsWith('/api')) {
        for (const q of mix) totals.push((await d.api('GET', `/api/search?${q}&limit=1`)).body.total);
        note(`matches per query: median ${percentile(totals, 50)}, p95 ${percentile(totals, 95)}, max ${Math.max(...totals)}`);
        const slowest = mix
          .map((q, i) => ({ q, ms: times[i], total: totals[i] }))
          .sort((a, b) => b.ms - a.ms)
          .slice(0, 5);
        const label = (x) => `${decodeURIComponent(x.q.replace(/\+/g, ' '))} (${x.total} matches) ${x.ms.toFixed(0)} ms`;
        note(`slowest: ${slowest.map(label).join('; ')}`);
      }
      report('search', `${target.name}, ${tickets} tickets, p50`, percentile(times, 50), 'ms');
      report('search', `${target.name}, ${tickets} tickets, p95`, percentile(times, 95), 'ms', TIME);
      // the daemon's own CPU per request: what a busy machine's waiting for a CPU adds is not in it
      report('search', `${target.name}, daemon CPU per request (mean)`, cpuMs, 'ms');
    }
    // the worst case, for the record: the most frequent word, in nearly every ticket
    const worst = await timeGets(`${d.url}/api/search?q=${COMMON[0]}`, 20);
    const total = (await d.api('GET', `/api/search?q=${COMMON[0]}&limit=1`)).body.total;
    report('search', `worst case: "${COMMON[0]}" (${total} matches, newest first), p95`, percentile(worst.times, 95), 'ms');
  } finally {
    await d.stop();
  }
  // the one-time cost of upgrading: the same database rewound to the version before search, then
  // migrated, so migration 7 indexes every ticket and its history at once
  const db = new Database(path.join(paths.home, 'tasks.db'));
  const made = db.prepare(
    `SELECT type, name FROM sqlite_master
     WHERE type IN ('trigger', 'view', 'index') AND (name LIKE 'ticket_search%' OR name = 'tickets_search_column')`,
  );
  for (const { type, name } of made.all()) db.exec(`DROP ${type.toUpperCase()} ${name}`);
  const before = Math.max(...migrations.filter((m) => m.version < 7).map((m) => m.version));
  db.exec(`DROP TABLE ticket_search; PRAGMA user_version = ${before}`);
  db.close();
  const start = Date.now();
  const migrated = openDb(path.join(paths.home, 'tasks.db'));
  const applied = migrate(migrated);
  migrated.close();
  if (applied.join() !== '7') throw new Error(`expected migration 7 alone, applied ${applied.join(', ')}`);
  report('search', `migration 7 indexing ${tickets} existing tickets (once, at the upgrade)`, (Date.now() - start) / 1000, 's');
}
