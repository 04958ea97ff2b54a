// The merge queue when main does not merge cleanly into a branch (to the merge-resolver column, or
// to human), and when the daemon is killed while a check runs. Real daemon, real git, fake agent.
import fs from 'node:fs';
import path from 'node:path';
import { commitFile, head, initRepo, mergeHeadExists, porcelain, sh } from './helpers/git.js';
import { comments, pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

async function shop(d: EngineDaemon, columns: string[], check: string | null = 'sh check.sh'): Promise<string> {
  const repo = path.join(d.projectsRoot, 'shop');
  initRepo(repo);
  commitFile(repo, 'check.sh', 'grep -q "price" prices.txt && ! grep -q "<<<<<<<" prices.txt\n', 'the check');
  commitFile(repo, 'prices.txt', 'price = 10\n', 'prices');
  await d.project('shop', 'software-dev', 'sh');
  expect(
    (await d.api('PUT', '/api/projects/sh/columns', { columns: ['human', ...columns, 'done'].map((column_id) => ({ column_id })) })).status,
  ).toBe(200);
  expect((await d.api('PATCH', '/api/projects/sh', { check_command: check })).status).toBe(200);
  return repo;
}

/** A coding agent that changes the price, then waits until the test has moved main under it. */
function raisePrice(go: string) {
  return [
    { do: 'write', file: 'prices.txt', content: 'price = 12\n' },
    { do: 'commit', message: 'raise prices' },
    { do: 'wait', file: go },
    { do: 'move', to: 'done' },
  ];
}

const checkRuns = (d: EngineDaemon, key: string): any[] =>
  d.db().prepare(`SELECT * FROM check_runs WHERE ticket_id = ? ORDER BY attempt`).all(d.ticketRow(key).id);

test('a conflict between main and the branch with no resolver column: the ticket goes to human, the merge aborted, main untouched', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await shop(d, ['coding-agent']);
    const go = path.join(d.root, 'go');
    const t = await d.ticket('sh', 'coding-agent', { 'coding-agent': raisePrice(go) }, 'raise prices');
    await waitFor(
      'the agent committed',
      () => d.ticketRow(t.key).branch && sh(repo, ['log', '--format=%s', `ticket/${t.key}`]).includes('raise prices'),
      60_000,
    );
    const moved = commitFile(repo, 'prices.txt', 'price = 9\n', 'cut prices on main');
    fs.writeFileSync(go, '');
    await waitFor('in human', () => d.ticketRow(t.key).column_id === 'human', 60_000);
    const note = comments(d, t.key)
      .filter((c) => c.type === 'merge')
      .at(-1);
    expect(note.body).toContain('prices.txt');
    expect(note.body).toContain('merge-resolver');
    expect(head(repo, 'main')).toBe(moved);
    const wt = d.ticketRow(t.key).worktree_path;
    expect(porcelain(wt)).toBe('');
    expect(fs.existsSync(path.join(repo, '.git', 'worktrees', path.basename(wt), 'MERGE_HEAD'))).toBe(false);
    expect(checkRuns(d, t.key)).toEqual([]);
  } finally {
    await d.stop();
  }
}, 120_000);

test('a conflict with a merge-resolver column: the resolver agent resolves it in the worktree, the check runs, the result lands', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await shop(d, ['coding-agent', 'merge-resolver']);
    const go = path.join(d.root, 'go');
    const resolver = [
      { do: 'write', file: 'prices.txt', content: 'price = 11\n' },
      { do: 'commit', message: 'resolve prices' },
      { do: 'move', to: 'done', comment: 'resolved' },
    ];
    const t = await d.ticket('sh', 'coding-agent', { 'coding-agent': raisePrice(go), 'merge-resolver': resolver }, 'raise prices');
    await waitFor(
      'the agent committed',
      () => d.ticketRow(t.key).branch && sh(repo, ['log', '--format=%s', `ticket/${t.key}`]).includes('raise prices'),
      60_000,
    );
    commitFile(repo, 'prices.txt', 'price = 9\n', 'cut prices on main');
    fs.writeFileSync(go, '');
    await waitFor('merged', () => d.ticketRow(t.key).merged_at, 90_000);
    const moves = comments(d, t.key)
      .filter((c) => c.type === 'move')
      .map((c) => `${c.from_column}>${c.to_column}:${c.author.split(':')[0]}`);
    expect(moves).toEqual(expect.arrayContaining(['done>merge-resolver:merge', 'merge-resolver>done:merge-resolver']));
    const resolverRun = d.runs(t.key).find((r) => r.agent_type_id === 'merge-resolver');
    expect(resolverRun.cwd).toContain(path.join('worktrees', 'sh', t.key));
    expect(fs.readFileSync(path.join(repo, 'prices.txt'), 'utf8')).toBe('price = 11\n');
    // main has its own change and the ticket's, through the resolved merge, and the check passed on it
    const history = sh(repo, ['log', '--format=%s', 'main']);
    expect(history).toContain('cut prices on main');
    expect(history).toContain('raise prices');
    expect(history).toContain('resolve prices');
    const runs = checkRuns(d, t.key);
    expect(runs.map((r) => r.status)).toEqual(['pass']);
    expect(sh(repo, ['rev-parse', `${runs[0].merge_commit}^{tree}`])).toBe(sh(repo, ['rev-parse', `${runs[0].tested_commit}^{tree}`]));
    expect(porcelain(repo)).toBe('');
    expect(mergeHeadExists(repo)).toBe(false);
  } finally {
    await d.stop();
  }
}, 150_000);

