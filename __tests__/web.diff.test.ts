// The ticket page's branch diff against main, through the real daemon and a real repository: the
// files with their status, the stat, the patch with added and removed lines marked and escaped,
// "merged as" once the branch is merged (the diff still shown from the merge commit), a capped
// rendering that says so, and a clear line when there is nothing to diff.
import path from 'node:path';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { commitFile, head, initRepo, sh } from './helpers/git.js';
import { getPage, openHomeDb } from './helpers/web.js';

let d: RunningDaemon;
let repo: string;

beforeAll(async () => {
  d = await startTestDaemon();
  repo = path.join(d.projectsRoot, 'app');
  initRepo(repo);
  commitFile(repo, 'notes.txt', 'keep\nremove me\n', 'notes');
  expect((await d.api('POST', '/api/projects', { path: repo, type: 'software-dev', abbreviation: 'ap' })).status).toBe(201);
});
afterAll(async () => {
  await d.stop();
});

async function ticketOnBranch(title: string, work: () => void): Promise<string> {
  const key = (await d.api('POST', '/api/tickets', { project: 'ap', title })).body.ticket.key as string;
  const branch = `ticket/${key}`;
  sh(repo, ['checkout', '-q', '-b', branch]);
  work();
  sh(repo, ['checkout', '-q', 'main']);
  setTicket(key, { branch });
  return key;
}

function setTicket(key: string, fields: Record<string, string | number | null>): void {
  const db = openHomeDb(d);
  try {
    const sets = Object.keys(fields).map((k) => `${k} = ?`).join(', ');
    db.prepare(`UPDATE tickets SET ${sets} WHERE project_id = (SELECT id FROM projects WHERE abbreviation = 'ap') AND number = ?`).run(...Object.values(fields), Number(key.split('-')[1]));
  } finally {
    db.close();
  }
}

const lines = (html: string, kind: string) => [...html.matchAll(new RegExp(`<span class="dl dl-${kind}">([^<]*)\\n</span>`, 'g'))].map((m) => m[1]);

test('the diff lists files, stat and an escaped patch with added and removed lines marked; merged as shows after the merge', async () => {
  const key = await ticketOnBranch('Add a banner', () => {
    commitFile(repo, 'banner.html', '<script>alert(1)</script>\n<b>hello</b>\n', 'add banner');
    commitFile(repo, 'notes.txt', 'keep\n', 'trim notes');
  });
  const page = await getPage(d, `/tickets/${key}`);
  expect(page.status).toBe(200);
  expect(page.html).toContain(`Changes on <code>ticket/${key}</code> <span class="muted">against main</span>`);
  expect(page.html).toContain('<span class="file-status file-status-A" title="A">A</span> <code>banner.html</code>');
  expect(page.html).toContain('<span class="file-status file-status-M" title="M">M</span> <code>notes.txt</code>');
  expect(page.html).toMatch(/2 files changed, 2 insertions\(\+\), 1 deletion\(-\)/);
  expect(lines(page.html, 'add')).toEqual(['+&lt;script&gt;alert(1)&lt;/script&gt;', '+&lt;b&gt;hello&lt;/b&gt;']);
  expect(lines(page.html, 'del')).toEqual(['-remove me']);
  expect(lines(page.html, 'context')).toEqual([' keep']);
  expect(lines(page.html, 'hunk')).toHaveLength(2);
  expect(lines(page.html, 'meta')).toContain('diff --git a/banner.html b/banner.html');
  expect(lines(page.html, 'meta')).toContain('+++ b/banner.html');
  expect(page.html).not.toContain('<script>alert');
  expect(page.html).not.toContain('Merged as');

  sh(repo, ['merge', '--no-ff', '-q', '-m', `Merge ticket/${key}`, `ticket/${key}`]);
  const merge = head(repo);
  sh(repo, ['branch', '-q', '-D', `ticket/${key}`]);
  setTicket(key, { merge_commit: merge, merged_at: Date.now() });
  const after = await getPage(d, `/tickets/${key}`);
  expect(after.html).toContain(`Merged as <code title="${merge}">${merge.slice(0, 12)}</code>.`);
  expect(lines(after.html, 'add')).toEqual(lines(page.html, 'add'));
  expect(lines(after.html, 'del')).toEqual(['-remove me']);
});

test('a large diff is rendered capped and the page says how much is shown', async () => {
  const key = await ticketOnBranch('Generate data', () => {
    commitFile(repo, 'data.txt', Array.from({ length: 2500 }, (_, i) => `row ${i}`).join('\n') + '\n', 'data');
    commitFile(repo, 'wide.txt', `${'w'.repeat(5000)}\n`, 'a very long line');
  });
  const page = await getPage(d, `/tickets/${key}`);
  expect(page.status).toBe(200);
  const total = 2500 + 5 + 1 + 5 + 1 + 1; // each file: diff/new file/index/---/+++ headers, a hunk line, its lines
  expect(page.html).toContain(`Showing the first 2,000 of ${total.toLocaleString('en-US')} lines.`);
  expect(page.html.match(/<span class="dl /g)).toHaveLength(2000);
  expect(lines(page.html, 'add').at(-1)).toBe(`+row ${2000 - 7}`);

  const wide = await ticketOnBranch('One wide line', () => commitFile(repo, 'wide2.txt', `${'v'.repeat(5000)}\n`, 'wide'));
  const widePage = await getPage(d, `/tickets/${wide}`);
  expect(widePage.html).toContain('Very long lines are cut.');
  expect(lines(widePage.html, 'add')).toEqual([`+${'v'.repeat(399)} …`]);
  expect(widePage.html).not.toContain('Showing the first');
});

test('no section without a branch, and a plain line when the branch is not in the repository', async () => {
  const plain = (await d.api('POST', '/api/tickets', { project: 'ap', title: 'No branch' })).body.ticket.key as string;
  expect((await getPage(d, `/tickets/${plain}`)).html).not.toContain('id="diff-h"');
  const lost = (await d.api('POST', '/api/tickets', { project: 'ap', title: 'Lost branch' })).body.ticket.key as string;
  setTicket(lost, { branch: `ticket/${lost}` });
  const page = await getPage(d, `/tickets/${lost}`);
  expect(page.status).toBe(200);
  expect(page.html).toContain(`No diff to show: there is no branch ticket/${lost} in the project&#39;s repository.`);
});
