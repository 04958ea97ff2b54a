// A run's transcript as a terminal session, through the real page: shell commands as `$ command`,
// edits as diffs, reads and searches as one line, the raw input a click away, long results folded
// behind "show all", errors marked, agent text escaped everywhere. The live view (server-sent
// events) renders each entry exactly as the finished page does, in headless Chromium.
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { browserPages } from './helpers/browser.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { getPage, insertRun, setRunStatus, writeTranscript } from './helpers/web.js';

const browser = browserPages();
let d: RunningDaemon;

const EVIL = '<script>alert(1)</script><img src=x onerror=alert(2)>';
const longResult = Array.from({ length: 40 }, (_, i) => `result line ${i + 1}`).join('\n');

let n = 0;
const use = (name: string, input: unknown) => ({
  type: 'assistant',
  message: { content: [{ type: 'tool_use', id: `t${++n}`, name, input }] },
});
const result = (content: string, isError = false) => ({
  type: 'user',
  message: { content: [{ type: 'tool_result', tool_use_id: `t${n}`, content, is_error: isError }] },
});

/** A session using every tool the page knows, plus one it does not. */
const session = [
  { type: 'system', subtype: 'init', model: 'claude-sonnet-5', cwd: '/repo', permissionMode: 'acceptEdits', tools: ['Bash', 'Edit'] },
  { type: 'assistant', message: { content: [{ type: 'text', text: 'Let me look.' }] } },
  use('Bash', { command: 'npm test -- --runInBand', description: 'Run the tests' }),
  result(longResult),
  use('Read', { file_path: '/repo/lib/totals.ts' }),
  result('export const total = 1;'),
  use('Grep', { pattern: 'applyCoupon', path: '/repo/lib', glob: '*.ts' }),
  result('lib/totals.ts'),
  use('Glob', { pattern: '**/*.njk' }),
  result('views/a.njk'),
  use('Edit', {
    file_path: '/repo/lib/totals.ts',
    old_string: 'const keep = 0;\nreturn total - discount;',
    new_string: 'const keep = 0;\nreturn Math.max(0, total - discount);',
  }),
  result('The file has been updated.'),
  use('MultiEdit', {
    file_path: '/repo/lib/a.ts',
    edits: [
      { old_string: 'one', new_string: 'uno' },
      { old_string: 'two', new_string: 'dos' },
    ],
  }),
  result('Applied 2 edits.'),
  use('Write', { file_path: '/repo/NOTES.md', content: '# Notes\nClamp at zero.' }),
  result('File created.'),
  use('Bash', { command: 'cat missing.txt', description: 'Show a file' }),
  result('cat: missing.txt: No such file or directory', true),
  use('TodoWrite', { todos: [{ content: 'clamp', status: 'done' }] }),
  result('ok'),
  use('Bash', { command: `echo '${EVIL}'`, description: EVIL }),
  use('Edit', { file_path: `/repo/${EVIL}.html`, old_string: EVIL, new_string: `safe ${EVIL}` }),
  use('Read', { file_path: `/repo/${EVIL}` }),
  result(`${EVIL}\n`.repeat(30), true),
  {
    type: 'result',
    subtype: 'success',
    is_error: false,
    result: 'Clamped the total.',
    num_turns: 9,
    duration_ms: 5000,
    total_cost_usd: 0.05,
    usage: { input_tokens: 10, output_tokens: 5 },
  },
].map((l) => JSON.stringify(l));

beforeAll(async () => {
  d = await startTestDaemon();
  fs.mkdirSync(path.join(d.projectsRoot, 'shop'), { recursive: true });
  await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, 'shop'), type: 'personal', abbreviation: 'sh' });
  await d.api('POST', '/api/tickets', { project: 'sh', title: 'Clamp totals' });
  writeTranscript(insertRun(d, { id: 'run-tx-done', ticketKey: 'sh-1', status: 'success' })!, session.join('\n') + '\n');
});
afterAll(async () => {
  await d?.stop();
});

