// The merge queue through the real daemon: a project check runs on each done ticket's branch with
// main merged in, in the ticket's worktree, and only a passing tree lands on main. Real git
// repositories, real check scripts, the fake agent doing the coding.
import fs from 'node:fs';
import path from 'node:path';
import { commitFile, head, initRepo, porcelain, sh } from './helpers/git.js';
import { comments, pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

/** The check every test's repository carries: fails when any .txt file says BROKEN, and logs what it saw. */
const CHECK_SCRIPT = `#!/bin/sh
echo "checking $(git rev-parse HEAD)"
for f in *.txt; do
  [ -f "$f" ] || continue
  if grep -q BROKEN "$f"; then echo "$f is broken"; exit 1; fi
done
echo "all good"
`;

async function shopWithCheck(d: EngineDaemon, check = 'sh check.sh', name = 'shop', abbr = 'sh'): Promise<string> {
  const repo = path.join(d.projectsRoot, name);
  initRepo(repo);
  commitFile(repo, 'check.sh', CHECK_SCRIPT, 'the check');
  await d.project(name, 'software-dev', abbr);
  // a short workflow: the coding agent hands straight to done
  const columns = [{ column_id: 'human' }, { column_id: 'coding-agent' }, { column_id: 'done' }];
  expect((await d.api('PUT', `/api/projects/${abbr}/columns`, { columns })).status).toBe(200);
  const set = await d.api('PATCH', `/api/projects/${abbr}`, { check_command: check, check_timeout_minutes: 5 });
  expect(set.status).toBe(200);
  return repo;
}

const code = (file: string, content: string) => [
  { do: 'write', file, content },
  { do: 'commit', message: `write ${file}` },
  { do: 'move', to: 'done' },
];

function checkRuns(d: EngineDaemon, key: string): any[] {
  return d.db().prepare(`SELECT * FROM check_runs WHERE ticket_id = ? ORDER BY attempt`).all(d.ticketRow(key).id);
}

const tree = (repo: string, commit: string) => sh(repo, ['rev-parse', `${commit}^{tree}`]).trim();

test('a passing check: the tested tree lands on main, the output is kept, the project folder is untouched meanwhile', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await shopWithCheck(d);
    const before = head(repo);
    const t = await d.ticket('sh', 'coding-agent', { 'coding-agent': code('invoice.txt', 'invoice\n') }, 'invoices');
    await waitFor('merged', () => d.ticketRow(t.key).merged_at, 60_000);
    const [run] = checkRuns(d, t.key);
    expect(run).toMatchObject({ status: 'pass', exit_code: 0, attempt: 1, command: 'sh check.sh', main_commit: before });
    const merge = d.ticketRow(t.key).merge_commit;
    expect(run.merge_commit).toBe(merge);
    expect(head(repo, 'main')).toBe(merge);
    // main received exactly the tree that was checked
    expect(tree(repo, merge)).toBe(tree(repo, run.tested_commit));
    expect(fs.readFileSync(run.output_path, 'utf8')).toContain(`checking ${run.tested_commit}`);
    expect(fs.readFileSync(run.output_path, 'utf8')).toContain('all good');
    expect(run.output_path.startsWith(path.join(d.home, 'artifacts', 'checks'))).toBe(true);
    expect(porcelain(repo)).toBe('');
    // the API shows the run and the merge commit on the ticket
    const shown = await d.api('GET', `/api/tickets/${t.key}/checks`);
    expect(shown.status).toBe(200);
    expect(shown.body.check_runs[0]).toMatchObject({ status: 'pass', merge_commit: merge });
    expect(shown.body.check_runs[0].tail).toContain('all good');
    const output = await fetch(`${d.url}/api/tickets/${t.key}/checks/1/output`);
    expect(output.headers.get('content-type')).toContain('text/plain');
    expect(await output.text()).toContain('all good');
    // the ticket page shows the check run and the merge commit; the project page main's last check
    const html = async (p: string) => (await fetch(`${d.url}${p}`, { headers: { accept: 'text/html' } })).text();
    const page = await html(`/tickets/${t.key}`);
    expect(page).toContain('Check 1: pass');
    expect(page).toContain(`/api/tickets/${t.key}/checks/1/output`);
    expect(page).toContain(`Landed on main as <code class="merge-commit" title="${merge}">${merge.slice(0, 12)}</code>`);
    expect(await html('/projects/sh')).toContain(`Main's last check: <strong>pass</strong> on ${t.key}`);
  } finally {
    await d.stop();
  }
}, 120_000);

