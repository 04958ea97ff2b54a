// Spare worktrees through the real daemon and real repositories: a repository of a few thousand
// files gets a ready, set-up spare; a new ticket's run takes it (its own folder and branch, no second
// setup); the pool refills and follows main; a small repository gets none; a half-made spare left by
// a crash is removed at start; an archived project's spare goes with `dispatch worktrees prune`.
import fs from 'node:fs';
import path from 'node:path';
import { commitFile, head, initRepo, sh, worktreePaths } from './helpers/git.js';
import { startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

const SETUP = 'echo "set up in $(pwd)" >> setup.log';

/** A repository with `files` small files in one commit (above or below the pool's size threshold). */
function makeRepo(dir: string, files: number): void {
  initRepo(dir);
  fs.writeFileSync(path.join(dir, '.gitignore'), '.env\nsetup.log\n');
  for (let i = 0; i < files; i += 1) {
    const sub = path.join(dir, 'src', `d${i % 50}`);
    fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, `f${i}.txt`), `file ${i}\n`);
  }
  sh(dir, ['add', '-A']);
  sh(dir, ['commit', '-q', '-m', `${files} files`]);
  fs.writeFileSync(path.join(dir, '.env'), 'SECRET=local\n');
}

async function register(d: EngineDaemon, name: string, abbr: string, files: number): Promise<string> {
  const repo = path.join(d.projectsRoot, name);
  makeRepo(repo, files);
  await d.project(name, 'software-dev', abbr);
  expect(d.cli(['projects', 'set', abbr, '--setup', SETUP, '--copy-files', '.env']).status).toBe(0);
  return repo;
}

const lines = (file: string): string[] => fs.readFileSync(file, 'utf8').trim().split('\n');

/** The spare folder once it is ready (its marker written) at `commit`, set up once there. */
async function readySpare(d: EngineDaemon, abbr: string, commit: string, setups = 1): Promise<string> {
  const spare = path.join(d.home, 'worktrees', abbr, '.spare-1');
  await waitFor(
    `a ready spare of ${abbr} at ${commit.slice(0, 7)}`,
    () => fs.existsSync(`${spare}.ready`) && head(spare) === commit && lines(path.join(spare, 'setup.log')).length === setups,
    90_000,
    200,
  );
  return spare;
}

test('a big repository keeps a ready spare; a new ticket takes it by a move and a branch switch; the pool refills and follows main', async () => {
  const d = await startEngineDaemon();
  try {
    const repo = await register(d, 'big', 'bg', 2_500);
    const small = await register(d, 'small', 'sm', 20);
    const spare = await readySpare(d, 'bg', head(repo));
    const spareReal = fs.realpathSync(spare); // the folder is gone once a ticket took it
    expect(lines(path.join(spare, 'setup.log'))).toEqual([`set up in ${spareReal}`]);
    expect(fs.readFileSync(path.join(spare, '.env'), 'utf8')).toBe('SECRET=local\n');
    // listed as a spare, not as a ticket's worktree
    const listed = JSON.parse(d.cli(['worktrees', 'list', '--json']).stdout);
    expect(listed).toEqual([expect.objectContaining({ project: 'bg', ticket: null, spare: true, path: spareReal, branch: null })]);
    expect(d.cli(['worktrees', 'list']).stdout).toContain('(spare)');

    const t = await d.ticket(
      'bg',
      'coding-agent',
      {
        'coding-agent': [
          { do: 'write', file: 'work.txt', content: 'done' },
          { do: 'move', to: 'human' },
        ],
      },
      'first',
    );
    await waitFor('parked', () => d.ticketRow(t.key).column_id === 'human', 90_000);
    const wt = path.join(d.home, 'worktrees', 'bg', t.key);
    expect(d.ticketRow(t.key)).toMatchObject({ worktree_path: wt, branch: `ticket/${t.key}` });
    expect(sh(wt, ['rev-parse', '--abbrev-ref', 'HEAD']).trim()).toBe(`ticket/${t.key}`);
    expect(fs.readFileSync(path.join(wt, 'work.txt'), 'utf8')).toBe('done');
    // the setup ran once, in the spare, before the ticket existed: not again in the ticket's worktree
    expect(lines(path.join(wt, 'setup.log'))).toEqual([`set up in ${spareReal}`]);
    expect(fs.readFileSync(path.join(wt, '.env'), 'utf8')).toBe('SECRET=local\n');
    expect(d.runs(t.key)).toHaveLength(1);

    // the pool refills in the background
    await readySpare(d, 'bg', head(repo));
    // the small repository got no spare, though the pool has been over every project since
    expect(fs.existsSync(path.join(d.home, 'worktrees', 'sm'))).toBe(false);
    expect(worktreePaths(small)).toEqual([fs.realpathSync(small)]);

    // main moves: the spare follows it (its checkout brought up to date and set up again)
    const next = commitFile(repo, 'src/new.txt', 'new\n', 'a new file on main');
    await readySpare(d, 'bg', next, 2);
    expect(fs.readFileSync(path.join(spare, 'src', 'new.txt'), 'utf8')).toBe('new\n');
    const u = await d.ticket('bg', 'coding-agent', { 'coding-agent': [{ do: 'move', to: 'human' }] }, 'second');
    await waitFor('parked', () => d.ticketRow(u.key).column_id === 'human', 90_000);
    expect(head(path.join(d.home, 'worktrees', 'bg', u.key))).toBe(next);
  } finally {
    await d.stop();
  }
}, 300_000);

test('a half-made spare left by a crash is removed at start; an archived project loses its spare to prune', async () => {
  let d = await startEngineDaemon();
  const root = d.root;
  let repo = '';
  try {
    repo = await register(d, 'big', 'bg', 2_500);
    await readySpare(d, 'bg', head(repo));
  } finally {
    await d.stop();
  }
  // what a daemon killed while making spares leaves: a registered worktree without its marker, and a bare folder
  const ours = path.join(d.home, 'worktrees', 'bg');
  fs.rmSync(path.join(ours, '.spare-1.ready'));
  fs.writeFileSync(path.join(ours, '.spare-1', 'half-made.txt'), 'left by a crash');
  fs.mkdirSync(path.join(ours, '.spare-2', 'src'), { recursive: true });

  d = await startEngineDaemon({ root });
  try {
    const spare = await readySpare(d, 'bg', head(repo));
    expect(fs.existsSync(path.join(spare, 'half-made.txt'))).toBe(false);
    expect(fs.existsSync(path.join(ours, '.spare-2'))).toBe(false);
    expect(worktreePaths(repo).map((p) => path.basename(p))).toEqual(['big', '.spare-1']);

    expect((await d.api('POST', '/api/projects/bg/archive', {})).status).toBe(200);
    // prune removes it at once (the pool's own pass, every few seconds, would too)
    const pruned = d.cli(['worktrees', 'prune']);
    expect(pruned.status).toBe(0);
    expect(worktreePaths(repo)).toEqual([fs.realpathSync(repo)]);
    expect(fs.readdirSync(ours)).toEqual([]);
  } finally {
    await d.stop();
  }
}, 300_000);
