// The web UI in headless Chromium against a daemon whose agents are real processes (the fake
// claude): a job that really failed is retried and then deleted from the queue inspector, a real
// agent's transcript arrives in the open run page while it works, and a hanging agent is killed
// from the inspector. Outcomes are checked in the database, not only on the page.
import type { Page } from 'playwright-core';
import { browserPages } from './helpers/browser.js';
import { comments, killAgents, pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { insertJob, jobEventRows, jobRow, pokeScanPool } from './helpers/web.js';
import { sqliteOnlyTest } from './helpers/queue.js';

const browser = browserPages();
let d: EngineDaemon;
let page: Page;

beforeAll(async () => {
  d = await startEngineDaemon();
});
afterAll(async () => {
  if (d) await killAgents(d);
  await d?.stop();
});
beforeEach(() => {
  page = browser.page;
});

// the job is written into liteque's table directly (an unknown project's scan): sqlite only
sqliteOnlyTest('retry a failed job in the queue inspector, watch its new attempt, then delete it', async () => {
  // a scan of a project that does not exist fails for real in the scan pool
  const id = insertJob(d, { queue: 'scan', payload: { projectId: 555_555, wakeSeq: 0 } });
  await pokeScanPool(d);
  await waitFor('the job failed', () => jobRow(d, id)?.status === 'failed', 20_000, 100);

  await page.goto(`${d.url}/queues`);
  await page.getByRole('link', { name: 'Queues' }).and(page.locator('[aria-current="page"]')).waitFor();
  const row = page.locator(`#job-${id}`);
  await row.locator('.status-failed').waitFor();
  expect(await row.locator('td.num').textContent()).toBe('1 / 1');
  await row.locator('.error-text', { hasText: 'project not found: 555555' }).waitFor();
  await row.getByRole('button', { name: `Retry job ${id}` }).click();
  await page.waitForURL(/\/queues\?done=retried$/);
  await page.getByRole('status').filter({ hasText: 'Job queued again.' }).waitFor();

  await waitFor(
    'the second attempt ended',
    () => jobEventRows(d, id).filter((e) => e.outcome === 'failed').length === 2 && jobRow(d, id)?.status === 'failed',
    20_000,
    100,
  );
  await page
    .getByRole('link', { name: `#${id}` })
    .first()
    .click();
  await page.waitForURL(new RegExp(`/queues/jobs/${id}$`));
  await page.locator('.facts', { hasText: '2 / 2' }).waitFor();
  const attempts = page.locator('table.attempts tbody tr');
  expect(await attempts.count()).toBe(2);
  expect(await attempts.nth(1).locator('td').first().textContent()).toBe('2');
  await attempts.nth(1).locator('.status-failed').waitFor();
  await attempts.nth(1).locator('.error-text', { hasText: 'project not found: 555555' }).waitFor();

  await page.getByRole('button', { name: `Delete job ${id}` }).click();
  await page.waitForURL(/\/queues\?done=deleted$/);
  await page.getByRole('status').filter({ hasText: 'Job deleted.' }).waitFor();
  expect(await page.locator(`#job-${id}`).count()).toBe(0);
  expect(jobRow(d, id)).toBeUndefined();
  // its attempts stay readable
  await page.goto(`${d.url}/queues/jobs/${id}`);
  await page.getByText('no longer queued').waitFor();
  expect(await page.locator('table.attempts tbody tr').count()).toBe(2);
});

test('a real agent run: the transcript grows in the open page, then shows the result', async () => {
  await d.project('livelab', 'research', 'll');
  const script = {
    researcher: [
      { do: 'comment', type: 'journal', body: 'first finding noted' },
      { do: 'sleep', ms: 4000 },
      { do: 'comment', type: 'journal', body: 'second finding noted' },
      { do: 'sleep', ms: 1500 },
      { do: 'move', to: 'done', comment: 'research complete' },
    ],
  };
  const t = await d.ticket('ll', 'researcher', script, 'Survey the field');
  const run = await waitFor(
    'the agent wrote its first note',
    () => comments(d, t.key).some((c) => c.body === 'first finding noted') && d.runs(t.key)[0],
    20_000,
  );
  await page.goto(`${d.url}/runs/${run.id}`);
  await page.locator('.facts .status-running').waitFor();
  await page.locator('.tx-tool', { hasText: 'first finding noted' }).waitFor();
  expect(await page.locator('.tx-tool', { hasText: 'second finding noted' }).count()).toBe(0);
  // a marker that a reload would wipe: the next entries must arrive into this same document
  await page.evaluate(() => document.body.setAttribute('data-test-marker', 'still-here'));
  await page.locator('.tx-tool', { hasText: 'second finding noted' }).waitFor({ timeout: 15_000 });
  await page.locator('.tx-result', { hasText: 'second finding noted' }).waitFor();
  expect(await page.locator('body[data-test-marker="still-here"]').count()).toBe(1);
  expect(await page.locator('.tx-tool', { hasText: 'first finding noted' }).count()).toBe(1);

  // when the run ends the page reloads itself and shows the final result
  await page.locator('.tx-final', { hasText: `Done with ${t.key}.` }).waitFor({ timeout: 20_000 });
  await page.locator('.facts .status-success').waitFor();
  expect(d.runs(t.key)[0].status).toBe('success');
  expect(d.ticketRow(t.key).column_id).toBe('done');
});

test('kill a hanging agent from the queue inspector: the run is killed and the ticket lands in human', async () => {
  await d.project('stuck', 'research', 'st');
  const t = await d.ticket('st', 'researcher', { researcher: [{ do: 'hang' }] }, 'Never finishes');
  const run = await waitFor('running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid), 20_000);
  await page.goto(`${d.url}/queues`);
  const agents = page.locator('section[aria-labelledby="agents-h"]');
  const row = agents.locator('tr', { hasText: run.id });
  await row.getByRole('link', { name: t.key }).waitFor();
  expect((await row.locator('td').nth(3).textContent())?.trim()).toBe(String(run.pid));
  // the kill asks first; accepting the dialog posts the form with confirm=1
  const asked: string[] = [];
  page.once('dialog', (dialog) => {
    asked.push(dialog.message());
    void dialog.accept();
  });
  await row.getByRole('button', { name: `Kill run ${run.id} on ${t.key}` }).click();
  await page.waitForURL(/\/queues\?done=killed$/);
  expect(asked).toEqual([`Kill run ${run.id} on ${t.key}? The ticket is parked in Human.`]);
  await page.getByRole('status').filter({ hasText: 'Run stopped.' }).waitFor();
  expect(await agents.locator('tr', { hasText: run.id }).count()).toBe(0);
  expect(d.runs(t.key)[0].status).toBe('killed');
  expect(pidAlive(run.pid)).toBe(false);
  expect(d.ticketRow(t.key).column_id).toBe('human');

  await page.goto(`${d.url}/runs/${run.id}`);
  await page.locator('.facts .status-killed').waitFor();
  await page.goto(`${d.url}/tickets/${t.key}`);
  await page.locator('.meta .pill', { hasText: 'Human' }).waitFor();
  await page.goto(`${d.url}/inbox`);
  await page.locator('.inbox-item', { hasText: 'Never finishes' }).waitFor();
});