describe('the run page without JavaScript', () => {
  let html: string;
  beforeAll(async () => {
    html = (await getPage(d, '/runs/run-tx-done')).html;
  });

  test('shell commands read as `$ command` under their description', () => {
    expect(html).toContain('<span class="tx-label">Bash <span class="tx-desc">· Run the tests</span></span>');
    expect(html).toContain(
      '<pre class="tx-command"><code><span class="tx-prompt" aria-hidden="true">$ </span>npm test -- --runInBand</code></pre>',
    );
  });

  test('Edit, MultiEdit and Write show a diff of the old and new text', () => {
    const edit = html.slice(html.indexOf('aria-label="Changes to /repo/lib/totals.ts"'));
    expect(edit).toMatch(
      new RegExp(
        '^[^]*?<span class="dl dl-ctx">  const keep = 0;\n</span><span class="dl dl-del">- return total - discount;\n</span>' +
          '<span class="dl dl-add">\\+ return Math.max\\(0, total - discount\\);\n</span></code></pre>',
      ),
    );
    expect(html).toContain(
      '<span class="dl dl-hunk">@@ edit 2 of 2 @@\n</span><span class="dl dl-del">- two\n</span><span class="dl dl-add">+ dos\n</span>',
    );
    expect(html).toContain(
      '<span class="tx-label tx-inline">MultiEdit <span class="tx-desc">· 2 edits</span></span> <code class="path">/repo/lib/a.ts</code>',
    );
    expect(html).toContain(
      '<span class="tx-label tx-inline">Write <span class="tx-desc">· whole file</span></span> <code class="path">/repo/NOTES.md</code>',
    );
    expect(html).toContain('<span class="dl dl-add">+ # Notes\n</span><span class="dl dl-add">+ Clamp at zero.\n</span>');
  });

  test('Read, Grep and Glob are one line; every call has its raw input a click away', () => {
    expect(html).toContain('<span class="tx-label tx-inline">Read</span> <code class="path">/repo/lib/totals.ts</code>');
    expect(html).toContain('<span class="tx-label tx-inline">Grep</span> <code class="path">applyCoupon in /repo/lib (*.ts)</code>');
    expect(html).toContain('<span class="tx-label tx-inline">Glob</span> <code class="path">**/*.njk</code>');
    expect(html.match(/<details class="tx-raw"><summary>Raw input<\/summary>/g)).toHaveLength(11);
    expect(html).toContain(
      '<details class="tx-raw"><summary>Raw input</summary><pre><code>{\n  &quot;file_path&quot;: &quot;/repo/lib/totals.ts&quot;\n}</code></pre>',
    );
    // a tool the page has no form for shows its input as before
    expect(html).toContain('<span class="tx-label">Tool · TodoWrite</span><pre><code>{\n  &quot;todos&quot;');
  });

  test('results over 20 lines show their first lines and fold the rest behind "show all"; errors are marked', () => {
    const at = html.indexOf('result line 1\n');
    const block = html.slice(at, html.indexOf('</li>', at));
    expect(block).toMatch(
      /^result line 1\n[^]*result line 10<\/code><\/pre><details class="tx-more"><summary>Show all 40 lines<\/summary><pre><code>result line 11\n[^]*result line 40<\/code><\/pre><\/details>$/,
    );
    expect(html).toContain('<li class="tx tx-result"><span class="tx-label">Tool result <span class="tx-desc">· 40 lines</span></span>');
    expect(html).toMatch(
      /<li class="tx tx-result is-error"><span class="tx-label"><span aria-hidden="true">✗ <\/span>Tool error<\/span>\s*<pre><code>cat: missing.txt: No such file or directory<\/code><\/pre><\/li>/,
    );
    expect(html).toContain(
      '<li class="tx tx-result"><span class="tx-label">Tool result</span>\n  <pre><code>Applied 2 edits.</code></pre></li>',
    );
  });

  test('agent text in commands, descriptions, paths, diffs and results is escaped', () => {
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img');
    const escaped = '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;';
    expect(html).toContain(`<span class="tx-desc">· ${escaped}</span>`);
    expect(html).toContain(`<span class="tx-prompt" aria-hidden="true">$ </span>echo &#39;${escaped}&#39;</code>`);
    expect(html).toContain(`<span class="dl dl-del">- ${escaped}\n</span><span class="dl dl-add">+ safe ${escaped}\n</span>`);
    expect(html).toContain(`<code class="path">/repo/${escaped}</code>`);
    expect(html).toContain(`<summary>Show all 30 lines</summary>`);
  });
});

describe('in the browser', () => {
  let page: Page;
  beforeEach(() => {
    page = browser.page;
  });

  test('"show all" opens a folded result; the raw input opens on a click', async () => {
    await page.goto(`${d.url}/runs/run-tx-done`);
    const last = page.getByText('result line 40');
    expect(await last.isVisible()).toBe(false);
    await page.getByText('Show all 40 lines').click();
    await last.waitFor();
    const raw = page.locator('.tx-call-target', { hasText: '/repo/lib/totals.ts' }).locator('.tx-raw');
    expect(await raw.getByText('"file_path"').isVisible()).toBe(false);
    await raw.getByText('Raw input').click();
    await raw.getByText('"file_path"').waitFor();
  });

  test('the live view renders every entry exactly as the finished page does', async () => {
    await page.goto(`${d.url}/runs/run-tx-done`);
    const entries = () => page.locator('#transcript > li').evaluateAll((lis) => lis.map((li) => li.outerHTML));
    const finished = await entries();
    expect(finished.length).toBe(session.length);

    const file = insertRun(d, { id: 'run-tx-live', ticketKey: 'sh-1', status: 'running' })!;
    writeTranscript(file, `${session[0]}\n`);
    await page.goto(`${d.url}/runs/run-tx-live`);
    await page.locator('.tx-init').waitFor();
    // the rest arrives over server-sent events in a few pieces while the page is open
    for (const part of [session.slice(1, 6), session.slice(6, 15), session.slice(15, -1)]) {
      fs.appendFileSync(file, part.join('\n') + '\n');
      await page
        .locator('#transcript > li')
        .nth(session.indexOf(part.at(-1)!))
        .waitFor();
    }
    expect(await entries()).toEqual(finished.slice(0, -1));
    await page.getByText('Show all 40 lines').click();
    await page.getByText('result line 40').waitFor();
    fs.appendFileSync(file, `${session.at(-1)}\n`);
    setRunStatus(d, 'run-tx-live', 'success');
    // when the run ends the page reloads itself: the same entries, now from the server's page
    await page.locator('.tx-final').waitFor();
    expect(await entries()).toEqual(finished);
  });
});