test('a merge-resolver column without a check: the conflict still goes to the resolver, and the resolved branch lands', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await shop(d, ['coding-agent', 'merge-resolver'], null);
    const go = path.join(d.root, 'go');
    const resolver = [
      { do: 'write', file: 'prices.txt', content: 'price = 11\n' },
      { do: 'commit', message: 'resolve prices' },
      { do: 'move', to: 'done' },
    ];
    const t = await d.ticket('sh', 'coding-agent', { 'coding-agent': raisePrice(go), 'merge-resolver': resolver }, 'raise prices');
    await waitFor(
      'the agent committed',
      () => d.ticketRow(t.key).branch && sh(repo, ['log', '--format=%s', `ticket/${t.key}`]).includes('raise prices'),
      60_000,
    );
    commitFile(repo, 'prices.txt', 'price = 9\n', 'cut prices on main');
    fs.writeFileSync(go, '');
    await waitFor('merged', () => d.ticketRow(t.key).merged_at, 90_000);
    expect(d.runs(t.key).some((r) => r.agent_type_id === 'merge-resolver')).toBe(true);
    expect(fs.readFileSync(path.join(repo, 'prices.txt'), 'utf8')).toBe('price = 11\n');
    expect(checkRuns(d, t.key)).toEqual([]);
    expect(porcelain(repo)).toBe('');
  } finally {
    await d.stop();
  }
}, 150_000);

test('the daemon killed mid-check: main is untouched, the check is killed and runs again after the restart, then lands', async () => {
  const root = (await import('./helpers/home.js')).tempDir('pd-mq-crash-');
  const started = path.join(root, 'check-started');
  const pids = path.join(root, 'check-pids');
  const go = path.join(root, 'check-go');
  // writes a file the next check must not see (the interrupted run's debris), records its pid, waits
  const check = `echo $$ >> ${pids}; touch debris.out; touch ${started}; while [ ! -f ${go} ]; do sleep 0.1; done; sh check.sh`;
  let d = await startEngineDaemon({ root });
  try {
    const repo = await shop(d, ['coding-agent'], check);
    const before = head(repo, 'main');
    const t = await d.ticket('sh', 'coding-agent', {
      'coding-agent': [
        { do: 'write', file: 'prices.txt', content: 'price = 12\n' },
        { do: 'commit', message: 'raise' },
        { do: 'move', to: 'done' },
      ],
    });
    await waitFor('the check started', () => fs.existsSync(started), 60_000);
    const firstPid = Number(fs.readFileSync(pids, 'utf8').trim());
    await d.stop('SIGKILL');
    expect(head(repo, 'main')).toBe(before);
    expect(porcelain(repo)).toBe('');
    expect(pidAlive(firstPid)).toBe(true); // detached: it outlives the daemon until the next start ends it
    fs.rmSync(started);

    d = await startEngineDaemon({ root });
    await waitFor('the check started again', () => fs.existsSync(started), 60_000);
    expect(pidAlive(firstPid)).toBe(false);
    expect(head(repo, 'main')).toBe(before);
    fs.writeFileSync(go, '');
    await waitFor('merged', () => d.ticketRow(t.key).merged_at, 60_000);
    const runs = checkRuns(d, t.key);
    expect(runs.map((r) => r.status)).toEqual(['error', 'pass']);
    expect(runs[0].note).toContain('the daemon stopped while this check ran');
    expect(runs[1].tested_commit).toBe(runs[0].tested_commit);
    // exactly one merge landed, and the debris the checks wrote never did
    expect(
      sh(repo, ['rev-list', '--first-parent', `${before}..main`])
        .trim()
        .split('\n'),
    ).toHaveLength(1);
    expect(sh(repo, ['ls-tree', '--name-only', 'main'])).not.toContain('debris.out');
  } finally {
    fs.writeFileSync(go, '');
    await d.stop();
  }
}, 200_000);
