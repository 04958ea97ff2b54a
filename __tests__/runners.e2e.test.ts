// Runners end to end: the real daemon on 127.0.0.1, real `dispatch runner` processes, the fake
// agent as their `claude`, and a bare repository as the project's remote. A ticket goes through
// the project's agent columns on a runner and is merged into main by the daemon; an agent on a
// runner reaches its ticket only through the daemon, and only its own ticket.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { comments, pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { ticketBin } from './helpers/daemon.js';
import { getPage } from './helpers/web.js';
import { sh } from './helpers/git.js';
import { addRunner, runnerProject, startRunner, type RunningRunner } from './helpers/runner.js';

const pipeline = (file: string, content: string) => ({
  'coding-agent': [
    { do: 'write', file, content },
    { do: 'commit', message: `add ${file}` },
    { do: 'move', to: 'code-reviewer' },
  ],
  'code-reviewer': [{ do: 'move', to: 'security-reviewer' }],
  'security-reviewer': [{ do: 'move', to: 'done', comment: 'approved' }],
});

let d: EngineDaemon;
const runners: RunningRunner[] = [];
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop('SIGKILL');
  await d?.stop();
});

test('a ticket carried through code, review and security review by a runner is merged into main, its transcripts on the daemon', async () => {
  d = await startEngineDaemon({ config: { agents: { parallel_coding: true } } });
  const { repo, remote } = await runnerProject(d, 'shop', 'sh');
  const r = startRunner({ name: 'r1', token: await addRunner(d, 'r1', 1), daemonUrl: d.url, root: d.root });
  runners.push(r);
  await r.line(/ ready name=r1 /);
  const t = await d.ticket('sh', 'coding-agent', pipeline('invoice.txt', 'invoice\n'), 'invoices');
  await waitFor('the ticket merged', () => d.ticketRow(t.key).merged_at, 180_000, 200);

  // main (on the daemon's machine) has the file, committed on the runner by its agent
  expect(sh(repo, ['show', 'main:invoice.txt'])).toBe('invoice\n');
  expect(sh(repo, ['log', '--format=%an', 'main'])).toContain('Runner Agent');
  // the branch the runner pushed is the one that was merged
  const pushed = sh(remote, ['rev-parse', `refs/heads/ticket/${t.key}`]).trim();
  expect(sh(repo, ['merge-base', '--is-ancestor', pushed, 'main']) === '').toBe(true);

  const runs = d.runs(t.key);
  expect(runs.map((x) => [x.agent_type_id, x.status])).toEqual([
    ['coding-agent', 'success'],
    ['code-reviewer', 'success'],
    ['security-reviewer', 'success'],
  ]);
  for (const run of runs) {
    expect(run.runner_id).not.toBeNull();
    expect(r.output()).toMatch(new RegExp(`end delivered run=${run.id} ticket=${t.key} status=success`));
  }
  expect(
    comments(d, t.key)
      .filter((c) => c.type === 'move' && runs.some((x) => c.author === `${x.agent_type_id}:${x.id}`))
      .map((c) => c.to_column),
  ).toEqual(['code-reviewer', 'security-reviewer', 'done']);

  // the transcript the runner streamed is the daemon's: through the API and on the run page
  const coding = runs[0];
  const tr = await d.api('GET', `/api/runs/${coding.id}/transcript`);
  expect(tr.status).toBe(200);
  expect(tr.body.done).toBe(true);
  expect(tr.body.text).toContain('ticket move');
  expect(tr.body.text).toContain('"type":"result"');
  const page = await getPage(d, `/runs/${coding.id}`);
  expect(page.status).toBe(200);
  expect(page.html).toContain('ticket move');
  // the runner delivered everything and keeps nothing of finished runs
  expect(fs.readdirSync(path.join(r.dir, 'runs'))).toEqual([]);
}, 300_000);

