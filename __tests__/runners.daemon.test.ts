// Runners, the daemon's side (docs/RUNNERS.md), through the real daemon over real HTTP on 127.0.0.1,
// with real git repositories (a bare one as the project's remote). The test plays the runner with
// plain HTTP calls, as `dispatch runner` makes them: hello, claim, beats with transcript chunks and
// the end; the agent's transcript is what the fake claude prints. Tokens are shown once and kept
// as hashes; a runner gets no more runs than its slots; a silent runner's run ends crashed once and
// is retried; an agent on a runner changes only its own ticket, through /api/agent/ticket.
import crypto from 'node:crypto';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { commitFile, head, initRepo, sh } from './helpers/git.js';
import { comments, fakeClaude, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';

type Answer = { status: number; body: any };

/** A runner's call: JSON with its bearer token, as `dispatch runner` sends it. */
async function call(base: string, token: string | null, urlPath: string, body: unknown = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + urlPath, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function addRunner(d: EngineDaemon, name: string, slots: number): string {
  const r = d.cli(['runners', 'add', name, '--slots', String(slots)]);
  expect(r.status).toBe(0);
  const token = /dispatch runner --daemon \S+ --token (\S+)/.exec(r.stdout)?.[1];
  expect(token).toBeTruthy();
  return token!;
}

/** A project whose agents run on runners: a repository here, a bare remote that has its main branch. */
async function runnersProject(d: EngineDaemon, name: string, abbr: string): Promise<{ repo: string; remote: string }> {
  const repo = path.join(d.projectsRoot, name);
  initRepo(repo);
  const remote = path.join(d.root, `${name}-remote.git`);
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote]);
  sh(repo, ['push', '-q', remote, 'main']);
  await d.project(name, 'software-dev', abbr);
  const set = d.cli(['projects', 'set', abbr, '--remote', remote, '--runs-on', 'runners']);
  expect(set.stderr).toBe('');
  expect(set.status).toBe(0);
  return { repo, remote };
}

/** What the fake claude prints for a run (stream-json), as a runner's agent would print it. */
function fakeTranscript(key: string): string {
  const r = spawnSync(process.execPath, [fakeClaude, '-p', '--output-format', 'stream-json', '--verbose', '--model', 'sonnet'], {
    input: `Your ticket is ${key}`,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, DISPATCH_TICKET_ID: key, FAKE_CLAUDE_SCRIPT: JSON.stringify({ '*': [] }) },
  });
  expect(r.status).toBe(0);
  return r.stdout;
}

/** The runner's side of git: a clone of the remote, the ticket branch from main, one commit, pushed. */
function runnerCommits(remote: string, branch: string, file: string): string {
  const work = tempDir('pd-runner-work-');
  execFileSync('git', ['clone', '-q', remote, work], { env: process.env });
  sh(work, ['config', 'user.name', 'Runner']);
  sh(work, ['config', 'user.email', 'runner@example.invalid']);
  sh(work, ['checkout', '-q', '-b', branch, 'origin/main']);
  const commit = commitFile(work, file, `${file}\n`, `add ${file}`);
  sh(work, ['push', '-q', 'origin', branch]);
  return commit;
}

const liveRuns = (d: EngineDaemon) => d.db().prepare(`SELECT * FROM runs WHERE status IN ('queued', 'running')`).all() as any[];

