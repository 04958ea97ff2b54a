// A move pushed to an open board page: a client holds the page's event stream (/events, as the
// page's EventSource does) while one ticket is moved back and forth, one move at a time, through
// two paths: the API (from the request's start, and from its answer, to the event) and a write by
// another process (this one, on its own SQLite connection, as ticket.cjs writes a move: from the
// commit to the event). A random pause before each move keeps the samples from falling in step
// with the daemon's poll. Before that, what the poll costs an idle daemon while a page listens.
import http from 'node:http';
import Database from 'better-sqlite3';
import { cpuSchedSeconds, note, percentile, report, settle, sleep, startDaemon, tempRoot } from './lib.js';

const TARGET = { op: '<', value: 200 };
const IDLE_WINDOW_MS = 10_000;

/** Opens /events and calls `onTicket(ticket, receivedAt)` for every ticket of every event. */
function openStream(port, onTicket) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`/events answered ${res.statusCode}`));
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk) => {
        const at = performance.now();
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (!data) continue;
          for (const t of JSON.parse(data.slice(6)).tickets ?? []) onTicket(t, at);
        }
      });
      res.on('error', () => {});
      resolve(() => req.destroy());
    });
    req.on('error', reject);
  });
}

export async function live({ samples = Number(process.env.BENCH_LIVE_MOVES ?? 100) } = {}) {
  console.log(`\na move pushed to an open board page (${samples} moves per path, one at a time)`);
  const root = tempRoot('pd-bench-live-');
  const d = await startDaemon(root);
  try {
    await d.project('live', 'live', 'personal');
    const created = await d.api('POST', '/api/tickets', { project: 'live', title: 'moved back and forth' });
    if (created.status !== 201) throw new Error(JSON.stringify(created.body));
    const key = created.body.ticket.key;
    await settle(d);
    // the poll's own cost: the daemon's CPU over an idle window without a page, then with one listening
    const idleCpu = async () => {
      const before = cpuSchedSeconds(d.pid);
      await sleep(IDLE_WINDOW_MS);
      return ((cpuSchedSeconds(d.pid) - before) * 3600_000) / IDLE_WINDOW_MS;
    };
    const alone = await idleCpu();
    const quiet = await openStream(d.port, () => {});
    const listened = await idleCpu();
    quiet();
    report('live', 'idle daemon: CPU per hour with no page open', alone, 's/h');
    report('live', 'idle daemon: CPU per hour with one live page open (the poll)', listened, 's/h');
    let waiting = null;
    const close = await openStream(d.port, (t, at) => {
      if (waiting && t.key === key && t.column === waiting.column) {
        waiting.resolve(at);
        waiting = null;
      }
    });
    const arrival = (column) => new Promise((resolve) => (waiting = { column, resolve }));
    const db = new Database(d.dbPath);
    db.pragma('busy_timeout = 5000');
    const ticketId = db.prepare(`SELECT t.id FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = 'live'`).get().id;
    const update = db.prepare(`UPDATE tickets SET column_id = ?, column_entered_at = ?, updated_at = ? WHERE id = ?`);
    const history = db.prepare(
      `INSERT INTO comments (ticket_id, type, author, body, from_column, to_column, created_at)
       VALUES (?, 'move', 'bench-agent', '', ?, ?, ?)`,
    );
    let column = 'human';
    const next = () => (column = column === 'human' ? 'done' : 'human');
    const paths = {
      api: async () => {
        const from = column;
        const to = next();
        const came = arrival(to);
        const t0 = performance.now();
        const res = await d.api('POST', `/api/tickets/${key}/move`, { column: to });
        const answered = performance.now();
        if (res.status !== 200) throw new Error(`move ${from} → ${to}: ${JSON.stringify(res.body)}`);
        const at = await came;
        return { fromStart: at - t0, fromAnswer: Math.max(0, at - answered) };
      },
      process: async () => {
        const from = column;
        const to = next();
        const came = arrival(to);
        db.transaction(() => {
          const now = Date.now();
          update.run(to, now, now, ticketId);
          history.run(ticketId, from, to, now);
        }).immediate();
        const committed = performance.now();
        return { fromCommit: (await came) - committed };
      },
    };
    for (const [name, move] of Object.entries(paths)) {
      await move(); // warm-up, not counted
      const rows = [];
      for (let i = 0; i < samples; i++) {
        await sleep(Math.random() * 100);
        rows.push(await move());
      }
      if (name === 'api') {
        const fromStart = rows.map((r) => r.fromStart);
        const fromAnswer = rows.map((r) => r.fromAnswer);
        report('live', 'API: move answered → event at the page, p50', percentile(fromAnswer, 50), 'ms');
        report('live', 'API: move answered → event at the page, p95', percentile(fromAnswer, 95), 'ms', TARGET);
        report('live', 'API: move request sent → event at the page, p95', percentile(fromStart, 95), 'ms');
      } else {
        const fromCommit = rows.map((r) => r.fromCommit);
        report('live', 'another process: commit → event at the page, p50', percentile(fromCommit, 50), 'ms');
        report('live', 'another process: commit → event at the page, p95', percentile(fromCommit, 95), 'ms', TARGET);
        report('live', 'another process: commit → event at the page, max', Math.max(...fromCommit), 'ms');
      }
    }
    note('the daemon reads the history every 100 ms while a page listens: 50 ms of that wait on average, 100 ms at most');
    note('"answered": an event that arrived before the API answer counts as 0 ms');
    close();
    db.close();
  } finally {
    await d.stop();
  }
}