test('a failing check sends the ticket back to coding with a high finding; the fixed branch lands, the broken one never did', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await shopWithCheck(d);
    const script = {
      'coding-agent': [
        code('prices.txt', 'BROKEN\n'),
        [
          { do: 'write', file: 'prices.txt', content: 'price = 10\n' },
          { do: 'commit', message: 'fix prices' },
          { do: 'move', to: 'done' },
        ],
      ],
    };
    const t = await d.ticket('sh', 'coding-agent', script, 'prices');
    await waitFor('merged after the fix', () => d.ticketRow(t.key).merged_at, 90_000);
    const runs = checkRuns(d, t.key);
    expect(runs.map((r) => r.status)).toEqual(['fail', 'pass']);
    expect(runs[0].merge_commit).toBeNull();
    const finding = comments(d, t.key).find((c) => c.type === 'finding');
    expect(finding).toMatchObject({ severity: 'high', title: 'Check failed: sh check.sh', author: 'merge' });
    expect(finding.body).toContain('prices.txt is broken');
    // back to the coding column, by the merge worker
    const back = comments(d, t.key).find((c) => c.type === 'move' && c.author === 'merge');
    expect(back).toMatchObject({ from_column: 'done', to_column: 'coding-agent' });
    // no commit on main's first-parent line has the broken content
    for (const c of sh(repo, ['rev-list', '--first-parent', 'main']).trim().split('\n')) {
      if (!sh(repo, ['ls-tree', '--name-only', c]).split('\n').includes('prices.txt')) continue;
      expect(sh(repo, ['show', `${c}:prices.txt`])).not.toContain('BROKEN');
    }
  } finally {
    await d.stop();
  }
}, 150_000);

test('a check that cannot start (command not found) sends the ticket to human with the reason; main is untouched', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await shopWithCheck(d, 'no-such-check-command --all');
    const before = head(repo);
    const t = await d.ticket('sh', 'coding-agent', { 'coding-agent': code('a.txt', 'a\n') }, 'a');
    await waitFor('in human', () => d.ticketRow(t.key).column_id === 'human', 60_000);
    const [run] = checkRuns(d, t.key);
    expect(run).toMatchObject({ status: 'error', exit_code: 127 });
    const note = comments(d, t.key)
      .filter((c) => c.type === 'merge')
      .at(-1);
    expect(note.body).toContain('command not found');
    expect(note.body).toContain('no-such-check-command');
    expect(head(repo, 'main')).toBe(before);
  } finally {
    await d.stop();
  }
}, 120_000);

// concurrent: it runs beside the file's other tests (each has its own daemon), since most of it is the
// minute its check's timeout waits out, the shortest a project can set
test.concurrent(
  'a check that runs past its timeout is killed and counts as a failure with a clear note',
  async () => {
    const d = await startEngineDaemon();
    try {
      const pidFile = path.join(d.root, 'check.pid');
      const repo = await shopWithCheck(d, `echo $$ > ${pidFile}; sleep 600`);
      expect((await d.api('PATCH', '/api/projects/sh', { check_timeout_minutes: 1 })).status).toBe(200);
      const before = head(repo);
      const script = { 'coding-agent': [code('a.txt', 'a\n'), [{ do: 'move', to: 'human' }]] };
      const t = await d.ticket('sh', 'coding-agent', script, 'slow');
      await waitFor('sent back and parked', () => d.ticketRow(t.key).column_id === 'human', 150_000, 250);
      const [run] = checkRuns(d, t.key);
      expect(run.status).toBe('timeout');
      expect(run.note).toContain('did not finish within 1 minute');
      const finding = comments(d, t.key).find((c) => c.type === 'finding');
      expect(finding.title).toBe(`Check failed: echo $$ > ${pidFile}; sleep 600`);
      expect(finding.body).toContain('Timed out');
      // the check's whole tree was killed
      expect(pidAlive(Number(fs.readFileSync(pidFile, 'utf8')))).toBe(false);
      expect(head(repo, 'main')).toBe(before);
    } finally {
      await d.stop();
    }
  },
  200_000,
);