test('an agent on a runner reaches tickets only through the daemon, and changes only its own ticket', async () => {
  d = await startEngineDaemon({ config: { agents: { parallel_coding: true } } });
  await runnerProject(d, 'shop', 'sh');
  const other = await d.ticket('sh', 'human', undefined, 'someone else');
  const r = startRunner({ name: 'r1', token: await addRunner(d, 'r1', 1), daemonUrl: d.url, root: d.root });
  runners.push(r);
  const envFile = path.join(d.root, 'agent-env.json');
  const mine = await d.ticket('sh', 'coding-agent', { 'coding-agent': [{ do: 'env', file: envFile }, { do: 'hang' }] }, 'mine');
  const env = await waitFor(
    'the agent on the runner',
    () =>
      fs.existsSync(envFile) && fs.statSync(envFile).size > 0 && (JSON.parse(fs.readFileSync(envFile, 'utf8')) as Record<string, string>),
    120_000,
  );
  // the runner's agent has the daemon's address and its run's secret, and no database
  expect(env.DISPATCH_API_URL).toBe(d.url);
  expect(env.DISPATCH_DB_PATH).toBeUndefined();
  expect(env.DISPATCH_TICKET_ID).toBe(mine.key);
  expect(env.DISPATCH_PROJECT_ID).toBe('sh');
  expect(env.DISPATCH_AGENT_TYPE).toBe('coding-agent');
  expect(env.PATH!.split(path.delimiter)[0]).toMatch(/bin[/\\]agent-path$/);
  const run = d.runs(mine.key)[0];
  expect(env.DISPATCH_RUN_ID).toBe(run.id);

  // the agent's ticket tool, as the agent calls it: no database here (the runner machine has none)
  const ticket = (args: string[], input?: string, secret = env.DISPATCH_RUN_SECRET!) =>
    spawnSync(process.execPath, [ticketBin, ...args], {
      env: {
        PATH: process.env.PATH,
        DISPATCH_API_URL: env.DISPATCH_API_URL,
        DISPATCH_RUN_SECRET: secret,
        DISPATCH_HOME: path.join(d.root, 'no-such-home'),
      },
      input,
      encoding: 'utf8',
      timeout: 60_000,
    });
  const own = ticket(['comment', mine.key, 'journal', '-'], 'working on it\nsecond line');
  expect(own.stderr).toBe('');
  expect(own.status).toBe(0);
  expect(JSON.parse(own.stdout)).toMatchObject({ ok: true, ticket: mine.key, type: 'journal' });
  const journal = comments(d, mine.key).find((c) => c.type === 'journal');
  expect(journal).toMatchObject({ body: 'working on it\nsecond line', author: `coding-agent:${run.id}` });
  // reading its project's tickets works; changing another ticket does not
  const read = ticket(['read', other.key]);
  expect(read.status).toBe(0);
  expect(JSON.parse(read.stdout).ticket.key).toBe(other.key);
  const before = comments(d, other.key).length;
  for (const args of [
    ['comment', other.key, 'comment', 'not mine'],
    ['move', other.key, 'done'],
    ['finding', other.key, 'high', 'title', 'body'],
  ]) {
    const res = ticket(args);
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`^ticket: .*only its own ticket ${mine.key}`));
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
  }
  expect(comments(d, other.key)).toHaveLength(before);
  expect(d.ticketRow(other.key).column_id).toBe('human');
  // a secret that proves no run gets nothing
  const forged = ticket(['read', mine.key], undefined, 'x'.repeat(43));
  expect(forged.status).toBe(1);
  expect(forged.stdout).toBe('');
  expect(forged.stderr.trim().split('\n')).toHaveLength(1);

  // a kill on the daemon reaches the agent on the runner (its next heartbeat is told to stop)
  const pid = Number(/agent spawned run=\S+ ticket=\S+ pid=(\d+)/.exec(await r.line(/agent spawned/))![1]);
  expect(pidAlive(pid)).toBe(true);
  expect((await d.api('POST', `/api/runs/${run.id}/kill`)).status).toBe(200);
  await waitFor('the agent killed on the runner', () => !pidAlive(pid), 60_000, 100);
  await r.line(new RegExp(`killing agent run=${run.id}`));
  expect(d.runs(mine.key)[0].status).toBe('killed');
  // with the run over, its secret is worth nothing, also through the daemon
  const late = ticket(['comment', mine.key, 'comment', 'too late']);
  expect(late.status).toBe(1);
  expect(late.stderr).toMatch(/has ended|no longer|not the secret/);
}, 300_000);
