// The confirm steps and pause controls in headless Chromium against the real daemon and fake agent:
// with JavaScript off, Archive and Kill lead to a confirm page and act only on its button; the
// header pauses every agent and the banner resumes them; an archived board has no write controls.
// With JavaScript on, the same buttons ask in a dialog, and dismissing it changes nothing.
import { browserPages } from './helpers/browser.js';
import { pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

const browser = browserPages();
let d: EngineDaemon;

beforeAll(async () => {
  d = await startEngineDaemon();
});
afterAll(async () => {
  await d?.stop();
});

const hanging = { '*': [{ do: 'hang' }] };

async function running(key: string) {
  return waitFor(`${key} running`, () => d.runs(key).find((r) => r.status === 'running' && r.pid));
}

test('without JavaScript: Archive asks on a page, then stops the agents; the archived board is read-only', async () => {
  await d.project('site', 'research', 'site');
  const t = await d.ticket('site', 'researcher', hanging, 'Audit the sitemap');
  await d.ticket('site', 'human', undefined, 'Pick a theme');
  const run = await running(t.key);
  await browser.withoutJs(async (page) => {
    await page.goto(`${d.url}/projects`);
    await page.getByRole('button', { name: 'Archive site' }).click();
    await page.getByRole('heading', { name: 'Archive site? 1 agent is running on it and will be stopped.' }).waitFor();
    // Cancel goes back and changes nothing
    await page.getByRole('link', { name: 'Cancel' }).click();
    await page.waitForURL(`${d.url}/projects`);
    expect((await d.api('GET', '/api/projects/site')).body.project.status).toBe('active');
    expect(pidAlive(run.pid)).toBe(true);

    await page.getByRole('button', { name: 'Archive site' }).click();
    await page.getByRole('button', { name: 'Archive site' }).click();
    await page.waitForURL(/\/projects\?done=archived/);
    expect((await d.api('GET', '/api/projects/site')).body.project.status).toBe('archived');
    expect(pidAlive(run.pid)).toBe(false);
    expect(d.ticketRow(t.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null });

    await page.goto(`${d.url}/projects/site`);
    await page.getByText('This project is archived: its board is read-only').waitFor();
    expect(await page.locator('.card').count()).toBe(2);
    expect(await page.getByText('New ticket', { exact: true }).count()).toBe(0);
    expect(await page.locator('.card-move button, .card[draggable], .running-flag, form[action$="/move"]').count()).toBe(0);
  });
});

test('without JavaScript: Kill on the run page asks on a page first', async () => {
  await d.project('tools', 'research', 'tools');
  const t = await d.ticket('tools', 'researcher', hanging);
  const run = await running(t.key);
  await browser.withoutJs(async (page) => {
    await page.goto(`${d.url}/runs/${run.id}`);
    await page.getByRole('button', { name: 'Kill this run' }).click();
    await page.getByRole('heading', { name: `Kill run ${run.id}?` }).waitFor();
    expect(d.runs(t.key)[0].status).toBe('running');
    await page.getByRole('button', { name: 'Kill the run' }).click();
    await page.waitForURL(new RegExp(`/runs/${run.id}\\?done=killed`));
  });
  expect(d.runs(t.key)[0].status).toBe('killed');
  expect(pidAlive(run.pid)).toBe(false);
  expect(d.ticketRow(t.key).column_id).toBe('human');
});

test('without JavaScript: the header pauses every agent, the banner shows it on every page and resumes', async () => {
  await d.project('mail', 'research', 'mail');
  await browser.withoutJs(async (page) => {
    await page.goto(`${d.url}/queues`);
    await page.locator('.pause-switch summary').click();
    await page.getByRole('button', { name: 'Pause new runs' }).click();
    await page.waitForURL(/\/queues\?done=agents-paused/);
    expect((await d.api('GET', '/api/health')).body.agents_paused).toEqual({ since: expect.any(Number) });
    for (const where of ['/inbox', '/projects', '/runs', '/settings']) {
      await page.goto(d.url + where);
      await page.locator('.paused-banner', { hasText: 'All agents paused' }).waitFor();
    }
    const t = await d.ticket('mail', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.waitForURL(/\/settings\?done=agents-resumed/);
    expect(await page.locator('.paused-banner').count()).toBe(0);
    await waitFor('the waiting ticket run after resume', () => d.ticketRow(t.key).column_id === 'done');
  });
});

test('with JavaScript: Kill asks in a dialog; dismissing it stops nothing', async () => {
  await d.project('apps', 'research', 'apps');
  const t = await d.ticket('apps', 'researcher', hanging);
  const run = await running(t.key);
  const page = browser.page;
  const asked: string[] = [];
  let accept = false;
  page.on('dialog', (dialog) => {
    asked.push(`${dialog.type()}: ${dialog.message()}`);
    void (accept ? dialog.accept() : dialog.dismiss());
  });
  await page.goto(`${d.url}/queues`);
  await page.getByRole('button', { name: `Kill run ${run.id} on ${t.key}` }).click();
  expect(asked).toEqual([`confirm: Kill run ${run.id} on ${t.key}? The ticket is parked in Human.`]);
  expect(page.url()).toBe(`${d.url}/queues`);
  expect(d.runs(t.key)[0].status).toBe('running');

  accept = true;
  await page.getByRole('button', { name: `Kill run ${run.id} on ${t.key}` }).click();
  await page.waitForURL(/\/queues\?done=killed/);
  expect(asked).toHaveLength(2);
  expect(d.runs(t.key)[0].status).toBe('killed');
  expect(pidAlive(run.pid)).toBe(false);
});

test('with JavaScript: Archive asks in a dialog with the number of running agents', async () => {
  await d.project('calm', 'research', 'calm');
  const page = browser.page;
  const asked: string[] = [];
  page.on('dialog', (dialog) => {
    asked.push(dialog.message());
    void dialog.accept();
  });
  await page.goto(`${d.url}/projects`);
  await page.getByRole('button', { name: 'Archive calm' }).click();
  await page.waitForURL(/\/projects\?done=archived/);
  expect(asked).toEqual(['Archive calm? No agent is running on it.']);
  expect((await d.api('GET', '/api/projects/calm')).body.project.status).toBe('archived');
});
