// Fifty tickets through code, review, security review and done on two runner processes, one of
// them killed with -9 midway and started again on its folder: every ticket reaches done and is
// merged with its file on main, and no ticket ever has two live runs at once.
import { maxOverlap, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { sh } from './helpers/git.js';
import { addRunner, runnerProject, startRunner, type RunningRunner } from './helpers/runner.js';

const TICKETS = 50;

let d: EngineDaemon;
const runners: RunningRunner[] = [];
afterAll(async () => {
  for (const r of runners.splice(0)) await r.stop('SIGKILL');
  await d?.stop();
});

test(`${TICKETS} tickets on two runners, one killed with -9 midway: all merged, no ticket run twice at once`, async () => {
  d = await startEngineDaemon({
    config: {
      agents: { parallel_coding: true, max_concurrent_global: 6, max_concurrent_per_project: 6 },
      // long enough for a heartbeat on a busy 2-core machine, short enough to retry ra's runs soon
      runners: { lease_seconds: 10 },
    },
  });
  const { repo } = await runnerProject(d, 'shop', 'sh');
  const tokenA = await addRunner(d, 'ra', 3);
  const tokenB = await addRunner(d, 'rb', 3);
  const a = startRunner({ name: 'ra', token: tokenA, daemonUrl: d.url, root: d.root, slots: 3 });
  const b = startRunner({ name: 'rb', token: tokenB, daemonUrl: d.url, root: d.root, slots: 3 });
  runners.push(a, b);
  await Promise.all([a.line(/ ready /), b.line(/ ready /)]);
  const keys: string[] = [];
  for (let i = 1; i <= TICKETS; i++) {
    const file = `f${i}.txt`;
    const script = {
      'coding-agent': [
        { do: 'write', file, content: `${i}\n` },
        { do: 'commit', message: `add ${file}` },
        { do: 'move', to: 'code-reviewer' },
      ],
      'code-reviewer': [{ do: 'move', to: 'security-reviewer' }],
      'security-reviewer': [{ do: 'move', to: 'done' }],
    };
    keys.push((await d.ticket('sh', 'coding-agent', script, `ticket ${i}`)).key);
  }
  const merged = () => keys.filter((k) => d.ticketRow(k).merged_at).length;
  // midway: a third of the runs done, and ra in the middle of one
  const ra = (d.db().prepare(`SELECT id FROM runners WHERE name = 'ra'`).get() as { id: number }).id;
  await waitFor(
    'a third of the runs done and ra at work',
    () =>
      d.runs().filter((r) => r.status === 'success').length >= TICKETS &&
      d.runs().some((r) => r.status === 'running' && r.runner_id === ra),
    600_000,
    100,
  );
  await a.stop('SIGKILL');
  await waitFor("ra's run finalized as crashed after the lease", () => d.runs().some((r) => r.status === 'crashed'), 120_000, 200);
  const a2 = startRunner({ name: 'ra', token: tokenA, daemonUrl: d.url, root: d.root, slots: 3, dir: a.dir });
  runners.push(a2);
  await waitFor(`all ${TICKETS} merged`, () => merged() === TICKETS, 1_200_000, 1000);

  for (const k of keys) {
    expect(d.ticketRow(k).column_id).toBe('done');
    expect(maxOverlap(d.runs(k))).toBe(1);
  }
  // ra's runs were lost and retried: at least one, finalized once each
  const crashed = d.runs().filter((r) => r.status === 'crashed');
  expect(crashed.length).toBeGreaterThanOrEqual(1);
  expect(new Set(crashed.map((r) => r.id)).size).toBe(crashed.length);
  // every ticket has its file on main: a lost coding run's agent that moved its ticket on before
  // its commit was pushed had that move taken back, and the retry did the work (docs/RUNNERS.md, "Faults")
  const onMain = new Set(sh(repo, ['ls-tree', '--name-only', 'main']).split('\n'));
  const missing = keys.filter((_k, i) => !onMain.has(`f${i + 1}.txt`));
  expect(missing).toEqual([]);
  // both runners did work, and ra's crash cost runs, not tickets
  const byRunner = new Set(d.runs().map((r) => r.runner_id));
  expect(byRunner.size).toBe(2);
}, 1_800_000);
