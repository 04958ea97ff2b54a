// The web UI in headless Chromium against the real daemon: a person with only a browser registers
// a project, files a ticket, drags it across the board, answers from the inbox, edits a prompt,
// changes a cap, and watches a transcript arrive live. Every form is checked by its stored
// result (API, config.json, the prompt file), not by the page it redirects to (forms that silently saved nothing are a known failure of such tools).
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { browserPages } from './helpers/browser.js';
import { fakeClaude, killAgents, WAITING_AGENTS } from './helpers/engine.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { insertRun, sampleTranscript, setRunStatus, writeTranscript } from './helpers/web.js';

const browser = browserPages();
let d: RunningDaemon;
let page: Page;

beforeAll(async () => {
  d = await startTestDaemon({ config: WAITING_AGENTS, env: { DISPATCH_CLAUDE_BIN: fakeClaude } });
});
afterAll(async () => {
  if (d) await killAgents(d);
  await d?.stop();
});
beforeEach(() => {
  page = browser.page;
});

test('register a discovered folder, file a ticket from the board, drag it to an agent column', async () => {
  fs.mkdirSync(path.join(d.projectsRoot, 'shop'), { recursive: true });
  await page.goto(`${d.url}/projects`);
  await page.getByRole('button', { name: 'Rescan folder' }).click();
  const row = page.locator('.folder-list li', { hasText: 'shop' });
  await row.getByLabel('Type').selectOption('software-dev');
  await row.getByLabel('Abbreviation').fill('shop');
  await row.getByRole('button', { name: 'Register' }).click();
  await page.waitForURL(/\/projects\/shop/);
  expect((await d.api('GET', '/api/projects/shop')).body.project.status).toBe('active');

  await page.getByText('New ticket', { exact: true }).click();
  await page.getByLabel('Title').fill('Checkout button is <b>broken</b>');
  await page.getByLabel('Description').fill('Steps:\n\n1. open cart\n2. click **Pay**');
  await page.getByLabel('Priority').selectOption('urgent');
  await page.getByRole('button', { name: 'File ticket' }).click();
  await page.waitForURL(/done=filed/);
  const card = page.locator('.card', { hasText: 'Checkout button is <b>broken</b>' });
  await card.waitFor();
  const stored = (await d.api('GET', '/api/tickets/shop-1')).body.ticket;
  expect(stored).toMatchObject({
    title: 'Checkout button is <b>broken</b>',
    priority: 'urgent',
    column_id: 'human',
    body: 'Steps:\n\n1. open cart\n2. click **Pay**',
  });

  await card.dragTo(page.locator('section.column[data-column="coding-agent"]'));
  await page.locator('section.column[data-column="coding-agent"] .card[data-key="shop-1"]').waitFor();
  // the column count comes from the live event the stored move sends, so the move has been stored
  await page.locator('section.column[data-column="coding-agent"] .count', { hasText: '1' }).waitFor();
  expect((await d.api('GET', '/api/tickets/shop-1')).body.ticket.column_id).toBe('coding-agent');

  // and back with the keyboard-reachable buttons, no drag needed
  await page.getByRole('button', { name: 'Move shop-1 to Human' }).click();
  await page.waitForURL(/done=moved/);
  expect((await d.api('GET', '/api/tickets/shop-1')).body.ticket.column_id).toBe('human');
});

test('reply from the inbox and send the ticket to an agent', async () => {
  fs.mkdirSync(path.join(d.projectsRoot, 'blog'), { recursive: true });
  await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, 'blog'), type: 'content', abbreviation: 'blog' });
  // an agent files its question into human (filed by the person, it would wait in the backlog tab)
  await d.api('POST', '/api/tickets', { project: 'blog', title: 'Tone for the launch post?', created_by: 'writer:run-1' });
  await d.api('POST', '/api/tickets/blog-1/comments', { type: 'block', body: 'Formal or casual?', author: 'writer:run-1' });
  await page.goto(`${d.url}/inbox`);
  const item = page.locator('.inbox-item', { hasText: 'Tone for the launch post?' });
  await item.locator('.note', { hasText: 'Formal or casual?' }).waitFor();
  await item.getByText('Reply or send on').click();
  await item.getByLabel('Reply to blog-1').fill('Casual, short sentences.');
  await item.getByLabel('then').selectOption('writer');
  await item.getByRole('button', { name: 'Send reply' }).click();
  await page.waitForURL(/\/inbox\?done=moved/);
  await page.getByRole('status').filter({ hasText: 'Ticket moved.' }).waitFor();
  expect(await page.locator('.inbox-item', { hasText: 'Tone for the launch post?' }).count()).toBe(0);
  const shown = (await d.api('GET', '/api/tickets/blog-1')).body;
  expect(shown.ticket.column_id).toBe('writer');
  expect(shown.comments.filter((c: { type: string }) => c.type === 'move').at(-1)).toMatchObject({
    type: 'move',
    body: 'Casual, short sentences.',
    to_column: 'writer',
    author: 'human',
  });
});

