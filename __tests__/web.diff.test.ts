// The ticket page's branch diff against main, through the real daemon and a real repository: the
// files with their status, the stat, the patch with added and removed lines marked and escaped,
// "merged as" once the branch is merged (the diff still shown from the merge commit), a capped
// rendering that says so, and a clear line when there is nothing to diff. Git runs asynchronously
// here: a synchronous git blocks this process long enough on a busy machine for the daemon to close
// the idle keep-alive connection that fetch then reuses.
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import './helpers/git.js'; // switches off the machine's global and system git config for every git run here
import { getPage, openHomeDb } from './helpers/web.js';

const run = promisify(execFile);
const git = async (...args: string[]) => (await run('git', ['-C', repo, ...args], { encoding: 'utf8' })).stdout.trim();
async function commitFile(file: string, content: string, message: string): Promise<void> {
  fs.writeFileSync(path.join(repo, file), content);
  await git('add', '--', file);
  await git('commit', '-q', '-m', message);
}

let d: RunningDaemon;
let repo: string;

beforeAll(async () => {
  d = await startTestDaemon();
  repo = path.join(d.projectsRoot, 'app');
  fs.mkdirSync(repo, { recursive: true });
  await git('init', '-q', '-b', 'main');
  await git('config', 'user.name', 'Test User');
  await git('config', 'user.email', 'test@example.invalid');
  await git('config', 'commit.gpgsign', 'false');
  await commitFile('notes.txt', 'keep\nremove me\n', 'notes');
  expect((await d.api('POST', '/api/projects', { path: repo, type: 'software-dev', abbreviation: 'ap' })).status).toBe(201);
});
afterAll(async () => {
  await d.stop();
});

async function ticketOnBranch(title: string, work: () => Promise<void>): Promise<string> {
  const key = (await d.api('POST', '/api/tickets', { project: 'ap', title })).body.ticket.key as string;
  const branch = `ticket/${key}`;
  await git('checkout', '-q', '-b', branch);
  await work();
  await git('checkout', '-q', 'main');
  setTicket(key, { branch });
  return key;
}

function setTicket(key: string, fields: Record<string, string | number | null>): void {
  const db = openHomeDb(d);
  try {
    const sets = Object.keys(fields)
      .map((k) => `${k} = ?`)
      .join(', ');
    db.prepare(`UPDATE tickets SET ${sets} WHERE project_id = (SELECT id FROM projects WHERE abbreviation = 'ap') AND number = ?`).run(
      ...Object.values(fields),
      Number(key.split('-')[1]),
    );
  } finally {
    db.close();
  }
}

const lines = (html: string, kind: string) =>
  [...html.matchAll(new RegExp(`<span class="dl dl-${kind}">([^<]*)\\n</span>`, 'g'))].map((m) => m[1]);

test('the diff lists files, stat and an escaped patch with added and removed lines marked; merged as shows after the merge', async () => {
  const key = await ticketOnBranch('Add a banner', async () => {
    await commitFile('banner.html', '<script>alert(1)</script>\n<b>hello</b>\n', 'add banner');
    await commitFile('notes.txt', 'keep\n', 'trim notes');
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

  await git('merge', '--no-ff', '-q', '-m', `Merge ticket/${key}`, `ticket/${key}`);
  const merge = await git('rev-parse', 'HEAD');
  await git('branch', '-q', '-D', `ticket/${key}`);
  setTicket(key, { merge_commit: merge, merged_at: Date.now() });
  const after = await getPage(d, `/tickets/${key}`);
  expect(after.html).toContain(`Merged as <code title="${merge}">${merge.slice(0, 12)}</code>.`);
  expect(lines(after.html, 'add')).toEqual(lines(page.html, 'add'));
  expect(lines(after.html, 'del')).toEqual(['-remove me']);
});

test('a large diff is rendered capped and the page says how much is shown', async () => {
  const key = await ticketOnBranch('Generate data', async () => {
    await commitFile('data.txt', Array.from({ length: 2500 }, (_, i) => `row ${i}`).join('\n') + '\n', 'data');
    await commitFile('wide.txt', `${'w'.repeat(5000)}\n`, 'a very long line');
  });
  const page = await getPage(d, `/tickets/${key}`);
  expect(page.status).toBe(200);
  const total = 2500 + 5 + 1 + 5 + 1 + 1; // each file: diff/new file/index/---/+++ headers, a hunk line, its lines
  expect(page.html).toContain(`Showing the first 2,000 of ${total.toLocaleString('en-US')} lines.`);
  expect(page.html.match(/<span class="dl /g)).toHaveLength(2000);
  expect(lines(page.html, 'add').at(-1)).toBe(`+row ${2000 - 7}`);

  const wide = await ticketOnBranch('One wide line', () => commitFile('wide2.txt', `${'v'.repeat(5000)}\n`, 'wide'));
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