test('two tickets in the queue: the second is tested on top of the first, one check at a time', async () => {
  const d = await startEngineDaemon({ config: { agents: { max_concurrent_per_project: 2 } } });
  try {
    const repo = await shopWithCheck(d, 'sleep 1; sh check.sh');
    const go = path.join(d.root, 'go');
    const held = (file: string) => ({
      'coding-agent': [
        { do: 'write', file, content: `${file}\n` },
        { do: 'commit', message: file },
        { do: 'wait', file: go },
        { do: 'move', to: 'done' },
      ],
    });
    const a = await d.ticket('sh', 'coding-agent', held('a.txt'), 'a');
    const b = await d.ticket('sh', 'coding-agent', held('b.txt'), 'b');
    await waitFor('both agents at work', () => d.runs().filter((r) => r.status === 'running').length === 2, 60_000);
    fs.writeFileSync(go, '');
    await waitFor('both merged', () => d.ticketRow(a.key).merged_at && d.ticketRow(b.key).merged_at, 90_000);
    const [first, second] = [...checkRuns(d, a.key), ...checkRuns(d, b.key)].sort((x, y) => x.started_at - y.started_at);
    expect(first.status).toBe('pass');
    expect(second.status).toBe('pass');
    // the second check ran on main with the first merged in, after the first had ended
    expect(second.main_commit).toBe(first.merge_commit);
    expect(sh(repo, ['merge-base', '--is-ancestor', first.merge_commit, second.tested_commit])).toBe('');
    expect(second.started_at).toBeGreaterThanOrEqual(first.ended_at);
    expect(fs.readFileSync(path.join(repo, 'a.txt'), 'utf8')).toBe('a.txt\n');
    expect(fs.readFileSync(path.join(repo, 'b.txt'), 'utf8')).toBe('b.txt\n');
  } finally {
    await d.stop();
  }
}, 150_000);

test('the coding agent may run the check exactly as configured, and its task message names it', async () => {
  const d = await startEngineDaemon();
  try {
    await shopWithCheck(d);
    const out = path.join(d.root, 'calls.jsonl');
    const task = path.join(d.root, 'task.txt');
    const script = {
      'coding-agent': [
        { do: 'task', file: task },
        { do: 'sh', command: 'sh check.sh', out },
        { do: 'sh', command: 'sh check.sh --extra', out },
        { do: 'move', to: 'human' },
      ],
    };
    const t = await d.ticket('sh', 'coding-agent', script, 'run the check');
    await waitFor('parked', () => d.ticketRow(t.key).column_id === 'human', 60_000);
    const calls = fs
      .readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(calls[0]).toMatchObject({ command: 'sh check.sh', status: 0 });
    expect(calls[0].stdout).toContain('all good');
    // exact pattern: anything else is refused
    expect(calls[1]).toMatchObject({ command: 'sh check.sh --extra', status: null });
    expect(fs.readFileSync(task, 'utf8')).toContain("The project's check is: sh check.sh");
  } finally {
    await d.stop();
  }
}, 120_000);

test('dispatch projects set --check / --check-timeout, and bad values are refused with a one-line error', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = path.join(d.projectsRoot, 'tool');
    initRepo(repo);
    await d.project('tool', 'software-dev', 'tl');
    const ok = d.cli(['projects', 'set', 'tl', '--check', 'make check', '--check-timeout', '7']);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('check "make check", timeout 7 min');
    expect((await d.api('GET', '/api/projects/tl')).body.project).toMatchObject({ check_command: 'make check', check_timeout_minutes: 7 });
    const bad = d.cli(['projects', 'set', 'tl', '--check-timeout', '0']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('check_timeout_minutes must be a whole number from 1 to 1440');
    const off = d.cli(['projects', 'set', 'tl', '--check', '']);
    expect(off.status).toBe(0);
    expect(off.stdout).toContain('no check');
    expect((await d.api('GET', '/api/projects/tl')).body.project.check_command).toBeNull();
  } finally {
    await d.stop();
  }
}, 60_000);
