// Isolation by default: with no setting anywhere, a ticket of a git project is worked on its own
// branch `ticket/<key>` in its own worktree, and the folder the user works in keeps its branch, HEAD
// and uncommitted files. A project set to parallel coding off has its agents work in the folder on
// whatever branch it has checked out, and the page and the CLI say so; a folder that is not a
// repository says so on its page. In a project whose agents share the folder, one agent that edits
// the working tree runs at a time, by the agent type's flag, whatever its id.
import fs from 'node:fs';
import path from 'node:path';
import { branches, commitFile, head, initRepo, porcelain, sh } from './helpers/git.js';
import { killAgents, maxOverlap, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { csrfOf, getPage, postForm } from './helpers/web.js';

const IN_PLACE = 'agents commit on whatever branch the folder has checked out';
const NOT_A_REPO = 'Not a git repository: agents work in the folder itself; there is no branch, diff or merge';
const real = (p: string) => fs.realpathSync(p);
/** The ticket is back in human and its agent has ended. */
const settled = (key: string) =>
  d.ticketRow(key).column_id === 'human' && d.runs(key).every((r) => r.status !== 'queued' && r.status !== 'running');

let d: EngineDaemon;
beforeAll(async () => {
  d = await startEngineDaemon({ config: { agents: { max_concurrent_per_project: 3 } } });
}, 90_000);
afterAll(async () => {
  await killAgents(d);
  await d.stop();
});

const live = (abbr: string) =>
  (
    d
      .db()
      .prepare(
        `SELECT COUNT(*) AS n FROM runs r JOIN projects p ON p.id = r.project_id WHERE p.abbreviation = ? AND r.status IN ('queued', 'running')`,
      )
      .get(abbr) as { n: number }
  ).n;
const running = (abbr: string) =>
  (
    d
      .db()
      .prepare(`SELECT COUNT(*) AS n FROM runs r JOIN projects p ON p.id = r.project_id WHERE p.abbreviation = ? AND r.status = 'running'`)
      .get(abbr) as { n: number }
  ).n;

/** Wakes the project and waits until a scan has looked at it since. */
async function scanned(abbr: string): Promise<void> {
  const last = () =>
    (
      d
        .db()
        .prepare(`SELECT h.last_check_at FROM heartbeats h JOIN projects p ON p.id = h.project_id WHERE p.abbreviation = ?`)
        .get(abbr) as { last_check_at: number | null }
    ).last_check_at ?? 0;
  const since = Date.now();
  expect((await d.api('POST', `/api/projects/${abbr}/wake`)).status).toBe(202);
  await waitFor(`a scan of ${abbr}`, () => last() >= since, 30_000);
}

/** Files two tickets whose agents wait for one file, and says whether they ran one at a time. */
async function twoAgents(abbr: string, column: string): Promise<{ together: boolean; keys: string[] }> {
  const go = path.join(d.root, `go-${abbr}`);
  const script = {
    [column]: [
      { do: 'wait', file: go },
      { do: 'move', to: 'human' },
    ],
  };
  const keys = [(await d.ticket(abbr, column, script, 'first')).key, (await d.ticket(abbr, column, script, 'second')).key];
  await waitFor('an agent at work', () => running(abbr) >= 1, 60_000);
  await scanned(abbr);
  const together = live(abbr) === 2;
  if (together) await waitFor('both agents at work', () => running(abbr) === 2, 60_000);
  fs.writeFileSync(go, 'go\n');
  await waitFor('both tickets back in human', () => keys.every(settled), 60_000);
  expect(keys.flatMap((k) => d.runs(k)).map((r) => r.status)).toEqual(['success', 'success']);
  expect(maxOverlap(keys.flatMap((k) => d.runs(k)))).toBe(together ? 2 : 1);
  return { together, keys };
}

test("by default a git project's ticket is coded on ticket/<key> in its own worktree; the user's checkout, branch and files are untouched", async () => {
  const repo = path.join(d.projectsRoot, 'shop');
  initRepo(repo);
  sh(repo, ['checkout', '-q', '-b', 'wip']);
  commitFile(repo, 'wip.txt', 'mine\n', 'my own work');
  fs.writeFileSync(path.join(repo, 'draft.txt'), 'not saved yet\n');
  const before = { head: head(repo), status: porcelain(repo), branches: branches(repo) };
  await d.project('shop', 'software-dev', 'sh');
  const flow = {
    'coding-agent': [
      { do: 'write', file: 'feature.txt', content: 'feature\n' },
      { do: 'commit', message: 'add the feature' },
      { do: 'move', to: 'human' },
    ],
  };
  const t = await d.ticket('sh', 'coding-agent', flow, 'a feature');
  await waitFor('the agent done', () => settled(t.key), 60_000);

  const [run] = d.runs(t.key);
  expect(run.status).toBe('success');
  const worktree = path.join(d.home, 'worktrees', 'sh', t.key);
  expect(real(run.cwd)).toBe(real(worktree));
  expect(sh(worktree, ['branch', '--show-current']).trim()).toBe(`ticket/${t.key}`);
  expect(sh(repo, ['log', '-1', '--format=%s', `ticket/${t.key}`]).trim()).toBe('add the feature');
  // forked from main, not from the branch the user has checked out
  expect(fs.existsSync(path.join(worktree, 'wip.txt'))).toBe(false);
  expect(d.ticketRow(t.key).branch).toBe(`ticket/${t.key}`);
  // the user's folder: same branch, same HEAD, same uncommitted file, no agent file
  expect(sh(repo, ['branch', '--show-current']).trim()).toBe('wip');
  expect(head(repo)).toBe(before.head);
  expect(porcelain(repo)).toBe(before.status);
  expect(fs.existsSync(path.join(repo, 'feature.txt'))).toBe(false);
  expect(branches(repo)).toEqual([...before.branches, `ticket/${t.key}`].sort());

  const shown = await d.api('GET', '/api/projects/sh');
  expect(shown.body.project.parallel_coding).toBeNull();
  expect(shown.body.workspace).toMatchObject({ parallel_coding: true, from: 'default', git: true, in_folder: false });
  const page = (await getPage(d, '/projects/sh')).html;
  expect(page).toContain('Parallel coding: on (the default)');
  expect(page).not.toContain(NOT_A_REPO);
}, 120_000);

test('a project set to parallel coding off works in its folder on the branch it has checked out, and the CLI and the page say what that means', async () => {
  const repo = path.join(d.projectsRoot, 'notes');
  initRepo(repo);
  sh(repo, ['checkout', '-q', '-b', 'wip']);
  await d.project('notes', 'software-dev', 'nt');

  const off = d.cli(['projects', 'set', 'nt', '--parallel-coding', 'off']);
  expect(off.status).toBe(0);
  expect(off.stdout).toContain("nt: parallel coding off (this project's own setting)");
  expect(off.stdout).toContain(IN_PLACE);
  expect((await d.api('GET', '/api/projects/nt')).body.project.parallel_coding).toBe(0);
  const page = (await getPage(d, '/projects/nt')).html;
  expect(page).toContain(`Parallel coding: off: ${IN_PLACE}`);

  const flow = {
    'coding-agent': [
      { do: 'write', file: 'notes.txt', content: 'notes\n' },
      { do: 'commit', message: 'add notes' },
      { do: 'move', to: 'human' },
    ],
  };
  const t = await d.ticket('nt', 'coding-agent', flow, 'notes');
  await waitFor('the agent done', () => settled(t.key), 60_000);
  const [run] = d.runs(t.key);
  expect(run.status).toBe('success');
  expect(real(run.cwd)).toBe(real(repo));
  expect(sh(repo, ['log', '-1', '--format=%s', 'wip']).trim()).toBe('add notes');
  expect(branches(repo)).toEqual(['main', 'wip']);
  expect(d.ticketRow(t.key).branch).toBeNull();

  // bad values change nothing and say why
  const bad = d.cli(['projects', 'set', 'nt', '--parallel-coding', 'sideways']);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  const badApi = await d.api('PATCH', '/api/projects/nt', { daily_budget_usd: 5, parallel_coding: 'maybe' });
  expect(badApi.status).toBe(400);
  expect(badApi.body.error).toMatch(/parallel_coding must be on, off or default/);
  expect((await d.api('GET', '/api/projects/nt')).body.project).toMatchObject({ parallel_coding: 0, daily_budget_usd: null });

  // back to the default (on), then off again through the page's form
  const back = d.cli(['projects', 'set', 'nt', '--parallel-coding', 'default']);
  expect(back.status).toBe(0);
  expect(back.stdout).toContain('nt: parallel coding on (the default, agents.parallel_coding)');
  expect((await d.api('GET', '/api/projects/nt')).body.project.parallel_coding).toBeNull();
  const form = await postForm(d, '/projects/nt/parallel-coding', { _csrf: csrfOf(page), parallel_coding: 'off' });
  expect(form.status).toBe(303);
  expect((await d.api('GET', '/api/projects/nt')).body.workspace).toMatchObject({
    parallel_coding: false,
    from: 'project',
    in_folder: true,
  });
  const refused = await postForm(d, '/projects/nt/parallel-coding', { _csrf: csrfOf(page), parallel_coding: 'both' });
  expect(refused.status).toBe(400);
  expect(refused.html).toContain('parallel_coding must be on, off or default');
}, 120_000);

test('a folder that is not a repository, or has no commit, says so on its page, and its agents that edit files run one at a time', async () => {
  fs.mkdirSync(path.join(d.projectsRoot, 'plain'), { recursive: true });
  initRepo(path.join(d.projectsRoot, 'fresh'), { empty: true });
  await d.project('plain', 'software-dev', 'pl');
  await d.project('fresh', 'software-dev', 'fr');
  for (const abbr of ['pl', 'fr']) {
    expect((await getPage(d, `/projects/${abbr}`)).html).toContain(NOT_A_REPO);
    expect((await d.api('GET', `/api/projects/${abbr}`)).body.workspace).toMatchObject({
      parallel_coding: true,
      git: false,
      in_folder: true,
      summary: NOT_A_REPO,
    });
  }
  // parallel coding is on, but there is no worktree to give each ticket: they share the folder
  const { keys, together } = await twoAgents('pl', 'coding-agent');
  expect(together).toBe(false);
  expect(keys.map((k) => real(d.runs(k)[0].cwd))).toEqual([
    real(path.join(d.projectsRoot, 'plain')),
    real(path.join(d.projectsRoot, 'plain')),
  ]);
}, 180_000);

test('the one-at-a-time rule follows the agent type\'s "edits the working tree" flag, not its id', async () => {
  initRepo(path.join(d.projectsRoot, 'tools'));
  await d.project('tools', 'software-dev', 'tl');
  expect((await d.api('PATCH', '/api/projects/tl', { parallel_coding: false })).status).toBe(200);
  const created = await d.api('POST', '/api/agent-types', {
    id: 'fixer',
    name: 'Fixer',
    model: 'sonnet',
    allowed_tools: ['Bash(ticket:*)', 'Read'],
    edits_working_tree: true,
  });
  expect(created.status).toBe(201);
  expect(created.body.agent_type.edits_working_tree).toBe(true);
  const columns = ['human', 'fixer', 'coding-agent', 'done'].map((column_id) => ({ column_id }));
  expect((await d.api('PUT', '/api/projects/tl/columns', { columns })).status).toBe(200);

  // a custom type with the flag on: one at a time
  expect((await twoAgents('tl', 'fixer')).together).toBe(false);

  // the coding agent with the flag off (through the API; the page shows it unticked): both at once
  const patched = await d.api('PATCH', '/api/agent-types/coding-agent', { edits_working_tree: false });
  expect(patched.body.agent_type.edits_working_tree).toBe(false);
  expect((await getPage(d, '/agent-types/coding-agent')).html).toMatch(
    /<input type="checkbox" id="at-edits" name="edits_working_tree" value="on" aria-describedby/,
  );
  expect((await twoAgents('tl', 'coding-agent')).together).toBe(true);
  expect((await d.api('PATCH', '/api/agent-types/coding-agent', { edits_working_tree: 'sometimes' })).status).toBe(400);
}, 240_000);
