// Inbox speed with a big backlog: 10,000 tickets the person filed into human themselves and 50
// that agents parked there (10 projects), seeded straight into the database with the history rows
// the product writes (so the parked_by trigger fills in who parked each one). Then the inbox, its
// backlog tab, a filtered view and the JSON are requested one after another on a kept-alive
// connection; every page also counts the header badge. The daemon's CPU per request is printed
// beside the wall time: on a machine shared with other work only the CPU figure stays comparable.
import Database from 'better-sqlite3';
import { cpuSchedSeconds, note, percentile, report, settle, startDaemon, tempRoot, timeGets } from './lib.js';
import { seedHome } from './seed.js';

const TIME = { op: '<', value: 50 };
const PRIORITIES = ['low', 'normal', 'normal', 'high', 'urgent'];

export function seedInbox(paths, projectIds, backlog, needs) {
  const db = new Database(paths.db);
  const ticket = db.prepare(
    `INSERT INTO tickets (project_id, number, title, body, column_id, priority, tags, created_by, created_at, updated_at, column_entered_at)
     VALUES (?, ?, ?, ?, 'human', ?, '[]', 'human', ?, ?, ?)`,
  );
  const comment = db.prepare(
    `INSERT INTO comments (ticket_id, type, author, body, from_column, to_column, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const numbers = new Map(projectIds.map((id) => [id, 0]));
  let clock = Date.now() - 30 * 86400_000;
  const file = (i) => {
    const projectId = projectIds[i % projectIds.length];
    const number = numbers.get(projectId) + 1;
    numbers.set(projectId, number);
    clock += 60_000;
    const title = `ticket ${i}: a backlog idea with a title of ordinary length`;
    const body = `## What\n${title}\n`.repeat(5);
    return Number(ticket.run(projectId, number, title, body, PRIORITIES[i % 5], clock, clock, clock).lastInsertRowid);
  };
  db.transaction(() => {
    for (let i = 0; i < backlog; i++) comment.run(file(i), 'move', 'human', 'created', null, 'human', clock);
    for (let i = 0; i < needs; i++) {
      const id = file(backlog + i);
      comment.run(id, 'move', 'human', 'created', null, 'coding-agent', clock);
      comment.run(
        id,
        'block',
        `coding-agent:run-${i}`,
        'Which currency should the export use?\nThe spec names two.',
        null,
        null,
        clock + 1,
      );
      comment.run(id, 'move', `coding-agent:run-${i}`, '', 'coding-agent', 'human', clock + 2);
    }
    for (const [id, n] of numbers) db.prepare(`UPDATE projects SET next_ticket_number = ? WHERE id = ?`).run(n + 1, id);
  }).immediate();
  db.close();
}

export async function inbox({
  requests = Number(process.env.BENCH_PAGE_REQUESTS ?? 100),
  backlog = Number(process.env.BENCH_INBOX_BACKLOG ?? 10_000),
  needs = Number(process.env.BENCH_INBOX_NEEDS ?? 50),
} = {}) {
  console.log(`\ninbox speed (${backlog} backlog tickets and ${needs} that need the person, 10 projects, ${requests} requests per page)`);
  const root = tempRoot('pd-bench-inbox-');
  const t = Date.now();
  const { paths, projectIds } = seedHome(root, { projects: 10, status: 'dormant' });
  seedInbox(paths, projectIds, backlog, needs);
  note(`seeded in ${((Date.now() - t) / 1000).toFixed(1)} s; projects are dormant so no agent starts while pages are timed`);
  const d = await startDaemon(root);
  note(`daemon settled ${(await settle(d)).toFixed(1)} s after answering`);
  try {
    const first = await fetch(`${d.url}/api/inbox?limit=1`).then((r) => r.json());
    if (first.total !== needs) throw new Error(`the inbox counts ${first.total} tickets that need the person, not ${needs}`);
    const targets = [
      { name: 'inbox page /inbox', path: '/inbox' },
      { name: 'backlog tab /inbox?tab=backlog', path: '/inbox?tab=backlog' },
      { name: 'backlog tab, page 100', path: '/inbox?tab=backlog&page=100' },
      { name: 'filtered /inbox?tab=backlog&project=p3&priority=high', path: '/inbox?tab=backlog&project=p3&priority=high' },
      { name: 'inbox JSON /api/inbox', path: '/api/inbox' },
      { name: 'backlog JSON /api/inbox?tab=backlog', path: '/api/inbox?tab=backlog' },
    ];
    for (const p of targets) {
      const probe = await timeGets(d.url + p.path, 1);
      if (probe.last.status !== 200) throw new Error(`${p.path} answered ${probe.last.status}`);
      await timeGets(d.url + p.path, 5); // warm-up
      const cpu = cpuSchedSeconds(d.pid);
      const { times, last } = await timeGets(d.url + p.path, requests);
      report('inbox', `${p.name}, p50`, percentile(times, 50), 'ms');
      report('inbox', `${p.name}, p95`, percentile(times, 95), 'ms', TIME);
      // the daemon's own CPU per request: unlike the wall time, it does not grow on a busy machine
      report('inbox', `${p.name}, daemon CPU per request`, ((cpuSchedSeconds(d.pid) - cpu) * 1000) / requests, 'ms');
      report('inbox', `${p.name}, size`, last.bytes / 1024, 'KB');
    }
  } finally {
    await d.stop();
  }
}
