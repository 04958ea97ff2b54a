// Parallel coding end to end through the real daemon: three tickets in one repository, each coded
// on its own branch and worktree by the fake agent, reviewed, and merged by the merge worker when
// done. The two that do not conflict land on main with their history; the conflicting one is
// aborted cleanly and waits in the inbox with the file named.
import fs from 'node:fs';
import path from 'node:path';
import { branches, commitFile, head, initRepo, mergeHeadExists, porcelain, sh } from './helpers/git.js';
import { comments, startEngineDaemon, waitFor } from './helpers/engine.js';

const code = (file: string, content: string, message: string) => ({
  'coding-agent': [
    { do: 'write', file, content },
    { do: 'commit', message },
    { do: 'move', to: 'code-reviewer' },
  ],
  'code-reviewer': [{ do: 'move', to: 'security-reviewer' }],
  'security-reviewer': [{ do: 'move', to: 'done', comment: 'approved' }],
});

test('three tickets in one repository: the two that do not conflict merge, the third waits in the inbox', async () => {
  const d = await startEngineDaemon({ config: { agents: { parallel_coding: true, max_concurrent_per_project: 3 } } });
  try {
    const repo = path.join(d.projectsRoot, 'shop');
    initRepo(repo);
    commitFile(repo, 'prices.txt', 'price = 10\n', 'prices');
    const before = head(repo);
    await d.project('shop', 'software-dev', 'sh');
    // b and c branch from the same main and change the same line: whichever merges second conflicts
    const a = await d.ticket('sh', 'coding-agent', code('invoice.txt', 'invoice\n', 'add invoices'), 'invoices');
    const b = await d.ticket('sh', 'coding-agent', code('prices.txt', 'price = 12\n', 'raise prices'), 'raise prices');
    const c = await d.ticket('sh', 'coding-agent', code('prices.txt', 'price = 9\n', 'cut prices'), 'cut prices');
    const settled = (k: string) =>
      d.ticketRow(k).merged_at || (d.ticketRow(k).column_id === 'human' && comments(d, k).some((x) => x.type === 'merge'));
    await waitFor('all three settled', () => [a, b, c].every((t) => settled(t.key)), 50_000, 100);
    expect(d.ticketRow(a.key).merged_at).toBeTruthy();
    const [won, lost] = d.ticketRow(b.key).merged_at ? [b, c] : [c, b];
    expect(d.ticketRow(won.key).merged_at).toBeTruthy();
    expect(d.ticketRow(lost.key).column_id).toBe('human');
    const price = won === b ? 'price = 12\n' : 'price = 9\n';

    // main has both merges, each a real merge commit whose second parent is the agent's commit
    const log = sh(repo, ['log', '--first-parent', '--format=%s', `${before}..main`])
      .trim()
      .split('\n');
    expect(log.sort()).toEqual(
      [`Merge ticket/${a.key}: invoices`, `Merge ticket/${won.key}: ${won === b ? 'raise prices' : 'cut prices'}`].sort(),
    );
    const history = sh(repo, ['log', '--format=%s', 'main']);
    expect(history).toContain('add invoices');
    expect(history).toContain(won === b ? 'raise prices' : 'cut prices');
    expect(fs.readFileSync(path.join(repo, 'invoice.txt'), 'utf8')).toBe('invoice\n');
    expect(fs.readFileSync(path.join(repo, 'prices.txt'), 'utf8')).toBe(price);
    expect(sh(repo, ['branch', '--show-current']).trim()).toBe('main');
    // merged branches and worktrees are gone (removed just after each merge is recorded); the conflicting ticket keeps both
    const kept = ['main', `ticket/${lost.key}`];
    await waitFor('merged branches removed', () => JSON.stringify(branches(repo)) === JSON.stringify(kept), 30_000, 100);
    expect(branches(repo)).toEqual(kept);
    expect(d.ticketRow(a.key).worktree_path).toBeNull();
    expect(fs.existsSync(d.ticketRow(lost.key).worktree_path)).toBe(true);
    // the repository is exactly as the merges left it: clean, no half-merge
    expect(porcelain(repo)).toBe('');
    expect(mergeHeadExists(repo)).toBe(false);
    const merged = comments(d, a.key).find((x) => x.type === 'merge');
    expect(merged.body).toMatch(/[0-9a-f]{7,}/);
    expect(merged.body).toContain('invoice.txt');
    const conflict = comments(d, lost.key)
      .filter((x) => x.type === 'merge')
      .at(-1);
    expect(conflict.body).toContain('prices.txt');
    const inbox = await d.api('GET', '/api/inbox');
    expect(inbox.body.tickets.map((t: { key: string }) => t.key)).toContain(lost.key);
    // every agent of a ticket worked in that ticket's worktree
    const runs = d.runs(a.key);
    expect(new Set(runs.map((r) => r.cwd)).size).toBe(1);
    expect(runs[0].cwd).toContain(path.join('worktrees', 'sh', a.key));
    // the branch diff is served for the ticket with a branch
    const diff = await d.api('GET', `/api/tickets/${lost.key}/diff`);
    expect(diff.status).toBe(200);
    expect(diff.body.diff.files.map((f: { path: string }) => f.path)).toEqual(['prices.txt']);
  } finally {
    await d.stop();
  }
}, 90_000);

test('parallel coding off, a folder that is not a repository, and a repository with no commit all run in the project folder', async () => {
  const d = await startEngineDaemon({ config: { agents: { parallel_coding: true } } });
  try {
    const plain = path.join(d.projectsRoot, 'plain');
    fs.mkdirSync(plain, { recursive: true });
    initRepo(path.join(d.projectsRoot, 'fresh'), { empty: true });
    await d.project('plain', 'software-dev', 'pl');
    await d.project('fresh', 'software-dev', 'fr');
    const flow = {
      'coding-agent': [
        { do: 'write', file: 'notes.txt', content: 'hi\n' },
        { do: 'move', to: 'done' },
      ],
    };
    const p = await d.ticket('pl', 'coding-agent', flow);
    const f = await d.ticket('fr', 'coding-agent', flow);
    await waitFor('both done', () => d.ticketRow(p.key).column_id === 'done' && d.ticketRow(f.key).column_id === 'done', 30_000);
    expect(d.runs(p.key)[0].cwd).toBe(plain);
    expect(d.runs(f.key)[0].cwd).toBe(path.join(d.projectsRoot, 'fresh'));
    expect(d.ticketRow(p.key).branch).toBeNull();
    expect(fs.readFileSync(path.join(plain, 'notes.txt'), 'utf8')).toBe('hi\n');
    expect(branches(path.join(d.projectsRoot, 'fresh'))).toEqual([]);
  } finally {
    await d.stop();
  }
});