test('runner tokens: shown once, kept as SHA-256 only, refused when wrong or revoked; runners list shows them', async () => {
  const d = await startEngineDaemon();
  try {
    const token = addRunner(d, 'box-1', 3);
    const row = d.db().prepare(`SELECT * FROM runners WHERE name = 'box-1'`).get() as any;
    expect(row.token_hash).toBe(crypto.createHash('sha256').update(token).digest('hex'));
    expect(row.slots).toBe(3);
    // the token itself is nowhere in the database file
    expect(fs.readFileSync(path.join(d.home, 'tasks.db')).includes(Buffer.from(token))).toBe(false);
    expect(d.cli(['runners', 'add', 'box-1']).status).not.toBe(0);

    for (const bad of [null, '', 'dpr_nope', token.slice(0, -1), `${token}x`]) {
      const res = await call(d.url, bad, '/api/runner/hello', { slots: 1 });
      expect([bad, res.status, typeof res.body.error]).toEqual([bad, 401, 'string']);
    }
    const hello = await call(d.url, token, '/api/runner/hello', { slots: 8, host: 'box-1.lan', version: '0.1.0' });
    expect(hello.status).toBe(200);
    expect(hello.body).toMatchObject({ name: 'box-1', lease_ms: 30_000, slots: 3 });
    expect(hello.body.beat_ms).toBeLessThan(hello.body.lease_ms);
    const listed = JSON.parse(d.cli(['runners', 'list', '--json']).stdout);
    expect(listed).toEqual([expect.objectContaining({ name: 'box-1', slots: 3, live_runs: 0, host: 'box-1.lan', revoked_at: null })]);
    expect(listed[0].last_seen_at).toBeGreaterThan(0);
    expect(d.cli(['runners', 'list']).stdout).toMatch(/box-1\s+3\s+0\s+\d+ s ago/);

    expect(d.cli(['runners', 'revoke', 'box-1']).status).toBe(0);
    expect((await call(d.url, token, '/api/runner/hello', {})).status).toBe(401);
    expect((await call(d.url, token, '/api/runner/claim', { free: 1, wait_seconds: 0 })).status).toBe(401);
    expect(JSON.parse(d.cli(['runners', 'list', '--json']).stdout)[0].revoked_at).toBeGreaterThan(0);
    // the token paths need their token, not the api_token, and no other path opens with a runner token
    expect((await call(d.url, token, '/api/agent/ticket', { argv: ['read', 'x-1'] })).status).toBe(401);
  } finally {
    await d.stop();
  }
}, 90_000);

