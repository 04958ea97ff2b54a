// Every process an agent starts ends with its run, also one that left the agent's process group
// and tree: a `setsid` child, a child forked twice (its parent exits at once, so init adopts it)
// and, while the agent lives, a `setsid` child that clears its environment. The agent here is a
// shell script that starts all three, then exits, or waits until it is killed or times out.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';

let d: EngineDaemon;
let scratch: string;

/** Each child writes its own pid (setsid may fork), then becomes a long sleep. */
const child = (name: string, seconds: number) => `sh -c "echo \\$\\$ > \\"$dir/${name}\\"; exec sleep ${seconds}"`;

beforeAll(async () => {
  scratch = tempDir('pd-orphans-');
  const agent = path.join(scratch, 'claude');
  fs.writeFileSync(
    agent,
    [
      '#!/bin/sh',
      `dir="${scratch}/$DISPATCH_TICKET_ID"`,
      'mkdir -p "$dir"',
      `setsid ${child('setsid', 1000)} &`,
      `( setsid ${child('double', 1001)} & )`,
      'case "$DISPATCH_TICKET_ID" in ex-*) sleep 0.5; exit 0;; esac',
      `setsid env -i ${child('bare', 1002)} &`,
      'sleep 0.5',
      'echo ready > "$dir/ready"',
      'exec sleep 100000',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  d = await startEngineDaemon({ env: { DISPATCH_CLAUDE_BIN: agent } });
  expect((await d.api('PATCH', '/api/agent-types/researcher', { max_retries: 0 })).status).toBe(200);
  for (const key of ['ex', 'kl', 'to']) await d.project(`orphans-${key}`, 'research', key);
}, 60_000);

afterAll(async () => {
  // whatever a failed test left behind
  for (const dir of fs.readdirSync(scratch).filter((f) => /^[a-z]+-\d+$/.test(f))) {
    for (const f of ['setsid', 'double', 'bare']) {
      const file = path.join(scratch, dir, f);
      const pid = fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0;
      if (pid > 0 && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
  await d.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function childPids(key: string, names: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of names) {
    const file = path.join(scratch, key, name);
    out[name] = Number(await waitFor(`${key} ${name} pid`, () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim(), 30_000));
  }
  return out;
}

async function allGone(pids: Record<string, number>): Promise<void> {
  // a killed process may stay a zombie until init reaps it: pidAlive counts that as dead
  for (const [name, pid] of Object.entries(pids)) await waitFor(`${name} child (pid ${pid}) gone`, () => !pidAlive(pid), 10_000);
}

test('an agent that exits: its setsid and double-forked children end with the run', async () => {
  const t = await d.ticket('ex', 'researcher', undefined, 'leaves children behind');
  const pids = await childPids(t.key, ['setsid', 'double']);
  await waitFor('run ended', () => d.runs(t.key)[0]?.ended_at, 60_000);
  await allGone(pids);
}, 120_000);

async function runningWithChildren(key: string): Promise<{ run: any; pids: Record<string, number> }> {
  const t = await d.ticket(key, 'researcher', undefined, 'leaves children behind');
  const run = await waitFor('running', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid));
  await waitFor('children started', () => fs.existsSync(path.join(scratch, t.key, 'ready')), 30_000);
  const pids = await childPids(t.key, ['setsid', 'double', 'bare']);
  for (const pid of Object.values(pids)) expect(pidAlive(pid)).toBe(true);
  // the daemon records a live agent's processes every 2 s; let it see the child that has no environment
  await new Promise((r) => setTimeout(r, 5000));
  return { run, pids };
}

test('an agent killed from the UI: every child ends with it, also one without the run in its environment', async () => {
  const { run, pids } = await runningWithChildren('kl');
  expect((await d.api('POST', `/api/runs/${run.id}/kill`)).status).toBe(200);
  await waitFor('run killed', () => d.runs().find((r) => r.id === run.id)?.status === 'killed', 30_000);
  expect(pidAlive(run.pid)).toBe(false);
  await allGone(pids);
}, 120_000);

test('an agent past its timeout: every child ends with it', async () => {
  const { run, pids } = await runningWithChildren('to');
  // backdate instead of waiting: the run started two hours ago (its type's timeout is 30 minutes)
  const rw = new Database(path.join(d.home, 'tasks.db'));
  rw.prepare(`UPDATE runs SET started_at = started_at - 7200000 WHERE id = ?`).run(run.id);
  rw.close();
  await waitFor('run timed out', () => d.runs().find((r) => r.id === run.id)?.status === 'timeout', 30_000);
  await allGone(pids);
}, 120_000);
