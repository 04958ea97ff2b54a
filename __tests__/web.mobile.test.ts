// Every page on a 390 px wide phone in headless Chromium, filled with the content that stretches a
// layout (a description with a 2,000-character code line, long titles and paths, wide tables, a
// transcript with long commands and diffs, a branch-less job with a long error): the page itself
// never scrolls sideways; code, diffs and tables scroll inside their own box.
import fs from 'node:fs';
import path from 'node:path';
import { browserPages } from './helpers/browser.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { insertJob, insertJobEvent, insertRun, writeTranscript } from './helpers/web.js';

const browser = browserPages();
let d: RunningDaemon;
let jobId: number;

const PHONE = { width: 390, height: 844 };
const LONG_LINE = `const config = { ${Array.from({ length: 120 }, (_, i) => `option${i}: "value-${i}"`).join(', ')} };`.slice(0, 2000);
const LONG_WORD = 'Supercalifragilistic'.repeat(8);

beforeAll(async () => {
  d = await startTestDaemon();
  const register = async (name: string, type: string, abbreviation: string) => {
    fs.mkdirSync(path.join(d.projectsRoot, name), { recursive: true });
    expect((await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, name), type, abbreviation })).status).toBe(201);
  };
  await register('shop', 'software-dev', 'shop');
  await register('notes', 'personal', 'nt');
  fs.mkdirSync(path.join(d.projectsRoot, `an-unregistered-folder-with-a-rather-long-name-${LONG_WORD}`), { recursive: true });
  await d.api('POST', '/api/projects/discover');
  const ticket = async (title: string, body: string, extra: Record<string, unknown> = {}) =>
    (await d.api('POST', '/api/tickets', { project: 'shop', title, body, ...extra })).body.ticket.key as string;
  expect(LONG_LINE).toHaveLength(2000);
  await ticket(
    `Config loader chokes on one long line ${LONG_WORD}`,
    `Steps:\n\n\`\`\`js\n${LONG_LINE}\n\`\`\`\n\nInline too: \`${LONG_LINE.slice(0, 300)}\`\n\n| a | b | c | d | e | f |\n|---|---|---|---|---|---|\n| ${'wide cell '.repeat(8)} | 2 | 3 | 4 | 5 | 6 |\n\nSee https://example.com/${LONG_WORD}/${LONG_WORD}`,
    { priority: 'urgent' },
  );
  await d.api('POST', '/api/tickets/shop-1/comments', {
    type: 'block',
    body: `Which of these? ${LONG_LINE.slice(0, 400)}`,
    author: 'coding-agent:run-1',
  });
  await d.api('POST', '/api/tickets/shop-1/findings', {
    severity: 'high',
    title: `Unbounded ${LONG_WORD}`,
    body: `\`\`\`\n${LONG_LINE}\n\`\`\``,
    author: 'code-reviewer:run-2',
  });
  for (let i = 2; i <= 6; i++)
    await ticket(`Card ${i} ${i === 2 ? LONG_WORD : 'with a normal title'}`, '', { column: i % 2 ? 'done' : 'human' });
  await d.api('POST', '/api/tickets', { project: 'nt', title: 'A note' });

  const run = (id: string, status: string) => insertRun(d, { id, ticketKey: 'shop-1', status, costUsd: 0.1234 })!;
  const use = (id: string, name: string, input: unknown) => ({
    type: 'assistant',
    message: { content: [{ type: 'tool_use', id, name, input }] },
  });
  writeTranscript(
    run(`run-phone-${'x'.repeat(40)}`, 'success'),
    [
      {
        type: 'system',
        subtype: 'init',
        model: 'claude-sonnet-5',
        cwd: `/home/user/Development/${LONG_WORD}`,
        permissionMode: 'acceptEdits',
        tools: [],
      },
      { type: 'assistant', message: { content: [{ type: 'text', text: `Reading ${LONG_WORD} ${LONG_LINE}` }] } },
      use('t1', 'Bash', { command: `grep -rn "${LONG_LINE}" .`, description: `Search ${LONG_WORD}` }),
      {
        type: 'user',
        message: {
          content: [
            { type: 'tool_result', tool_use_id: 't1', content: Array.from({ length: 30 }, () => LONG_LINE).join('\n'), is_error: true },
          ],
        },
      },
      use('t2', 'Edit', { file_path: `/repo/${LONG_WORD}/${LONG_WORD}.ts`, old_string: LONG_LINE, new_string: `${LONG_LINE} // fixed` }),
      use('t3', 'Read', { file_path: `/repo/${LONG_WORD}/${LONG_WORD}/${LONG_WORD}.ts` }),
      use('t4', 'TodoWrite', { todos: [{ content: LONG_LINE }] }),
      `not json ${LONG_LINE}`,
      {
        type: 'result',
        subtype: 'success',
        is_error: false,
        result: `Done ${LONG_LINE}`,
        num_turns: 3,
        duration_ms: 1000,
        total_cost_usd: 0.1234,
        usage: { input_tokens: 123456, output_tokens: 7890 },
      },
    ]
      .map((l) => (typeof l === 'string' ? l : JSON.stringify(l)))
      .join('\n') + '\n',
  );
  run('run-phone-failed', 'failed');
  jobId = insertJob(d, { queue: 'agent-run', payload: { ticketId: 1, note: LONG_LINE }, status: 'failed', runsLeft: 0, maxRuns: 3 });
  insertJobEvent(d, {
    jobId,
    queue: 'agent-run',
    attempt: 1,
    outcome: 'failed',
    error: `Error: ${LONG_LINE}`,
    payload: { ticketId: 1, note: LONG_LINE },
  });
});
afterAll(async () => {
  await d?.stop();
});

