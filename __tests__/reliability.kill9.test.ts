// Repeated, seeded `kill -9` of the daemon at random points while tickets flow through research
// and software-dev pipelines. After every round the daemon restarts on the same home;
// at the end no ticket is lost or duplicated, no ticket ever had two live runs, every run was
// finalized exactly once, the caps held at every instant, and the database passes its check.
// RELIABILITY_SEED and RELIABILITY_ROUNDS change the schedule; the seed is printed.
import fs from 'node:fs';
import path from 'node:path';
import { comments, maxOverlap, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { queueCounts } from './helpers/queue.js';

const SEED = Number(process.env.RELIABILITY_SEED ?? 20261125);
const ROUNDS = Number(process.env.RELIABILITY_ROUNDS ?? 20);
const CAPS = { max_concurrent_global: 3, max_concurrent_per_project: 2 };
const CONFIG = { agents: CAPS, heartbeat: { base_interval_seconds: 1, max_interval_seconds: 2, backoff_multiplier: 2 } };

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const nap = (ms: number) => new Promise((r) => setTimeout(r, ms));

test(`${ROUNDS} rounds of kill -9 during a busy pipeline lose nothing and run nothing twice (seed ${SEED})`, async () => {
  const random = prng(SEED);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  let d: EngineDaemon = await startEngineDaemon({ config: CONFIG });
  const root = d.root;
  const created: string[] = [];
  const sleep = () => ({ do: 'sleep', ms: 100 + Math.floor(random() * 600) });
  const research = () =>
    pick([
      { researcher: [sleep(), { do: 'comment', type: 'journal', body: 'read the sources' }, { do: 'move', to: 'done' }] },
      { researcher: [sleep(), { do: 'move', to: 'human', comment: 'which region do you mean?' }] },
      {
        researcher: [
          [sleep(), { do: 'fail', message: '529 overloaded' }],
          [sleep(), { do: 'move', to: 'done' }],
        ],
      },
    ]);
  const software = () => ({
    'coding-agent': [sleep(), { do: 'comment', type: 'journal', body: 'implemented' }, { do: 'move', to: 'code-reviewer' }],
    'code-reviewer': [sleep(), { do: 'move', to: 'security-reviewer', comment: 'fine' }],
    'security-reviewer': [sleep(), { do: 'move', to: 'done' }],
  });
  const file = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const kind = pick(['r0', 'r1', 'sw']);
      const t =
        kind === 'sw'
          ? await d.ticket('sw', 'coding-agent', software(), `feature ${created.length}`)
          : await d.ticket(kind, 'researcher', research(), `question ${created.length}`);
      created.push(t.key);
    }
  };
  let survived = 0;
  try {
    await d.project('lab0', 'research', 'r0');
    await d.project('lab1', 'research', 'r1');
    await d.project('shop', 'software-dev', 'sw');
    await file(12);
    for (let round = 0; round < ROUNDS; round++) {
      // a random point: right after start (recovery), or while agents are mid-run
      await nap(random() < 0.2 ? Math.floor(random() * 50) : 200 + Math.floor(random() * 1500));
      await d.stop('SIGKILL');
      await nap(Math.floor(random() * 400)); // agents keep working (and some finish) while the daemon is down
      d = await startEngineDaemon({ root, config: CONFIG });
      survived++;
      if (round % 4 === 3) await file(2);
    }
    console.log(`kill -9: survived ${survived} of ${ROUNDS} rounds (seed ${SEED}), ${created.length} tickets`);
    await waitFor('every ticket settled', () => created.every((k) => ['done', 'human'].includes(d.ticketRow(k).column_id)), 120_000, 250);
    await waitFor('every run finalized', () => d.runs().every((r) => r.ended_at !== null), 60_000, 250);

    const db = d.db();
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    // no ticket lost or duplicated
    const tickets = db
      .prepare(
        `SELECT p.abbreviation || '-' || t.number AS key, t.title, t.column_id, t.claimed_by_run FROM tickets t JOIN projects p ON p.id = t.project_id`,
      )
      .all() as any[];
    expect(tickets.map((t) => t.key).sort()).toEqual([...created].sort());
    expect(new Set(tickets.map((t) => t.title)).size).toBe(created.length);
    for (const t of tickets) {
      expect(['done', 'human']).toContain(t.column_id);
      expect(t.claimed_by_run).toBeNull();
      if (t.column_id === 'human') {
        const why = comments(d, t.key).filter((c) => c.type !== 'claim' && c.body);
        expect(why.length).toBeGreaterThan(0);
      }
    }
    const runs = d.runs();
    expect(runs.length).toBeGreaterThanOrEqual(created.length);
    expect(runs.filter((r) => r.status === 'queued' || r.status === 'running')).toEqual([]);
    // every run was reserved once (one claim comment) and finalized once: a failure writes exactly
    // one system comment naming the run, a success none, and the log says "finished" at most once
    const claims = db.prepare(`SELECT body FROM comments WHERE type = 'claim'`).all() as { body: string }[];
    const logs = fs
      .readdirSync(path.join(d.home, 'logs'))
      .map((f) => fs.readFileSync(path.join(d.home, 'logs', f), 'utf8'))
      .join('\n');
    const finished = new Map<string, number>();
    for (const line of logs.split('\n')) {
      const m = /"message":"agent run finished".*?"run":"([^"]+)"|"run":"([^"]+)".*?"message":"agent run finished"/.exec(line);
      if (m) finished.set(m[1] ?? m[2]!, (finished.get(m[1] ?? m[2]!) ?? 0) + 1);
    }
    const systemFor = db.prepare(`SELECT COUNT(*) FROM comments WHERE type = 'system' AND body LIKE ?`).pluck();
    for (const r of runs) {
      expect(claims.filter((c) => c.body.includes(` run ${r.id} claimed`))).toHaveLength(1);
      expect(systemFor.get(`% run ${r.id} %`)).toBe(['failed', 'timeout', 'crashed'].includes(r.status) ? 1 : 0);
      expect(finished.get(r.id) ?? 0).toBeLessThanOrEqual(1);
      expect(r.ended_at).toBeGreaterThanOrEqual(r.created_at);
    }
    // no ticket ever had two live runs: its runs' lifetimes never overlap
    const byTicket = new Map<number, any[]>();
    for (const r of runs) byTicket.set(r.ticket_id, [...(byTicket.get(r.ticket_id) ?? []), r]);
    for (const list of byTicket.values()) expect(maxOverlap(list)).toBe(1);
    // the caps held at every instant, across all restarts
    expect(maxOverlap(runs)).toBeLessThanOrEqual(CAPS.max_concurrent_global);
    for (const pid of new Set(runs.map((r) => r.project_id)))
      expect(maxOverlap(runs.filter((r) => r.project_id === pid))).toBeLessThanOrEqual(CAPS.max_concurrent_per_project);
    expect(maxOverlap(runs)).toBeGreaterThan(1); // the pipeline was busy: runs did overlap
    expect(Object.values(await queueCounts(d)).map((q) => q.running)).toEqual([0, 0, 0, 0]);
    const byStatus = runs.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
    console.log(
      `kill -9: ${created.length} tickets settled, ${runs.length} runs finalized once each ${JSON.stringify(byStatus)}, peak ${maxOverlap(runs)} live runs`,
    );
  } finally {
    await d.stop();
  }
}, 900_000); // no timed assertion: a loaded machine only makes the rounds slower
