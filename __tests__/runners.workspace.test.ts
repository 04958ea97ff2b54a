// The runner's own parts that need no daemon: its workspace (a clone of the project's remote, a
// worktree per ticket on ticket/<key>, the push back) against a real bare repository, the run
// state it keeps in its folder, and how it cuts the transcript into pieces for the daemon.
import fs from 'node:fs';
import path from 'node:path';
import { prepareRunnerWorkspace, pushTicketBranch } from '../lib/runner/workspace.js';
import { RunnerState, transcriptPiece, type RunState } from '../lib/runner/state.js';
import { tempDir } from './helpers/home.js';
import { commitFile, head, initRepo, sh } from './helpers/git.js';

let root: string;
let remote: string;
let seed: string;

/** A bare remote with main (one commit), and a working clone `seed` to push to it as someone else would. */
beforeEach(() => {
  root = tempDir('pd-runner-ws-');
  seed = path.join(root, 'seed');
  remote = path.join(root, 'remote.git');
  initRepo(seed);
  sh(root, ['init', '-q', '--bare', '-b', 'main', remote]);
  sh(seed, ['remote', 'add', 'origin', remote]);
  sh(seed, ['push', '-q', 'origin', 'main']);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const project = (main: string | null = null) => ({ abbreviation: 'ap', remote_url: remote, main_branch: main });

/** Commits in a worktree the runner made, as the agent would (the runner machine's identity is its own). */
function agentCommit(cwd: string, file: string, content: string): string {
  sh(cwd, ['config', 'user.name', 'Agent']);
  sh(cwd, ['config', 'user.email', 'agent@example.invalid']);
  return commitFile(cwd, file, content, `agent: ${file}`);
}

describe('runner workspace', () => {
  test('a new ticket starts from the remote main branch; its push lands on the remote; another runner continues from it', async () => {
    const dirA = path.join(root, 'runner-a');
    const ws = await prepareRunnerWorkspace(dirA, project(), 'ap-1', 'ticket/ap-1');
    expect(ws.cwd).toBe(path.join(dirA, 'worktrees', 'ap', 'ap-1'));
    expect(ws.repo).toBe(path.join(dirA, 'repos', 'ap'));
    expect(ws.from).toBe('origin/main');
    expect(sh(ws.cwd, ['symbolic-ref', '--short', 'HEAD']).trim()).toBe('ticket/ap-1');
    expect(head(ws.cwd)).toBe(head(remote, 'main'));
    expect(fs.readFileSync(path.join(ws.cwd, 'README.md'), 'utf8')).toBe('# project\n');

    const made = agentCommit(ws.cwd, 'feature.txt', 'one\n');
    expect(await pushTicketBranch(ws)).toEqual({ ok: true });
    expect(head(remote, 'refs/heads/ticket/ap-1')).toBe(made);

    // a second runner (another folder, another machine) takes the next run of the ticket
    const dirB = path.join(root, 'runner-b');
    const wsB = await prepareRunnerWorkspace(dirB, project(), 'ap-1', 'ticket/ap-1');
    expect(wsB.from).toBe('origin/ticket/ap-1');
    expect(head(wsB.cwd)).toBe(made);
    expect(fs.readFileSync(path.join(wsB.cwd, 'feature.txt'), 'utf8')).toBe('one\n');
  });

  test('a runner that ran the ticket before starts over from the remote branch, leaving nothing of its earlier run', async () => {
    const dir = path.join(root, 'runner');
    const ws = await prepareRunnerWorkspace(dir, project(), 'ap-2', 'ticket/ap-2');
    agentCommit(ws.cwd, 'a.txt', 'a\n');
    await pushTicketBranch(ws);
    // the earlier run also left an unpushed commit, a changed file and an untracked one
    agentCommit(ws.cwd, 'unpushed.txt', 'x\n');
    fs.writeFileSync(path.join(ws.cwd, 'a.txt'), 'changed\n');
    fs.writeFileSync(path.join(ws.cwd, 'stray.txt'), 'stray\n');
    // meanwhile the ticket went on elsewhere: its branch on the remote moved
    sh(seed, ['fetch', '-q', 'origin']);
    sh(seed, ['checkout', '-q', '-b', 'ticket/ap-2', 'origin/ticket/ap-2']);
    const elsewhere = commitFile(seed, 'b.txt', 'b\n', 'other runner');
    sh(seed, ['push', '-q', 'origin', 'ticket/ap-2']);

    const again = await prepareRunnerWorkspace(dir, project(), 'ap-2', 'ticket/ap-2');
    expect(again.cwd).toBe(ws.cwd);
    expect(head(again.cwd)).toBe(elsewhere);
    expect(sh(again.cwd, ['status', '--porcelain', '--untracked-files=all'])).toBe('');
    expect(fs.readFileSync(path.join(again.cwd, 'a.txt'), 'utf8')).toBe('a\n');
    expect(fs.existsSync(path.join(again.cwd, 'unpushed.txt'))).toBe(false);
  });

  test('a push is never forced: a branch that moved on the remote is refused and the result says why', async () => {
    const dir = path.join(root, 'runner');
    const ws = await prepareRunnerWorkspace(dir, project(), 'ap-3', 'ticket/ap-3');
    agentCommit(ws.cwd, 'mine.txt', 'mine\n');
    // someone else pushed the same branch first, from main
    sh(seed, ['checkout', '-q', '-b', 'ticket/ap-3', 'main']);
    const theirs = commitFile(seed, 'theirs.txt', 'theirs\n', 'theirs');
    sh(seed, ['push', '-q', 'origin', 'ticket/ap-3']);
    const push = await pushTicketBranch(ws);
    expect(push.ok).toBe(false);
    expect(push.error).toMatch(/rejected|non-fast-forward|fetch first/);
    expect(head(remote, 'refs/heads/ticket/ap-3')).toBe(theirs);
  });

  test("the project's main branch is used when set, and a missing one is a clear error", async () => {
    sh(seed, ['checkout', '-q', '-b', 'trunk']);
    const trunk = commitFile(seed, 't.txt', 't\n', 'trunk only');
    sh(seed, ['push', '-q', 'origin', 'trunk']);
    const dir = path.join(root, 'runner');
    const ws = await prepareRunnerWorkspace(dir, project('trunk'), 'ap-4', 'ticket/ap-4');
    expect(ws.from).toBe('origin/trunk');
    expect(head(ws.cwd)).toBe(trunk);
    await expect(prepareRunnerWorkspace(dir, project('develop'), 'ap-5', 'ticket/ap-5')).rejects.toThrow(/no branch "develop"/);
  });

  test('names from the daemon that are not one path segment or a branch are refused before git runs', async () => {
    const dir = path.join(root, 'runner');
    await expect(prepareRunnerWorkspace(dir, { ...project(), abbreviation: '../x' }, 'ap-1', 'ticket/ap-1')).rejects.toThrow(/unusable/);
    await expect(prepareRunnerWorkspace(dir, project(), '../../etc', 'ticket/ap-1')).rejects.toThrow(/unusable/);
    await expect(prepareRunnerWorkspace(dir, project(), 'ap-1', 'ticket/..bad')).rejects.toThrow(/not a branch name/);
    expect(fs.existsSync(path.join(dir, 'repos'))).toBe(false);
  });

  test('an unreachable remote is an error naming git’s complaint', async () => {
    const dir = path.join(root, 'runner');
    const gone = { abbreviation: 'ap', remote_url: path.join(root, 'no-such.git'), main_branch: null };
    await expect(prepareRunnerWorkspace(dir, gone, 'ap-1', 'ticket/ap-1')).rejects.toThrow(
      /does not exist|does not appear to be a git repository/i,
    );
  });
});

describe('runner state', () => {
  const run = (id: string, over: Partial<RunState> = {}): RunState => ({
    run_id: id,
    ticket_key: 'ap-1',
    repo: '/r',
    branch: 'ticket/ap-1',
    pid: 123,
    proc_start: '456',
    acked: 0,
    end: null,
    ...over,
  });

  test('runs are saved whole, listed back, and removed with their transcript and prompt', () => {
    const dir = tempDir('pd-runner-state-');
    try {
      const st = new RunnerState(dir);
      st.save(run('r1'));
      st.save(run('r2', { acked: 10, end: { exit_code: 0, signal: null, push: { ok: true } } }));
      fs.writeFileSync(st.transcriptPath('r2'), 'x\n');
      fs.writeFileSync(st.promptPath('r2'), 'p');
      fs.writeFileSync(path.join(st.runsDir, 'broken.json'), '{"half');
      const bad: string[] = [];
      const listed = st.list((f) => bad.push(path.basename(f)));
      expect(listed.map((s) => s.run_id).sort()).toEqual(['r1', 'r2']);
      expect(listed.find((s) => s.run_id === 'r2')!.end).toEqual({ exit_code: 0, signal: null, push: { ok: true } });
      expect(bad).toEqual(['broken.json']);
      st.remove('r2');
      expect(fs.readdirSync(st.runsDir).sort()).toEqual(['broken.json', 'r1.json']);
      expect(() => st.save(run('../escape'))).toThrow(/not a run id/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('transcript pieces: whole lines while the agent writes, never a split character, offsets in bytes', () => {
    const dir = tempDir('pd-runner-piece-');
    try {
      const file = path.join(dir, 't.log');
      expect(transcriptPiece(file, 0, 100, true)).toBeNull(); // no transcript yet
      fs.writeFileSync(file, '{"a":1}\n{"b":"half');
      expect(transcriptPiece(file, 0, 100, true)).toEqual({ offset: 0, data: '{"a":1}\n' });
      expect(transcriptPiece(file, 8, 100, true)).toBeNull(); // only an unfinished line
      expect(transcriptPiece(file, 8, 100, false)).toEqual({ offset: 8, data: '{"b":"half' }); // at the end, all of it
      // a piece that fills up ends after its last whole line
      expect(transcriptPiece(file, 0, 12, false)).toEqual({ offset: 0, data: '{"a":1}\n' });
      // one line longer than a piece is cut, but at a character's start: "é" is 2 bytes, "€" 3
      fs.writeFileSync(file, 'aé€b');
      expect(transcriptPiece(file, 0, 2, true)).toEqual({ offset: 0, data: 'a' });
      expect(transcriptPiece(file, 0, 4, true)).toEqual({ offset: 0, data: 'aé' });
      expect(transcriptPiece(file, 0, 6, true)).toEqual({ offset: 0, data: 'aé€' });
      const rest = transcriptPiece(file, 6, 100, false)!;
      expect(rest).toEqual({ offset: 6, data: 'b' });
      expect(Buffer.byteLength('aé€')).toBe(6);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