const PAGES = [
  '/inbox',
  '/projects',
  '/projects/shop',
  '/projects/shop?filter=card',
  '/projects/shop/tickets',
  '/projects/shop/workflow',
  '/tickets/shop-1',
  '/runs',
  `/runs/run-phone-${'x'.repeat(40)}`,
  '/queues',
  '/queues?queue=agent-run&state=failed',
  'JOB',
  '/agent-types',
  '/agent-types/coding-agent',
  '/project-types',
  '/settings',
  '/search?q=config',
  '/search?q=*',
  '/no-such-page',
];

test('no page is wider than a 390 px phone; wide content scrolls inside its own box', async () => {
  const page = browser.page;
  await page.setViewportSize(PHONE);
  browser.expectConsoleError('status of 4'); // the refused search (400) and the missing page (404)
  const wide: unknown[] = [];
  for (const p of PAGES) {
    const url = p === 'JOB' ? `/queues/jobs/${jobId}` : p;
    await page.goto(d.url + url);
    const result = await page.evaluate(() => {
      const limit = document.documentElement.clientWidth;
      // to name the culprit when it fails: the outermost elements that reach past the right edge
      // (not inside a box that scrolls),
      const scrolls = (el: Element) => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX);
      const inScrollBox = (el: Element) => {
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) if (scrolls(a)) return true;
        return false;
      };
      // and the elements whose own text runs out of their box
      const offenders = Array.from(document.querySelectorAll('body *'))
        .filter((el) => !inScrollBox(el))
        .filter(
          (el) =>
            (el.getBoundingClientRect().right > limit + 0.5 && (el.parentElement?.getBoundingClientRect().right ?? 0) <= limit + 0.5) ||
            (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0 && !scrolls(el) && el.children.length === 0),
        )
        .slice(0, 8)
        .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} ${Math.round(el.getBoundingClientRect().right)}px`);
      return { width: document.documentElement.scrollWidth, offenders };
    });
    if (result.width > PHONE.width) wide.push({ url, ...result });
  }
  expect(wide).toEqual([]);
});

test('the 2,000-character code line scrolls inside its code block', async () => {
  const page = browser.page;
  await page.setViewportSize(PHONE);
  await page.goto(`${d.url}/tickets/shop-1`);
  const pre = page.locator('.markdown pre', { hasText: 'option50:' }).first();
  const box = await pre.evaluate((el) => ({
    client: el.clientWidth,
    scroll: el.scrollWidth,
    overflow: getComputedStyle(el).overflowX,
    right: el.getBoundingClientRect().right,
  }));
  expect(box.scroll).toBeGreaterThan(2000 * 5);
  expect(box.client).toBeLessThan(PHONE.width);
  expect(box.right).toBeLessThanOrEqual(PHONE.width);
  expect(box.overflow).toBe('auto');
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
});
