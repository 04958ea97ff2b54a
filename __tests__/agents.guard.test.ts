// Hostile agents, through the real daemon: an agent with an unrestricted shell (the sysadmin agent
// type allows plain `Bash`) trying to forge its scope and authorship, claims left behind by hand or
// released under a live run, two agents passing a ticket back and forth, and an agent whose ticket
// a person took away. Each one is what an attack pass did to the product; each must fail now.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { moveTicket } from '../lib/tickets.js';
import { openDb } from '../lib/db/connection.js';
import { createStore } from '../lib/store.js';
import { ticketBin } from './helpers/daemon.js';
import { agentAtWork, comments, killAgents, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

/** A read-write handle on the daemon's database: what a process of the same user can always do. */
function writable(d: EngineDaemon): Database.Database {
  const db = new Database(path.join(d.home, 'tasks.db'), { fileMustExist: true });
  db.pragma('busy_timeout = 10000');
  return db;
}

const lines = (file: string) =>
  fs.existsSync(file)
    ? fs
        .readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { command: string; status: number | null; stdout: string; stderr: string })
    : [];

test('an agent with a shell cannot reach another project, another ticket, another author or the claims', async () => {
  const d = await startEngineDaemon();
  try {
    await d.project('alpha', 'vps-maintenance', 'pa');
    await d.project('beta', 'vps-maintenance', 'pb');
    const theirs = await d.ticket('pb', 'human', undefined, "another project's ticket");
    const sibling = await d.ticket('pa', 'human', undefined, 'a sibling ticket');
    const out = path.join(d.root, 'probe.jsonl');
    const envFile = path.join(d.root, 'agent-env.json');
    const sh = (command: string) => ({ do: 'sh', command, out });
    const mine = await d.ticket('pa', 'sysadmin', {
      sysadmin: [
        { do: 'env', file: envFile },
        sh('DISPATCH_PROJECT_ID=pb ticket move pb-1 done'),
        sh('DISPATCH_PROJECT_ID=pb ticket read pb-1'),
        sh("DISPATCH_RUN_SECRET=guessed ticket comment pa-2 comment 'from the agent'"),
        sh("DISPATCH_AUTHOR=human ticket comment pa-2 comment 'signed, the person'"),
        sh('ticket read pa-1'),
        sh('ticket move pa-1 done'),
        sh("DISPATCH_AUTHOR=human ticket comment pa-1 comment 'signed, the person'"),
        sh('ticket claim pa-2 bogus-run'),
        sh('ticket release pa-2'),
        sh('env -u DISPATCH_RUN_SECRET DISPATCH_PROJECT_ID=pb ticket read pb-1'),
        { do: 'move', to: 'human', comment: 'probing finished' },
      ],
    });
    expect([theirs.key, sibling.key, mine.key]).toEqual(['pb-1', 'pa-1', 'pa-2']);
    await waitFor('the probe to end', () => d.runs(mine.key)[0]?.ended_at, 60_000);
    const run = d.runs(mine.key)[0];
    const results = lines(out);
    expect(results.map((r) => r.status)).toEqual([1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
    expect(results[0]!.stderr).toBe('ticket: ticket pb-1 belongs to another project; this process may only read pa tickets\n');
    expect(results[1]!.stderr).toMatch(/belongs to another project/);
    expect(results[2]!.stderr).toMatch(/DISPATCH_RUN_SECRET is not the secret of any agent run/);
    expect(JSON.parse(results[4]!.stdout).ticket.title).toBe('a sibling ticket');
    expect(results[5]!.stderr).toMatch(new RegExp(`run ${run.id} may change only its own ticket pa-2, not pa-1`));
    expect(results[6]!.stderr).toMatch(/may change only its own ticket pa-2, not pa-1/);
    expect(results[7]!.stderr).toMatch(/unknown command "claim"/);
    expect(results[8]!.stderr).toMatch(/unknown command "release"/);
    expect(results[9]!.stderr).toMatch(new RegExp(`this process runs inside agent run ${run.id}: it needs that run's DISPATCH_RUN_SECRET`));

    // nothing outside its own ticket changed; its own history carries the run as author
    expect(d.ticketRow('pb-1').column_id).toBe('human');
    expect(comments(d, 'pb-1').map((c) => c.type)).toEqual(['move']);
    expect(d.ticketRow('pa-1').column_id).toBe('human');
    expect(comments(d, 'pa-1').map((c) => c.type)).toEqual(['move']);
    const history = comments(d, mine.key);
    const signed = history.find((c) => c.body === 'signed, the person');
    expect(signed.author).toBe(`sysadmin:${run.id}`);
    expect(history.filter((c) => c.author === 'human').map((c) => c.body)).toEqual(['created']);
    expect(history.at(-1)).toMatchObject({ type: 'move', to_column: 'human', author: `sysadmin:${run.id}` });
    expect(run.status).toBe('success');

    // the agent got its secret, no author variable; the database holds only the secret's hash
    const env = JSON.parse(fs.readFileSync(envFile, 'utf8')) as Record<string, string>;
    expect(env.DISPATCH_AUTHOR).toBeUndefined();
    expect(env.DISPATCH_RUN_SECRET).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(run.secret_hash).toBe(createHash('sha256').update(env.DISPATCH_RUN_SECRET!).digest('hex'));
    for (const f of ['tasks.db', 'tasks.db-wal']) {
      const file = path.join(d.home, f);
      if (fs.existsSync(file)) expect(fs.readFileSync(file).includes(env.DISPATCH_RUN_SECRET!)).toBe(false);
    }
    // the hash stays in the database: no API answer carries it
    for (const url of ['/api/runs', `/api/runs/${run.id}`, `/api/tickets/${mine.key}`]) {
      const answer = await d.api('GET', url);
      expect(answer.status).toBe(200);
      expect(JSON.stringify(answer.body)).not.toContain('secret_hash');
    }
    // and once the run has ended, its secret opens nothing
    const late = spawnSync(process.execPath, [ticketBin, 'read', mine.key], {
      env: { PATH: process.env.PATH, DISPATCH_DB_PATH: env.DISPATCH_DB_PATH, DISPATCH_RUN_SECRET: env.DISPATCH_RUN_SECRET },
      encoding: 'utf8',
    });
    expect([late.status, late.stderr]).toEqual([1, `ticket: run ${run.id} has ended (success); its secret no longer works\n`]);
  } finally {
    await killAgents(d);
    await d.stop();
  }
}, 180_000);

test('claims whose run is not live are released by each scan and at start-up; a released live claim never stalls the project', async () => {
  const hour = { heartbeat: { base_interval_seconds: 3600, max_interval_seconds: 86400, backoff_multiplier: 2 } };
  let d = await startEngineDaemon({ config: hour });
  const root = d.root;
  try {
    await d.project('lab', 'research', 'rs');
    // a claim by a run that does not exist (what `ticket claim rs-1 bogus-run` used to write), then the ticket is sent to the agent
    const bogus = await d.ticket('rs', 'human', { researcher: [{ do: 'move', to: 'done' }] });
    let db = writable(d);
    db.prepare(`UPDATE tickets SET claimed_by_run = 'bogus-run', claimed_at = ? WHERE id = ?`).run(Date.now(), d.ticketRow(bogus.key).id);
    db.close();
    expect(d.cli(['ticket', 'move', bogus.key, 'researcher']).status).toBe(0);
    await waitFor('the stranded ticket to be worked on', () => d.ticketRow(bogus.key).column_id === 'done', 60_000);
    expect(
      comments(d, bogus.key)
        .filter((c) => c.type === 'system')
        .map((c) => c.body),
    ).toEqual(['Released a claim held by "bogus-run", which is not a live run; the ticket can be picked up again.']);

    // the same left behind while the daemon is down, with the next heartbeat an hour away: start-up repair finds it
    const later = await d.ticket('rs', 'human', { researcher: [{ do: 'move', to: 'done' }] });
    await d.stop();
    const dbFile = path.join(root, 'home', 'tasks.db');
    const offline = openDb(dbFile);
    moveTicket(createStore(offline), later.key, 'researcher', { actor: 'human' });
    offline
      .prepare(
        `UPDATE tickets SET claimed_by_run = 'bogus-run' WHERE project_id = (SELECT id FROM projects WHERE abbreviation = 'rs') AND number = 2`,
      )
      .run();
    offline.prepare(`UPDATE heartbeats SET next_check_at = ?`).run(Date.now() + 3_600_000);
    offline.close();
    d = await startEngineDaemon({ root, config: hour });
    await waitFor('the ticket stranded across a restart to be worked on', () => d.ticketRow(later.key).column_id === 'done', 60_000);
    expect(comments(d, later.key).some((c) => c.type === 'system' && /Released a claim held by "bogus-run"/.test(c.body))).toBe(true);

    // an agent's claim cleared under it (what `ticket release` on its own ticket used to do): every scan then hit
    // "UNIQUE constraint failed: runs.ticket_id" and no other ticket of the project started
    const held = await d.ticket('rs', 'researcher', { researcher: [{ do: 'hang' }] });
    const live = await waitFor('the holding agent', () => d.runs(held.key).find((r) => r.status === 'running'));
    db = writable(d);
    db.prepare(`UPDATE tickets SET claimed_by_run = NULL, claimed_at = NULL WHERE id = ?`).run(d.ticketRow(held.key).id);
    db.close();
    const next = await d.ticket('rs', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
    await waitFor('the next ticket done while the other agent still runs', () => d.ticketRow(next.key).column_id === 'done', 60_000);
    expect(d.runs(held.key).map((r) => [r.id, r.status])).toEqual([[live.id, 'running']]);
    const badScans = d
      .db()
      .prepare(`SELECT error FROM job_events WHERE queue = 'scan' AND outcome IN ('retry', 'failed', 'crashed')`)
      .all();
    expect(badScans).toEqual([]);
  } finally {
    await killAgents(d);
    await d.stop();
  }
}, 240_000);

test('two agents passing a ticket back and forth stop at agents.max_runs_per_ticket, and the ticket waits in human with the reason', async () => {
  const d = await startEngineDaemon({ config: { agents: { max_runs_per_ticket: 4 } } });
  try {
    await d.project('pingpong', 'software-dev', 'pp');
    const t = await d.ticket('pp', 'coding-agent', {
      'coding-agent': [{ do: 'move', to: 'code-reviewer' }],
      'code-reviewer': [{ do: 'move', to: 'coding-agent' }],
    });
    await waitFor('sent to human', () => d.ticketRow(t.key).column_id === 'human' && d.runs(t.key).every((r) => r.ended_at), 90_000);
    expect(d.runs(t.key).map((r) => `${r.agent_type_id} ${r.status}`)).toEqual([
      'coding-agent success',
      'code-reviewer success',
      'coding-agent success',
      'code-reviewer success',
    ]);
    const note = comments(d, t.key).at(-1);
    expect(note).toMatchObject({ type: 'move', author: 'system', to_column: 'human' });
    expect(note.body).toMatch(/^Run limit: this ticket had 4 agent runs since it last left human \(agents.max_runs_per_ticket is 4\)/);
    expect((await d.api('GET', '/api/inbox')).body.tickets.map((i: { key: string; reason: string }) => [i.key, i.reason])).toEqual([
      [t.key, note.body],
    ]);
    // a person sending it on gives the agents a new allowance
    expect(d.cli(['ticket', 'move', t.key, 'coding-agent']).status).toBe(0);
    await waitFor(
      'back in human',
      () => d.ticketRow(t.key).column_id === 'human' && d.runs(t.key).length === 8 && d.runs(t.key).every((r) => r.ended_at),
      90_000,
    );
    // the limit is a validated setting, shown on the settings page
    const bad = await d.api('PATCH', '/api/config', { agents: { max_runs_per_ticket: 0 } });
    expect([bad.status, bad.body.field]).toEqual([400, 'agents.max_runs_per_ticket']);
    const page = await (await fetch(`${d.url}/settings`)).text();
    expect(page).toMatch(/name="agents\.max_runs_per_ticket" value="4"/);
  } finally {
    await killAgents(d);
    await d.stop();
  }
}, 240_000);

test("a person's move wins: the agent that was working on the ticket can no longer move it or write to it", async () => {
  const d = await startEngineDaemon();
  try {
    await d.project('lab', 'research', 'rs');
    for (let round = 1; round <= 3; round++) {
      const { key, env } = await agentAtWork(d, 'rs', 'researcher', `round ${round}`);
      const run = await waitFor('running', () => d.runs(key).find((r) => r.status === 'running'));
      // the person parks it in human; the agent (or anything it left behind holding its environment) tries to move it back
      expect(d.cli(['ticket', 'move', key, 'human']).status).toBe(0);
      // (without DISPATCH_RUN_ID: the run's end also kills every process that carries it, which would
      // stop this one before it could be refused)
      const { DISPATCH_RUN_ID: _runId, ...secretOnly } = env;
      for (const args of [
        ['move', key, 'done'],
        ['move', key, 'researcher'],
        ['comment', key, 'comment', 'still mine'],
      ]) {
        const r = spawnSync(process.execPath, [ticketBin, ...args], { env: secretOnly, encoding: 'utf8' });
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(
          new RegExp(`^ticket: (${key} was moved to "human" by human since run ${run.id} started|run ${run.id} has ended)`),
        );
      }
      await waitFor('the agent stopped', () => d.runs(key)[0].ended_at, 30_000);
      expect(d.runs(key).map((r) => r.status)).toEqual(['killed']);
      expect(d.ticketRow(key).column_id).toBe('human');
      expect(
        comments(d, key)
          .filter((c) => c.type === 'move')
          .map((c) => `${c.author} ${c.to_column}`),
      ).toEqual(['human researcher', 'human human']);
    }
  } finally {
    await killAgents(d);
    await d.stop();
  }
}, 240_000);
