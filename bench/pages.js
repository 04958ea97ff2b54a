// Page speed at scale: 100 projects, one of them with 10,000 tickets, seeded straight into the
// database; then the board and inbox (JSON now, HTML pages once they exist) are requested one
// after another on a kept-alive connection. The time is the client's (request sent to last byte)
// on 127.0.0.1, an upper bound of the server's time.
import { note, percentile, report, settle, startDaemon, tempRoot, timeGets } from './lib.js';
import { seedHome } from './seed.js';

const TIME = { op: '<', value: 50 };

export async function pages({
  requests = Number(process.env.BENCH_PAGE_REQUESTS ?? 100),
  bigTickets = Number(process.env.BENCH_BIG_TICKETS ?? 10_000),
  projects = Number(process.env.BENCH_PROJECTS ?? 100),
} = {}) {
  console.log(`\npage speed at scale (${projects} projects, one with ${bigTickets} tickets, ${requests} requests per page)`);
  const root = tempRoot('pd-bench-pages-');
  const t = Date.now();
  seedHome(root, { projects, bigTickets, ticketsPerProject: 50, status: 'dormant' });
  note(`seeded in ${((Date.now() - t) / 1000).toFixed(1)} s; projects are dormant so no agent starts while pages are timed`);
  const d = await startDaemon(root);
  // timed from the daemon's steady state: right after start it backs up the new database first
  note(`daemon settled ${(await settle(d)).toFixed(1)} s after answering`);
  try {
    const targets = [
      { name: 'board JSON /api/projects/big/board', path: '/api/projects/big/board' },
      { name: 'inbox JSON /api/inbox', path: '/api/inbox' },
      { name: 'projects JSON /api/projects', path: '/api/projects', info: true },
      { name: 'board page /projects/big', path: '/projects/big', html: true },
      { name: 'inbox page /inbox', path: '/inbox', html: true },
    ];
    for (const p of targets) {
      const probe = await timeGets(d.url + p.path, 1);
      if (probe.last.status === 404 && p.html) {
        note(`${p.path} answered 404: the HTML page has not landed yet, skipped`);
        continue;
      }
      if (probe.last.status !== 200) throw new Error(`${p.path} answered ${probe.last.status}`);
      await timeGets(d.url + p.path, 5); // warm-up
      const { times, last } = await timeGets(d.url + p.path, requests);
      report('pages', `${p.name}, p50`, percentile(times, 50), 'ms');
      report('pages', `${p.name}, p95`, percentile(times, 95), 'ms', p.info ? null : TIME);
      report(
        'pages',
        `${p.name}, size`,
        last.bytes / 1024,
        'KB',
        p.html && p.path.startsWith('/projects') ? { op: '<', value: 200 } : null,
      );
    }
  } finally {
    await d.stop();
  }
}
