// The queue inspector pages against the real daemon (fake claude as the agent binary): counts,
// the job list with its filters and pages, a job's page from its row or from its attempts alone,
// retry and delete as form posts checked in the database, bad input answered with a 4xx page
// that says why, payloads and errors escaped, and the running agents with their kill button.
import { killAgents, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { getPage, insertJob, insertJobEvent, jobEventRows, jobRow, pokeScanPool, postForm, token } from './helpers/web.js';

let d: EngineDaemon;
let csrf: string;
const FAR = Date.now() + 7 * 24 * 3600_000;

beforeAll(async () => {
  d = await startEngineDaemon();
  csrf = await token(d);
});
afterAll(async () => {
  await killAgents(d);
  await d.stop();
});

/** A scan job of a project that does not exist: it fails for real on its only attempt. */
async function failingScan(): Promise<number> {
  const id = insertJob(d, { queue: 'scan', payload: { projectId: 987_654, wakeSeq: 0 } });
  await pokeScanPool(d);
  await waitFor('the scan job failed', () => jobRow(d, id)?.status === 'failed', 20_000, 100);
  return id;
}

function text(html: string): string {
  return html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
}

/** An element as a reader sees it: its attributes (entities decoded) and its text, whatever the markup's spelling and order. */
interface Element {
  attrs: Record<string, string>;
  text: string;
}
const decode = (v: string) =>
  v
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
function elements(html: string, tag: string): Element[] {
  const re = new RegExp(`<${tag}\\b([^>]*)>(?:([\\s\\S]*?)</${tag}>)?`, 'gi');
  return [...html.matchAll(re)].map((m) => ({
    attrs: Object.fromEntries([...m[1]!.matchAll(/([\w:-]+)(?:="([^"]*)")?/g)].map((a) => [a[1]!, decode(a[2] ?? '')])),
    text: decode(text(m[2] ?? '').trim()),
  }));
}
/** The elements of `tag` that have every attribute given (an empty value: the attribute is present). */
const find = (html: string, tag: string, attrs: Record<string, string>) =>
  elements(html, tag).filter((e) => Object.entries(attrs).every(([k, v]) => (v === '' ? k in e.attrs : e.attrs[k] === v)));

describe('the inspector page', () => {
  test('counts per queue and state, the job list with payload and last error, and the attempts', async () => {
    const id = await failingScan();
    const page = await getPage(d, '/queues');
    expect(page.status).toBe(200);
    expect(find(page.html, 'a', { href: '/queues', 'aria-current': 'page' }).map((a) => a.text)).toEqual(['Queues']);
    const counts = (await d.api('GET', '/api/queues')).body.queues as { queue: string; failed: number }[];
    const scanFailed = counts.find((c) => c.queue === 'scan')!.failed;
    const failedLink = find(page.html, 'a', { href: '/queues?queue=scan&state=failed', 'aria-label': `${scanFailed} failed scan jobs` });
    expect(failedLink.map((a) => a.text)).toEqual([String(scanFailed)]);
    const row = page.html.slice(page.html.indexOf(`<tr id="job-${id}">`));
    const cells = text(row.slice(0, row.indexOf('</tr>')));
    expect(cells).toContain(`#${id} scan failed 1 / 1`);
    expect(cells).toContain('&quot;projectId&quot;: 987654');
    expect(cells).toContain('project not found: 987654');
    expect(row).toContain(`aria-label="Retry job ${id}"`);
    expect(row).toContain(`aria-label="Delete job ${id}"`);
    // the attempt shows under recent attempts too, linked to its job
    expect(find(page.html, 'a', { href: `/queues/jobs/${id}` }).map((a) => a.text)).toContain(`#${id}`);
  });

  test('the list filters by queue and state and pages by 50 without a total count', async () => {
    const ids: number[] = [];
    for (let i = 1; i <= 60; i++)
      ids.push(
        insertJob(d, { queue: 'merge', payload: { ticketId: 10_000 + i }, status: 'pending', availableAt: FAR, runsLeft: 4, maxRuns: 4 }),
      );
    const first = await getPage(d, '/queues?queue=merge&state=pending');
    expect(first.status).toBe(200);
    const listed = (html: string) => [...html.matchAll(/<tr id="job-(\d+)">/g)].map((m) => Number(m[1]));
    expect(listed(first.html)).toEqual(ids.slice().reverse().slice(0, 50));
    expect(find(first.html, 'option', { selected: '' }).map((o) => [o.attrs.value, o.text])).toEqual([
      ['merge', 'merge'],
      ['pending', 'pending'],
    ]);
    expect(find(first.html, 'a', { rel: 'next' }).map((a) => a.attrs.href)).toEqual(['/queues?queue=merge&state=pending&page=2']);
    const second = await getPage(d, '/queues?queue=merge&state=pending&page=2');
    expect(listed(second.html)).toEqual(ids.slice(0, 10).reverse());
    expect(find(second.html, 'a', { rel: 'next' })).toEqual([]);
    // a pending job can be deleted but not retried
    expect(second.html).toContain(`aria-label="Delete job ${ids[0]}"`);
    expect(second.html).not.toContain(`aria-label="Retry job ${ids[0]}"`);
    const otherQueue = await getPage(d, '/queues?queue=agent-run&state=pending');
    expect(listed(otherQueue.html)).toEqual([]);
    expect(otherQueue.html).toContain('No pending jobs in agent-run');
  });

  test('an unknown queue or state answers 400 with the message', async () => {
    const badQueue = await getPage(d, '/queues?queue=email');
    expect(badQueue.status).toBe(400);
    expect(badQueue.html).toContain('queue must be one of scan, agent-run, merge');
    const badState = await getPage(d, '/queues?state=done');
    expect(badState.status).toBe(400);
    expect(badState.html).toContain('state must be one of pending, pending_retry, running, failed');
  });
});

describe('a job page', () => {
  test('shows a queued job with its data and links what it is about', async () => {
    await d.project('jobsite', 'research', 'js');
    const project = (await d.api('GET', '/api/projects/js')).body.project;
    const id = insertJob(d, {
      queue: 'scan',
      payload: { projectId: project.id, wakeSeq: 3 },
      status: 'pending',
      availableAt: FAR,
      runsLeft: 3,
      maxRuns: 3,
    });
    const page = await getPage(d, `/queues/jobs/${id}`);
    expect(page.status).toBe(200);
    const t = text(page.html);
    expect(t).toContain(`Job #${id} in scan`);
    expect(t).toContain('State pending');
    expect(t).toContain('Attempts 0 / 3');
    expect(page.html).toContain('&quot;wakeSeq&quot;: 3');
    expect(find(page.html, 'a', { href: '/projects/js' }).map((a) => a.text)).toContain('project jobsite');
    expect(page.html).toContain('This job has not run yet.');
  });

  test('a completed job (its row deleted by liteque) is shown from its recorded attempts', async () => {
    const id = 900_001;
    insertJobEvent(d, {
      jobId: id,
      queue: 'agent-run',
      attempt: 1,
      outcome: 'retry',
      error: 'spawn failed: EAGAIN',
      payload: { runId: 'run-gone' },
    });
    insertJobEvent(d, { jobId: id, queue: 'agent-run', attempt: 2, outcome: 'completed', payload: { runId: 'run-gone' } });
    const page = await getPage(d, `/queues/jobs/${id}`);
    expect(page.status).toBe(200);
    const t = text(page.html);
    expect(t).toContain(`Job #${id} in agent-run`);
    expect(t).toContain('no longer queued');
    expect(t).toContain('liteque deletes completed jobs');
    expect(t).toMatch(/1 retry .* spawn failed: EAGAIN/);
    expect(t).toMatch(/2 completed /);
    expect(page.html).toContain('&quot;runId&quot;: &quot;run-gone&quot;');
    // nothing to retry or delete
    expect(page.html).not.toContain('/retry"');
    expect(page.html).not.toContain('/delete"');
  });

  test('a malformed id answers 400 and an unknown one 404, each with the message', async () => {
    for (const bad of ['a%20b', '.hidden', 'x%2Fy', 'a%3Cb', 'x'.repeat(301)]) {
      const page = await getPage(d, `/queues/jobs/${bad}`);
      expect([bad, page.status]).toEqual([bad, 400]);
      expect(page.html).toContain('job id must be a job id as listed on this page');
    }
    const missing = await getPage(d, '/queues/jobs/424242');
    expect(missing.status).toBe(404);
    expect(missing.html).toContain('job not found: 424242');
  });
});

describe('retry and delete', () => {
  test('retrying a failed job runs it again: one more attempt, recorded with its error', async () => {
    const id = await failingScan();
    const res = await postForm(d, `/queues/jobs/${id}/retry`, { _csrf: csrf, return_to: '/queues?queue=scan&state=failed' });
    expect(res.status).toBe(303);
    expect(res.location).toBe('/queues?queue=scan&state=failed&done=retried');
    // the attempt is recorded just before liteque marks the row, so wait for both
    await waitFor(
      'the second attempt ended',
      () => jobEventRows(d, id).length === 2 && jobEventRows(d, id)[1]!.outcome === 'failed' && jobRow(d, id)?.status === 'failed',
      20_000,
      100,
    );
    expect(jobRow(d, id)).toMatchObject({ status: 'failed', numRunsLeft: 0, maxNumRuns: 2 });
    expect(jobEventRows(d, id)).toEqual([
      { attempt: 1, outcome: 'failed', error: 'project not found: 987654' },
      { attempt: 2, outcome: 'failed', error: 'project not found: 987654' },
    ]);
    const page = await getPage(d, `/queues/jobs/${id}?done=retried`);
    expect(page.html).toContain('Job queued again.');
    expect(text(page.html)).toContain('Attempts 2 / 2');
    expect(find(page.html, 'h2', { id: 'attempts-h' }).map((h2) => h2.text)).toEqual(['Attempts (2)']);
  });

  test('retrying a job that has not failed is refused on the job page with 400, and changes nothing', async () => {
    const id = insertJob(d, { queue: 'merge', payload: { ticketId: 77 }, status: 'pending', availableAt: FAR, runsLeft: 4, maxRuns: 4 });
    const res = await postForm(d, `/queues/jobs/${id}/retry`, { _csrf: csrf });
    expect(res.status).toBe(400);
    expect(res.html).toContain(`job ${id} is not a failed job, so there is nothing to retry`);
    expect(text(res.html)).toContain(`Job #${id} in merge`);
    expect(jobRow(d, id)).toEqual({ status: 'pending', numRunsLeft: 4, maxNumRuns: 4 });
    const unknown = await postForm(d, '/queues/jobs/424242/retry', { _csrf: csrf });
    expect(unknown.status).toBe(404);
    expect(unknown.html).toContain('job not found: 424242');
    const malformed = await postForm(d, '/queues/jobs/x%20y/retry', { _csrf: csrf });
    expect(malformed.status).toBe(400);
    expect(malformed.html).toContain('job id must be a job id as listed on this page');
  });

  test('deleting a failed job removes its row; its page lives on from its attempts', async () => {
    const id = await failingScan();
    const res = await postForm(d, `/queues/jobs/${id}/delete`, { _csrf: csrf, return_to: `/queues/jobs/${id}` });
    expect(res.status).toBe(303);
    expect(res.location).toBe('/queues?done=deleted');
    expect(jobRow(d, id)).toBeUndefined();
    const page = await getPage(d, `/queues/jobs/${id}`);
    expect(page.status).toBe(200);
    expect(text(page.html)).toContain('it was deleted');
    // deleting it again is refused: it is gone
    const again = await postForm(d, `/queues/jobs/${id}/delete`, { _csrf: csrf });
    expect(again.status).toBe(400);
    expect(again.html).toContain(`job ${id} cannot be deleted: only pending and failed jobs can, and it is no longer queued`);
  });

  test('a running job cannot be deleted', async () => {
    const id = insertJob(d, { queue: 'merge', payload: { ticketId: 78 }, status: 'running', runsLeft: 3, maxRuns: 4 });
    const page = await getPage(d, `/queues/jobs/${id}`);
    expect(page.html).not.toContain(`aria-label="Delete job ${id}"`);
    expect(text(page.html)).toContain('Lease until');
    const res = await postForm(d, `/queues/jobs/${id}/delete`, { _csrf: csrf });
    expect(res.status).toBe(400);
    expect(res.html).toContain(`job ${id} cannot be deleted: only pending and failed jobs can, and it is running`);
    expect(jobRow(d, id)?.status).toBe('running');
  });

  test('retry and delete without the form token, or from another site, are refused and change nothing', async () => {
    const id = insertJob(d, { queue: 'merge', payload: { ticketId: 79 }, status: 'failed', runsLeft: 0, maxRuns: 4 });
    expect((await postForm(d, `/queues/jobs/${id}/retry`, {})).status).toBe(403);
    expect((await postForm(d, `/queues/jobs/${id}/delete`, { _csrf: 'wrong' })).status).toBe(403);
    expect((await postForm(d, `/queues/jobs/${id}/delete`, { _csrf: csrf }, { origin: 'http://evil.example' })).status).toBe(403);
    expect(jobRow(d, id)).toEqual({ status: 'failed', numRunsLeft: 0, maxNumRuns: 4 });
  });
});

test('payloads and errors are escaped in the list and on the job page', async () => {
  const evil = '</code></pre><script>alert(1)</script><img src=x onerror=alert(2)>';
  const id = insertJob(d, { queue: 'agent-run', payload: { runId: evil }, status: 'failed', runsLeft: 0, maxRuns: 3 });
  insertJobEvent(d, { jobId: id, queue: 'agent-run', attempt: 3, outcome: 'failed', error: `spawn failed: ${evil}` });
  const notJson = insertJob(d, { queue: 'scan', payload: `not json <b>${evil}`, status: 'failed', runsLeft: 0, maxRuns: 1 });
  for (const url of ['/queues?state=failed', `/queues/jobs/${id}`, `/queues/jobs/${notJson}`]) {
    const page = await getPage(d, url);
    expect([url, page.status]).toEqual([url, 200]);
    expect(page.html).not.toContain('<script>alert');
    expect(page.html).not.toContain('<img src=x');
    expect(page.html).not.toContain('<b>');
  }
  const list = (await getPage(d, '/queues?state=failed')).html;
  expect(list).toContain('spawn failed: &lt;/code&gt;&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(list).toContain('not json &lt;b&gt;');
});

test('running agents are listed with pid and elapsed time, and the kill button stops one', async () => {
  await d.project('hangs', 'research', 'hg');
  const t = await d.ticket('hg', 'researcher', { researcher: [{ do: 'hang' }] }, 'Hang <forever>');
  const run = await waitFor('running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid));
  const page = await getPage(d, '/queues');
  const section = page.html.slice(page.html.indexOf('id="agents-h"'), page.html.indexOf('id="jobs-h"'));
  expect(find(section, 'a', { href: `/runs/${run.id}` }).map((a) => a.text)).toEqual([run.id]);
  expect(find(section, 'a', { href: `/tickets/${t.key}` }).map((a) => a.text)).toEqual([t.key]);
  expect(section).toContain('Hang &lt;forever&gt;');
  expect(elements(section, 'code').map((c) => c.text)).toContain(String(run.pid));
  const elapsed = find(section, 'time', { datetime: '' });
  expect(elapsed).toHaveLength(1);
  expect(Number.isNaN(Date.parse(elapsed[0]!.attrs.datetime!))).toBe(false);
  expect(elapsed[0]!.text).toMatch(/^\d+s$/);
  expect(section).toContain(`aria-label="Kill run ${run.id} on ${t.key}"`);
  // the button asks first: without confirm=1 the answer is the confirm page, and nothing is stopped
  const ask = await postForm(d, `/runs/${run.id}/kill`, { _csrf: csrf, return_to: '/queues' });
  expect(ask.status).toBe(200);
  expect(ask.html).toContain(`Kill run ${run.id}?`);
  expect(find(ask.html, 'input', { type: 'hidden', name: 'confirm' }).map((i) => i.attrs.value)).toEqual(['1']);
  expect(find(ask.html, 'a', { href: '/queues' }).map((a) => a.text)).toContain('Cancel');
  expect(d.runs(t.key)[0].status).toBe('running');
  const res = await postForm(d, `/runs/${run.id}/kill`, { _csrf: csrf, return_to: '/queues', confirm: '1' });
  expect(res.status).toBe(303);
  expect(res.location).toBe('/queues?done=killed');
  expect(d.runs(t.key)[0].status).toBe('killed');
  expect(d.ticketRow(t.key).column_id).toBe('human');
  const after = await getPage(d, '/queues?done=killed');
  expect(after.html).toContain('Run stopped.');
  expect(after.html).not.toContain(`/runs/${run.id}/kill`);
});
