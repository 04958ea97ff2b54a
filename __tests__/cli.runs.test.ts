// `dispatch runs kill` against the real daemon: the fake agent waits until killed, the command
// stops it and its process, and the ticket waits in human; a second kill or an unknown run is a
// one-line error with exit 1.
import { killAgents, pidAlive, startEngineDaemon, waitFor, WAITING_AGENTS, type EngineDaemon } from './helpers/engine.js';

let d: EngineDaemon;
beforeAll(async () => {
  d = await startEngineDaemon({ config: WAITING_AGENTS });
});
afterAll(async () => {
  if (d) await killAgents(d);
  await d?.stop();
});

test('dispatch runs kill stops a live run; a run that is not live is refused in one line', async () => {
  await d.project('kiln', 'software-dev', 'kiln');
  const t = await d.ticket('kiln', 'coding-agent', undefined, 'Never ends');
  const run = await waitFor('the agent to start', () => d.runs(t.key).find((r) => r.status === 'running' && r.pid), 60_000);

  const killed = d.cli(['runs', 'kill', run.id]);
  expect(killed.stderr).toBe('');
  expect(killed.status).toBe(0);
  expect(killed.stdout.trim()).toBe(`killed ${run.id} (coding-agent): killed`);
  expect(d.runs(t.key)[0].status).toBe('killed');
  expect(pidAlive(run.pid)).toBe(false);
  expect(d.ticketRow(t.key).column_id).toBe('human');

  const again = d.cli(['runs', 'kill', run.id]);
  expect(again.status).toBe(1);
  expect(again.stderr).toBe(`dispatch: run ${run.id} is not running (killed) (field: id)\n`);
  const unknown = d.cli(['runs', 'kill', 'run-nope']);
  expect(unknown.status).toBe(1);
  expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
  expect(unknown.stderr).toMatch(/^dispatch: run not found: run-nope/);
}, 120_000);