test('a run on a runner: offered within its slots, transcript from beats, ended and finalized like a local run, branch fetched and merged', async () => {
  const d = await startEngineDaemon();
  try {
    await d.project('plain', 'software-dev', 'pl');
    const refused = d.cli(['projects', 'set', 'pl', '--runs-on', 'runners']);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/without a remote/);
    const { repo, remote } = await runnersProject(d, 'shop', 'sh');
    const token = addRunner(d, 'box', 1);
    expect((await call(d.url, token, '/api/runner/hello', { slots: 1, host: 'box', version: 't' })).status).toBe(200);

    const a = await d.ticket('sh', 'coding-agent', undefined, 'add invoices');
    const b = await d.ticket('sh', 'coding-agent', undefined, 'add receipts');
    await waitFor('both runs offered', () => liveRuns(d).length === 2, 30_000);
    const claim = await call(d.url, token, '/api/runner/claim', { free: 1 });
    expect(claim.status).toBe(200);
    const spec = claim.body.run;
    const key: string = spec.ticket_key;
    const other = key === a.key ? b.key : a.key;
    expect(spec).toMatchObject({
      branch: `ticket/${key}`,
      cli: 'claude',
      project: { abbreviation: 'sh', name: 'shop', remote_url: remote, main_branch: 'main' },
      agent: { id: 'coding-agent' },
    });
    expect(spec.agent.prompt.length).toBeGreaterThan(20);
    expect(spec.agent.task).toContain(`Your ticket is ${key}`);
    expect(spec.run_secret.length).toBeGreaterThan(20);
    // one slot: the second run waits for it
    expect((await call(d.url, token, '/api/runner/claim', { free: 1, wait_seconds: 0 })).status).toBe(204);
    expect(d.runs(other)[0]).toMatchObject({ status: 'queued', runner_id: null });

    // the agent: its transcript in two chunks, the second sent twice (a lost answer), its ticket moved through the daemon
    const id = spec.run_id;
    const transcript = fakeTranscript(key);
    const bytes = Buffer.from(transcript);
    const cut = transcript.indexOf('\n') + 1;
    let beat = await call(d.url, token, `/api/runner/runs/${id}/beat`, {
      pid: 4242,
      transcript: { offset: 0, data: transcript.slice(0, cut) },
    });
    expect(beat).toEqual({ status: 200, body: { stop: null } });
    expect(d.runs(key)[0]).toMatchObject({ status: 'running', runner_pid: 4242, pid: null });
    const rest = { offset: Buffer.byteLength(transcript.slice(0, cut)), data: transcript.slice(cut) };
    beat = await call(d.url, token, `/api/runner/runs/${id}/beat`, { transcript: rest });
    expect(beat.body).toEqual({ stop: null });
    beat = await call(d.url, token, `/api/runner/runs/${id}/beat`, { transcript: rest });
    expect(fs.readFileSync(path.join(d.home, 'artifacts', 'runs', `${id}.log`))).toEqual(bytes);
    const gap = await call(d.url, token, `/api/runner/runs/${id}/beat`, { transcript: { offset: bytes.length + 5, data: 'x' } });
    expect(gap.status).toBe(400);
    const live = await d.api('GET', `/api/runs/${id}/transcript?offset=0`);
    expect(live.status).toBe(200);

    const commit = runnerCommits(remote, `ticket/${key}`, 'invoice.txt');
    const secret = spec.run_secret;
    const ticketCall = (argv: string[]) => call(d.url, secret, '/api/agent/ticket', { argv });
    const read = await ticketCall(['read', key]);
    expect(read.status).toBe(200);
    expect(read.body.code).toBe(0);
    expect(JSON.parse(read.body.stdout).ticket.key).toBe(key);
    const moveOther = await ticketCall(['move', other, 'done']);
    expect(moveOther.body.code).toBe(1);
    expect(moveOther.body.stderr).toMatch(/only its own ticket/);
    expect(d.ticketRow(other).column_id).toBe('coding-agent');
    const moved = await ticketCall(['move', key, 'done', 'invoices are in']);
    expect([moved.status, moved.body.code, moved.body.stderr]).toEqual([200, 0, '']);
    // the branch is still on the runner's side: no merge until the run's end brings it back
    expect(d.ticketRow(key).merged_at).toBeNull();

    const end = await call(d.url, token, `/api/runner/runs/${id}/end`, { exit_code: 0, signal: null, push: { ok: true } });
    expect(end).toEqual({ status: 200, body: { status: 'success' } });
    expect(await call(d.url, token, `/api/runner/runs/${id}/end`, { exit_code: 0, signal: null, push: { ok: true } })).toEqual(end);
    const run = d.runs(key)[0];
    expect(run).toMatchObject({
      status: 'success',
      exit_code: 0,
      tokens_in: 6000,
      tokens_out: 150,
      result_text: `I could not read ${key}: denied`,
    });
    expect(run.cost_usd).toBeCloseTo(0.02025, 6);
    expect(d.ticketRow(key).claimed_by_run).toBeNull();
    expect(d.ticketRow(key).branch).toBe(`ticket/${key}`);
    expect(head(repo, `ticket/${key}`)).toBe(commit);
    // the merge worker merges it as a local run's branch
    await waitFor('merged', () => d.ticketRow(key).merged_at, 60_000, 100);
    expect(fs.readFileSync(path.join(repo, 'invoice.txt'), 'utf8')).toBe('invoice.txt\n');
    // finalized: its secret and its beats are refused
    expect((await ticketCall(['comment', key, 'comment', 'late'])).body).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/has ended/),
    });
    expect((await call(d.url, token, `/api/runner/runs/${id}/beat`, {})).status).toBe(409);

    // the slot is free again: the second ticket goes to the runner
    const second = await call(d.url, token, '/api/runner/claim', { free: 1 });
    expect(second.body.run.ticket_key).toBe(other);
    const list = JSON.parse(d.cli(['runners', 'list', '--json']).stdout);
    expect(list[0]).toMatchObject({ name: 'box', live_runs: 1 });
    // the Queues page lists the runner (name, slots, live runs, last seen) and where its run is
    const page = await (await fetch(`${d.url}/queues`)).text();
    const row = /<section aria-labelledby="runners-h">[\s\S]*?<\/section>/
      .exec(page)![0]
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ');
    expect(row).toMatch(/Runners \(1\) Name Slots Live runs Last seen Host box 1 1 (now|\S+ ago) box t/);
    expect(page).toContain('on runner box');
    // a user's kill: answered on the next beat, then the runner's end finalizes it as killed
    await call(d.url, token, `/api/runner/runs/${second.body.run.run_id}/beat`, { pid: 99 });
    const kill = d.api('POST', `/api/runs/${second.body.run.run_id}/kill`);
    await waitFor('stop answered', async () => (await call(d.url, token, `/api/runner/runs/${second.body.run.run_id}/beat`, {})).body.stop);
    const killedEnd = await call(d.url, token, `/api/runner/runs/${second.body.run.run_id}/end`, {
      exit_code: null,
      signal: 'SIGTERM',
      push: { ok: true },
    });
    expect(killedEnd.body).toEqual({ status: 'killed' });
    expect((await kill).status).toBe(200);
  } finally {
    await d.stop();
  }
}, 120_000);

