// The daemon survives the death of any child: agents that crash, print garbage, print
// 20 MB of noise before their result, exit before writing a byte, or fork children that would
// outlive them. Each run is judged from its exit and its transcript's result line, the ticket ends
// in a defined column with a comment when it failed, leftover children are reaped, and the same
// daemon process keeps answering throughout.
import fs from 'node:fs';
import path from 'node:path';
import { comments, fakeClaude, pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';

let d: EngineDaemon;
let daemonPid: number;
let scratch: string;

beforeAll(async () => {
  scratch = tempDir('pd-agents-');
  // the agent binary: a wrapper that, for project "mute", exits at once without writing anything
  const wrapper = path.join(scratch, 'claude');
  fs.writeFileSync(
    wrapper,
    `#!/bin/sh\ncase "$DISPATCH_TICKET_ID" in mute-*) exit 7;; esac\nexec "${process.execPath}" "${fakeClaude}" "$@"\n`,
    { mode: 0o755 },
  );
  d = await startEngineDaemon({
    env: { DISPATCH_CLAUDE_BIN: wrapper },
    config: { agents: { max_concurrent_global: 6, max_concurrent_per_project: 3 } },
  });
  daemonPid = d.child.pid!;
  expect((await d.api('PATCH', '/api/agent-types/researcher', { max_retries: 0 })).status).toBe(200);
  await d.project('lab', 'research', 'lab');
  await d.project('mute', 'research', 'mute');
}, 60_000);

afterAll(async () => {
  await d.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

afterEach(async () => {
  // the same daemon process answers after every bad child
  expect(d.child.exitCode).toBeNull();
  const health = await d.api('GET', '/api/health');
  expect(health.body.pid).toBe(daemonPid);
});

async function settled(key: string, column: string) {
  await waitFor(`${key} in ${column}`, () => d.ticketRow(key).column_id === column, 60_000);
  return waitFor(`${key} finalized`, () => {
    const runs = d.runs(key);
    return runs.length > 0 && runs.every((r) => r.ended_at !== null) && runs;
  });
}

test('an agent that crashes without a result fails the run and the ticket reaches human with the reason', async () => {
  const t = await d.ticket('lab', 'researcher', {
    researcher: [
      { do: 'comment', type: 'journal', body: 'starting' },
      { do: 'crash', code: 2 },
    ],
  });
  const [run] = await settled(t.key, 'human');
  expect(run).toMatchObject({ status: 'failed', exit_code: 2, error: 'exited with code 2 and no result' });
  expect(comments(d, t.key).some((c) => c.type === 'system' && c.body.includes(`run ${run.id} failed (exit code 2)`))).toBe(true);
  expect(comments(d, t.key).some((c) => c.type === 'journal' && c.body === 'starting')).toBe(true); // what it did before dying stays
}, 180_000);

test('an agent that exits before writing anything fails with a clear error and an empty transcript', async () => {
  const t = await d.ticket('mute', 'researcher', undefined);
  const [run] = await settled(t.key, 'human');
  expect(run).toMatchObject({ status: 'failed', exit_code: 7, error: 'exited with code 7 and no result', result_text: null });
  expect(fs.statSync(run.transcript_path).size).toBe(0);
  const transcript = await d.api('GET', `/api/runs/${run.id}/transcript`);
  expect(transcript.body).toMatchObject({ text: '', done: true, status: 'failed' });
}, 180_000);

test('garbage on stdout does not confuse the judgement: noise then a result succeeds, noise then a crash fails', async () => {
  const ok = await d.ticket('lab', 'researcher', {
    researcher: [
      { do: 'garbage', bytes: 5000 },
      { do: 'garbage', bytes: 3 },
      { do: 'move', to: 'done' },
    ],
  });
  const bad = await d.ticket('lab', 'researcher', {
    researcher: [
      { do: 'garbage', bytes: 5000 },
      { do: 'crash', code: 0 },
    ],
  });
  const [good] = await settled(ok.key, 'done');
  expect(good).toMatchObject({ status: 'success', exit_code: 0, result_text: `Done with ${ok.key}.` });
  const [broken] = await settled(bad.key, 'human');
  expect(broken).toMatchObject({ status: 'failed', exit_code: 0, error: 'exited without a result line' });
}, 180_000);

test('20 MB of noise then a valid result: judged from the result line while the daemon stays responsive', async () => {
  const t = await d.ticket('lab', 'researcher', {
    researcher: [
      { do: 'garbage', bytes: 20_000_000 },
      { do: 'garbage', bytes: 20_000 },
      { do: 'sleep', ms: 300 },
      { do: 'move', to: 'done' },
    ],
  });
  let answered = 0;
  await waitFor(
    'done while answering',
    async () => {
      const [health, board] = await Promise.all([d.api('GET', '/api/health'), d.api('GET', `/api/tickets/${t.key}`)]);
      expect(health.status).toBe(200);
      expect(board.status).toBe(200);
      answered++;
      return d.ticketRow(t.key).column_id === 'done';
    },
    90_000,
    100,
  );
  const [run] = await settled(t.key, 'done');
  expect(answered).toBeGreaterThan(0);
  expect(run.status).toBe('success');
  expect(run.result_text).toBe(`Done with ${t.key}.`);
  expect(run.tokens_in).toBeGreaterThan(0);
  expect(run.cost_usd).toBeGreaterThan(0);
  expect(fs.statSync(run.transcript_path).size).toBeGreaterThan(20_000_000);
  // the transcript API serves it in bounded slices
  const first = await d.api('GET', `/api/runs/${run.id}/transcript`);
  expect(first.body.text.length).toBeLessThanOrEqual(256 * 1024);
  expect(first.body.next_offset).toBeGreaterThan(0);
  const tail = await d.api('GET', `/api/runs/${run.id}/transcript?offset=${fs.statSync(run.transcript_path).size - 4000}`);
  expect(tail.status).toBe(200);
  // a later ticket still runs normally
  const next = await d.ticket('lab', 'researcher', { researcher: [{ do: 'move', to: 'done' }] });
  await settled(next.key, 'done');
}, 240_000);

test('children an agent forks and abandons are reaped when it exits, whether it succeeds or crashes', async () => {
  const okPid = path.join(scratch, 'ok.pid');
  const crashPid = path.join(scratch, 'crash.pid');
  const ok = await d.ticket('lab', 'researcher', {
    researcher: [
      { do: 'orphan', pidfile: okPid },
      { do: 'move', to: 'done' },
    ],
  });
  const bad = await d.ticket('lab', 'researcher', {
    researcher: [
      { do: 'orphan', pidfile: crashPid },
      { do: 'crash', code: 3 },
    ],
  });
  await settled(ok.key, 'done');
  await settled(bad.key, 'human');
  for (const file of [okPid, crashPid]) {
    const pid = Number(fs.readFileSync(file, 'utf8'));
    expect(pid).toBeGreaterThan(0);
    await waitFor(`orphan ${pid} reaped`, () => !pidAlive(pid), 10_000);
  }
  expect(d.runs(bad.key)[0]).toMatchObject({ status: 'failed', exit_code: 3 });
}, 180_000);

test('an agent reporting an API error (is_error result, exit 1) is a failure with its message', async () => {
  const t = await d.ticket('lab', 'researcher', { researcher: [{ do: 'fail', message: '401 invalid x-api-key' }] });
  const [run] = await settled(t.key, 'human');
  expect(run).toMatchObject({ status: 'failed', exit_code: 1, error: 'API Error: 401 invalid x-api-key' });
}, 180_000);