test('without JavaScript: file a ticket from the board and answer it from the inbox', async () => {
  const context = await browser.browser.newContext({ javaScriptEnabled: false });
  const plain = await context.newPage();
  fs.mkdirSync(path.join(d.projectsRoot, 'nojs'), { recursive: true });
  await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, 'nojs'), type: 'research', abbreviation: 'nojs' });
  await plain.goto(`${d.url}/projects/nojs`);
  await plain.getByText('New ticket', { exact: true }).click();
  await plain.getByLabel('Title').fill('Compare three queue libraries');
  await plain.getByLabel('Description').fill('Line one\nLine two');
  await plain.getByRole('button', { name: 'File ticket' }).click();
  await plain.waitForURL(/done=filed/);
  expect((await d.api('GET', '/api/tickets/nojs-1')).body.ticket).toMatchObject({
    title: 'Compare three queue libraries',
    body: 'Line one\nLine two',
    column_id: 'human',
  });

  // filed by the person, so it waits in the inbox's backlog
  await plain.goto(`${d.url}/inbox?tab=backlog`);
  const item = plain.locator('.inbox-item', { hasText: 'Compare three queue libraries' });
  await item.getByText('Reply or send on').click();
  await item.getByLabel('Reply to nojs-1').fill('Include liteque.');
  await item.getByLabel('then').selectOption('researcher');
  await item.getByRole('button', { name: 'Send reply' }).click();
  await plain.waitForURL(/done=moved/);
  const shown = (await d.api('GET', '/api/tickets/nojs-1')).body;
  expect(shown.ticket.column_id).toBe('researcher');
  expect(shown.comments.filter((c: { type: string }) => c.type === 'move').at(-1)).toMatchObject({
    type: 'move',
    body: 'Include liteque.',
  });

  // a refused form comes back as the page with the message, not a blank or JSON page
  await plain.goto(`${d.url}/tickets/nojs-1`);
  await plain.getByLabel('Title').fill(' ');
  await plain.getByRole('button', { name: 'Save' }).click();
  await plain.locator('.form-error', { hasText: 'title must not be empty' }).waitFor();
  expect((await d.api('GET', '/api/tickets/nojs-1')).body.ticket.title).toBe('Compare three queue libraries');
  await context.close();
});

test('edit a prompt with the live preview and see the file on disk change', async () => {
  const file = path.join(d.home, 'prompts', 'editor.md');
  await page.goto(`${d.url}/agent-types/editor`);
  const prompt = page.getByLabel(/^Prompt/);
  await prompt.fill('# Editor\n\nTighten every sentence.\n\n<script>bad()</script>');
  await page.locator('#prompt-preview h1', { hasText: 'Editor' }).waitFor();
  expect(await page.locator('#prompt-preview script').count()).toBe(0);
  await page.getByLabel('Timeout (minutes)').fill('12');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(/done=saved/);
  expect(fs.readFileSync(file, 'utf8')).toBe('# Editor\n\nTighten every sentence.\n\n<script>bad()</script>');
  expect((await d.api('GET', '/api/agent-types/editor')).body.agent_type.timeout_minutes).toBe(12);
});

test('change a cap in settings and see config.json and the API change', async () => {
  await page.goto(`${d.url}/settings`);
  await page.getByLabel('Limit per project').fill('5');
  await page.getByLabel('Global limit').fill('8');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.waitForURL(/done=saved/);
  const file = JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8'));
  expect(file.agents).toMatchObject({ max_concurrent_per_project: 5, max_concurrent_global: 8 });
  expect((await d.api('GET', '/api/config')).body.config.agents).toMatchObject({ max_concurrent_per_project: 5, max_concurrent_global: 8 });
  expect(await page.getByLabel('Global limit').inputValue()).toBe('8');

  await page.getByLabel('Longest interval (seconds)').fill('10');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.locator('.field-error', { hasText: 'The longest interval must be at least the check interval' }).waitFor();
  expect(JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).heartbeat.max_interval_seconds).toBe(86400);
  // the refused save answered 400 on purpose; the browser logs that as a failed load
  browser.expectConsoleError('status of 400');
});

test('a running transcript appears live in the page', async () => {
  fs.mkdirSync(path.join(d.projectsRoot, 'live'), { recursive: true });
  await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, 'live'), type: 'software-dev', abbreviation: 'live' });
  await d.api('POST', '/api/tickets', { project: 'live', title: 'Watch me work' });
  const file = insertRun(d, { id: 'run-e2e-live', ticketKey: 'live-1', status: 'running' })!;
  const lines = fs.readFileSync(sampleTranscript, 'utf8').split('\n').filter(Boolean);
  writeTranscript(file, `${lines[0]}\n${lines[1]}\n`);
  await page.goto(`${d.url}/runs/run-e2e-live`);
  await page.locator('.tx-text', { hasText: "I'll record progress on abc-7." }).waitFor();
  expect(await page.locator('.tx-tool').count()).toBe(0);

  fs.appendFileSync(file, `${lines[2]}\n${lines[3]}\n`);
  await page.locator('.tx-tool', { hasText: "node ticket.cjs comment abc-7 'started'" }).waitFor();
  await page.locator('.tx-result', { hasText: 'ticket ok comment abc-7 started' }).waitFor();
  fs.appendFileSync(file, `${lines[4]}\n${lines[5]}\n`);
  await page.locator('.tx-result.is-error', { hasText: 'No such file or directory' }).waitFor();
  expect(await page.locator('.tx-text', { hasText: "I'll record progress" }).count()).toBe(1);

  fs.appendFileSync(file, lines.slice(6).join('\n') + '\n');
  setRunStatus(d, 'run-e2e-live', 'success');
  // the page reloads itself when the run ends and shows the final result
  await page.locator('.tx-final', { hasText: 'Ticket abc-7 is done.' }).waitFor();
  await page.locator('.facts .status-success').waitFor();
});
