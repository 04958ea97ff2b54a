// Ticket worktree setup and clean-up through the real daemon: copy_files and the setup command run
// once in a new worktree, a failing setup is written on the ticket, `dispatch worktrees list` shows
// them with their disk use, and `prune` removes those of an archived project. The pages show the
// merge queue's state.
import fs from 'node:fs';
import path from 'node:path';
import { commitFile, initRepo, worktreePaths } from './helpers/git.js';
import { comments, killAgents, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

async function repoProject(d: EngineDaemon, name: string, abbr: string): Promise<string> {
  const repo = path.join(d.projectsRoot, name);
  initRepo(repo);
  commitFile(repo, '.gitignore', '.env\nsetup.log\n', 'ignore local files');
  fs.writeFileSync(path.join(repo, '.env'), 'SECRET=local\n');
  await d.project(name, 'software-dev', abbr);
  return repo;
}

test('a new worktree gets copy_files and its setup command once; a failing setup is shown on the ticket', async () => {
  const d = await startEngineDaemon();
  try {
    await repoProject(d, 'web', 'wb');
    const set = d.cli(['projects', 'set', 'wb', '--setup', 'echo "set up in $(pwd)" >> setup.log', '--copy-files', '.env']);
    expect(set.status).toBe(0);
    expect(set.stdout).toContain('new worktrees get .env and setup');
    const go = path.join(d.root, 'go');
    const t = await d.ticket(
      'wb',
      'coding-agent',
      {
        'coding-agent': [
          [
            { do: 'wait', file: go },
            { do: 'move', to: 'human' },
          ],
          [{ do: 'move', to: 'human' }],
        ],
      },
      'uses env',
    );
    await waitFor('the agent runs', () => d.runs(t.key).some((r) => r.status === 'running'), 60_000);
    const wt = d.ticketRow(t.key).worktree_path;
    expect(fs.readFileSync(path.join(wt, '.env'), 'utf8')).toBe('SECRET=local\n');
    expect(fs.readFileSync(path.join(wt, 'setup.log'), 'utf8')).toBe(`set up in ${fs.realpathSync(wt)}\n`);
    fs.writeFileSync(go, '');
    await waitFor('parked', () => d.ticketRow(t.key).column_id === 'human', 60_000);
    // a second run reuses the worktree: setup is not run again
    expect((await d.api('POST', `/api/tickets/${t.key}/move`, { column: 'coding-agent' })).status).toBe(200);
    await waitFor('parked again', () => d.runs(t.key).length === 2 && d.ticketRow(t.key).column_id === 'human', 60_000);
    expect(fs.readFileSync(path.join(wt, 'setup.log'), 'utf8').trim().split('\n')).toHaveLength(1);
    expect(comments(d, t.key).some((c) => c.body.includes('Setting up the new worktree'))).toBe(false);

    // a setup that fails, and a file that is not there: both are written on the ticket
    expect(d.cli(['projects', 'set', 'wb', '--setup', 'echo cannot install; exit 3', '--copy-files', '.env,missing.json']).status).toBe(0);
    const u = await d.ticket('wb', 'coding-agent', { 'coding-agent': [{ do: 'move', to: 'human' }] }, 'bad setup');
    await waitFor('parked', () => d.ticketRow(u.key).column_id === 'human', 60_000);
    const note = comments(d, u.key).find((c) => c.body.includes('Setting up the new worktree'));
    expect(note.body).toContain('exited 3');
    expect(note.body).toContain('cannot install');
    expect(note.body).toContain('missing.json: not found');
    // a path outside the project folder is refused up front
    const bad = d.cli(['projects', 'set', 'wb', '--copy-files', '../other/.env']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('must be a path inside the project folder');
  } finally {
    await d.stop();
  }
}, 150_000);

test('dispatch worktrees list shows each worktree with its size; prune removes those of an archived project', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await repoProject(d, 'app', 'ap');
    const t = await d.ticket(
      'ap',
      'coding-agent',
      {
        'coding-agent': [
          { do: 'write', file: 'big.bin', content: 'x'.repeat(150_000) },
          { do: 'move', to: 'human' },
        ],
      },
      'big',
    );
    await waitFor('parked', () => d.ticketRow(t.key).column_id === 'human', 60_000);
    const wt = d.ticketRow(t.key).worktree_path;
    const list = d.cli(['worktrees', 'list', '--json']);
    expect(list.status).toBe(0);
    const [entry] = JSON.parse(list.stdout);
    expect(entry).toMatchObject({ project: 'ap', ticket: t.key, column: 'human', path: wt, branch: `ticket/${t.key}` });
    expect(entry.bytes).toBeGreaterThan(150_000);
    expect(d.cli(['worktrees', 'list']).stdout).toContain('1 worktree,');
    // the project page shows the worktrees' disk use
    const page = await (await fetch(`${d.url}/projects/ap`, { headers: { accept: 'text/html' } })).text();
    expect(page).toMatch(/worktrees: 1 \(\d/);

    // prune keeps a worktree with uncommitted files; once they are gone it removes it
    await killAgents(d);
    expect((await d.api('POST', '/api/projects/ap/archive', {})).status).toBe(200);
    let pruned = d.cli(['worktrees', 'prune']);
    expect(pruned.status).toBe(0);
    expect(pruned.stdout).toContain('0 removed; 1 left');
    expect(fs.existsSync(path.join(wt, 'big.bin'))).toBe(true);
    fs.rmSync(path.join(wt, 'big.bin'));
    pruned = d.cli(['worktrees', 'prune']);
    expect(pruned.stdout).toContain(`removed ${wt}`);
    expect(fs.existsSync(wt)).toBe(false);
    expect(worktreePaths(repo)).toEqual([fs.realpathSync(repo)]);
  } finally {
    await d.stop();
  }
}, 120_000);