test('a silent runner: its run ends crashed once after the lease, is retried, and a restarted daemon waits one lease for it', async () => {
  const d = await startEngineDaemon({ config: { runners: { lease_seconds: 2 } } });
  try {
    const { repo, remote } = await runnersProject(d, 'lab', 'lb');
    const token = addRunner(d, 'flaky', 2);
    // the ticket's branch exists here (a resolver's work, say): it is pushed to the remote before the run is offered
    const local = commitFile(repo, 'notes.txt', 'notes\n', 'notes on main');
    sh(repo, ['branch', 'ticket/lb-1', local]);
    sh(repo, ['reset', '-q', '--hard', 'HEAD~1']);
    const t = await d.ticket('lb', 'coding-agent', undefined, 'flaky work');
    expect(t.key).toBe('lb-1');
    const first = await call(d.url, token, '/api/runner/claim', { free: 1 });
    expect(first.status).toBe(200);
    expect(sh(remote, ['rev-parse', 'refs/heads/ticket/lb-1']).trim()).toBe(local);
    await call(d.url, token, `/api/runner/runs/${first.body.run.run_id}/beat`, { pid: 7 });
    // the runner dies: no beat, no end
    await waitFor('crashed', () => d.runs(t.key)[0].status === 'crashed', 30_000, 100);
    const crashed = d.runs(t.key)[0];
    expect(crashed.error).toMatch(/no heartbeat/);
    const notes = comments(d, t.key).filter((c) => c.type === 'system' && c.body.includes(first.body.run.run_id));
    expect(notes).toHaveLength(1);
    // retried by the usual policy: a new run is offered and taken
    const retry = await call(d.url, token, '/api/runner/claim', { free: 1 });
    expect(retry.status).toBe(200);
    expect(retry.body.run.ticket_key).toBe(t.key);
    expect(retry.body.run.run_id).not.toBe(first.body.run.run_id);
    // the late end of the crashed run changes nothing
    expect(await call(d.url, token, `/api/runner/runs/${first.body.run.run_id}/end`, { exit_code: 0, push: { ok: true } })).toEqual({
      status: 200,
      body: { status: 'crashed' },
    });
    expect(d.runs(t.key).filter((r: any) => r.status === 'crashed')).toHaveLength(1);

    // a restart: the taken run is not adopted by pid; its runner beats and ends it within the lease
    const id = retry.body.run.run_id;
    await call(d.url, token, `/api/runner/runs/${id}/beat`, { pid: 8 });
    await d.stop();
    const d2 = await startEngineDaemon({ root: d.root, config: { runners: { lease_seconds: 2 } } });
    try {
      const url = d2.url;
      const transcript = fakeTranscript(t.key);
      await waitFor(
        'beat accepted',
        async () => (await call(url, token, `/api/runner/runs/${id}/beat`, { transcript: { offset: 0, data: transcript } })).status === 200,
      );
      const ended = await waitFor('end accepted', async () => {
        const r = await call(url, token, `/api/runner/runs/${id}/end`, {
          exit_code: 0,
          signal: null,
          push: { ok: false, error: 'no network' },
        });
        return r.status === 200 && r.body;
      });
      expect(ended).toEqual({ status: 'success' });
      expect(comments(d2, t.key).some((c) => c.body.includes('could not push'))).toBe(true);
    } finally {
      await d2.stop();
    }
  } finally {
    await d.stop();
  }
}, 120_000);

