// ticket.cjs start-up cost: the wall time of `ticket.cjs read` and `ticket.cjs move` against
// `node -e ''` in the same run, interleaved so machine load hits all of them alike. Both run as an
// agent does, proving a live run with its secret (each move from a fresh run: a move ends a run's
// rights). The floors are timed too: loading better-sqlite3, opening the database and running one
// query (what any SQLite-backed tool pays on Node 20, which has no built-in SQLite), and, for the
// dispatch CLI, Node loading yargs.
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openDb } from '../dist/lib/db/connection.js';
import { createStore } from '../dist/lib/store.js';
import { finalizeRun, issueRunSecret, reserveRun } from '../dist/lib/runs.js';
import { moveTicket, requireTicket } from '../dist/lib/tickets.js';
import { dispatchBin, note, percentile, repoRoot, report, tempRoot, ticketBin } from './lib.js';
import { seedHome } from './seed.js';

const RATIO = { op: '<=', value: 1.2 };

export async function ticketcli({ runs = Number(process.env.BENCH_TICKETCLI_RUNS ?? 30) } = {}) {
  console.log(`\nticket.cjs wall time vs node -e '' (${runs} interleaved runs each)`);
  const root = tempRoot('pd-bench-ticketcli-');
  const { paths } = seedHome(root, { projects: 1, ticketsPerProject: 20, status: 'dormant' });
  const env = { PATH: process.env.PATH, DISPATCH_DB_PATH: paths.db };
  // runs are reserved and given their secret by the daemon's own functions; no daemon runs here
  const db = openDb(paths.db);
  const store = createStore(db);
  db.prepare(`UPDATE projects SET status = 'active' WHERE abbreviation = 'p0'`).run();
  const caps = { global: 1e6, perProject: 1e6, parallelCoding: true, perTicket: 1e6 };
  const startRun = (key, column) => {
    const r = reserveRun(store, { ticketId: requireTicket(db, key).id, columnId: column, agentTypeId: column, model: 'opus', caps });
    if (r.kind !== 'reserved') throw new Error(`could not reserve a run on ${key}: ${r.kind}`);
    return { id: r.run.id, secret: issueRunSecret(db, r.run.id) };
  };
  // p0-7 waits in code-reviewer (see seed.js): its run reads; p0-1 starts in human and goes human → coding-agent → human
  const reader = startRun('p0-7', 'code-reviewer');
  let mover = null;
  const nextMover = () => {
    if (mover) finalizeRun(store, mover.id, { status: 'success', exitCode: 0, error: null }, { circuitBreakerMaxRuns: 1e6, maxRetries: 0 });
    moveTicket(store, 'p0-1', 'coding-agent', { actor: 'human' });
    mover = startRun('p0-1', 'coding-agent');
    return mover.secret;
  };
  const time = (args, options = {}) => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', ...options, env: { ...env, ...options.env } });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
    return ms;
  };
  const cases = {
    "node -e ''": () => time(['-e', '']),
    'node -e "require(\'better-sqlite3\')"': () => time(['-e', "require('better-sqlite3')"], { cwd: path.dirname(ticketBin) }),
    // the floor of any SQLite-backed command: load the addon, open the database, run one query
    'better-sqlite3 open + one query': () =>
      time(['-e', "new (require('better-sqlite3'))(process.env.DISPATCH_DB_PATH, { fileMustExist: true }).prepare('SELECT 1').get()"], {
        cwd: path.dirname(ticketBin),
      }),
    // the floor of the dispatch CLI: Node loading yargs, its argument parser
    'node -e "import(\'yargs\')"': () => time(['--input-type=module', '-e', "await import('yargs')"], { cwd: repoRoot }),
    'dispatch --version': () => time([dispatchBin, '--version']),
    'ticket.cjs read': () => time([ticketBin, 'read', 'p0-1'], { env: { DISPATCH_RUN_SECRET: reader.secret } }),
    'ticket.cjs move': () => {
      const secret = nextMover(); // not timed
      return time([ticketBin, 'move', 'p0-1', 'human'], { env: { DISPATCH_RUN_SECRET: secret } });
    },
  };
  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (const fn of Object.values(cases)) fn(); // warm the file cache
  for (let i = 0; i < runs; i++) for (const [k, fn] of Object.entries(cases)) times[k].push(fn());
  const base = percentile(times["node -e ''"], 50);
  for (const [k, list] of Object.entries(times)) report('ticketcli', `${k}, median wall time`, percentile(list, 50), 'ms');
  report('ticketcli', "ticket.cjs read / node -e '' (medians)", percentile(times['ticket.cjs read'], 50) / base, 'x', RATIO);
  report('ticketcli', "ticket.cjs move / node -e '' (medians)", percentile(times['ticket.cjs move'], 50) / base, 'x', RATIO);
  report(
    'ticketcli',
    "require('better-sqlite3') alone / node -e ''",
    percentile(times['node -e "require(\'better-sqlite3\')"'], 50) / base,
    'x',
  );
  report(
    'ticketcli',
    "better-sqlite3 open + one query / node -e '' (the floor)",
    percentile(times['better-sqlite3 open + one query'], 50) / base,
    'x',
  );
  report(
    'ticketcli',
    'ticket.cjs read above that floor (medians)',
    percentile(times['ticket.cjs read'], 50) - percentile(times['better-sqlite3 open + one query'], 50),
    'ms',
  );
  report('ticketcli', "dispatch --version / node -e ''", percentile(times['dispatch --version'], 50) / base, 'x');
  report(
    'ticketcli',
    "node -e \"import('yargs')\" / node -e '' (the CLI's floor)",
    percentile(times['node -e "import(\'yargs\')"'], 50) / base,
    'x',
  );
  note('move runs without DISPATCH_PORT here (no daemon to ping); a move into done adds one local HTTP request');
  db.close();
}