test('a move whose work never reached the remote is taken back: a runner lost after its agent moved on, or a failed push', async () => {
  const d = await startEngineDaemon({ config: { runners: { lease_seconds: 2 } } });
  try {
    await runnersProject(d, 'till', 'tl');
    const token = addRunner(d, 'doomed', 2);
    const lost = await d.ticket('tl', 'coding-agent', undefined, 'lost on the way');
    const pushless = await d.ticket('tl', 'coding-agent', undefined, 'never pushed');
    const a = await call(d.url, token, '/api/runner/claim', { free: 2 });
    const b = await call(d.url, token, '/api/runner/claim', { free: 1 });
    const byKey = new Map([a, b].map((c) => [c.body.run.ticket_key, c.body.run]));
    const runOf = (key: string) => byKey.get(key)!;
    for (const key of [lost.key, pushless.key]) {
      await call(d.url, token, `/api/runner/runs/${runOf(key).run_id}/beat`, { pid: 9 });
      // the agent moves its ticket on, as an agent does last, before its runner pushed the branch
      const moved = await call(d.url, runOf(key).run_secret, '/api/agent/ticket', { argv: ['move', key, 'code-reviewer'] });
      expect([moved.status, moved.body.code]).toEqual([200, 0]);
      expect(d.ticketRow(key).column_id).toBe('code-reviewer');
    }
    // one runner falls silent with the first; for the second it reports a push that failed
    const ended = await call(d.url, token, `/api/runner/runs/${runOf(pushless.key).run_id}/end`, {
      exit_code: 0,
      signal: null,
      push: { ok: false, error: 'remote refused' },
    });
    expect(ended.status).toBe(200);
    await waitFor('the lost run crashed', () => d.runs(lost.key)[0].status === 'crashed', 30_000, 100);
    for (const [key, why] of [
      [lost.key, /runner was lost before the work reached the remote/],
      [pushless.key, /could not push ticket\/tl-2/],
    ] as const) {
      // back in coding-agent, moved by the system with the reason: the reviewer never sees a ticket without its work
      expect(d.ticketRow(key).column_id).toBe('coding-agent');
      const back = comments(d, key).filter((c) => c.type === 'move' && c.author === 'system');
      expect(back).toHaveLength(1);
      expect(back[0].body).toMatch(why);
      expect(back[0].body).toContain(runOf(key).run_id);
      expect(d.runs(key).some((r: any) => r.column_id === 'code-reviewer')).toBe(false);
    }
    // and the ticket is worked on again in its column, by the usual retry
    const retry = await waitFor(
      'a retry offered',
      async () => {
        const r = await call(d.url, token, '/api/runner/claim', { free: 1, wait_seconds: 1 });
        return r.status === 200 && r.body.run;
      },
      60_000,
      200,
    );
    expect([lost.key, pushless.key]).toContain(retry.ticket_key);
    expect(retry.agent.id).toBe('coding-agent');
  } finally {
    await d.stop();
  }
}, 120_000);

/** An address of this machine that is not loopback (connections from it come from a peer that is not loopback). */
const outside = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
const withOutside = outside ? test : test.skip;

withOutside(
  'listen on an address other machines reach: refused without a runner token; with one, they reach the runner paths only',
  async () => {
    const root = tempDir('pd-listen-');
    const config = { listen: outside };
    await expect(startEngineDaemon({ root, config })).rejects.toThrow(
      /"listen" is \S+, which other machines reach, but no runner token exists/,
    );
    // a token made while listening on 127.0.0.1 lets it start
    const local = await startEngineDaemon({ root });
    const early = await local.api('PATCH', '/api/config', { listen: outside });
    expect(early.status).toBe(400);
    expect(early.body).toMatchObject({ field: 'listen', error: expect.stringMatching(/needs a runner token first/) });
    const token = addRunner(local, 'far', 1);
    expect((await local.api('PATCH', '/api/config', { listen: outside })).status).toBe(200);
    await local.stop();
    const d = await startEngineDaemon({ root, config });
    try {
      const far = `http://${outside}:${d.port}`;
      // from that address the peer is not loopback: pages and the rest of the API are refused, whatever the Host
      for (const p of ['/api/health', '/api/projects', '/', '/settings', '/api/runners']) {
        const res = await fetch(far + p);
        expect([p, res.status]).toEqual([p, 403]);
      }
      const runnerPath = await call(far, token, '/api/runner/hello', { slots: 1, host: 'far' });
      expect(runnerPath.status).toBe(200);
      expect((await call(far, null, '/api/runner/hello', {})).status).toBe(401);
      expect((await call(far, 'dpr_wrong', '/api/runner/claim', { free: 1 })).status).toBe(401);
      expect((await call(far, 'not-a-secret', '/api/agent/ticket', { argv: ['read', 'x-1'] })).status).toBe(401);
      // this machine still reaches everything on 127.0.0.1
      expect((await d.api('GET', '/api/health')).status).toBe(200);
      expect(JSON.parse(d.cli(['runners', 'list', '--json']).stdout)[0]).toMatchObject({ name: 'far', host: 'far' });
    } finally {
      await d.stop();
    }
  },
  90_000,
);
