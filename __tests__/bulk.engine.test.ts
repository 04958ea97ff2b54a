// A person's bulk action against agents at work, with the real daemon and the fake agent: moving one
// running ticket away and closing another stop both agents' process trees, the moved ticket stays
// where the person put it, and the closed one is not sent to the inbox.
import { pidAlive, startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';

let d: EngineDaemon;

beforeAll(async () => {
  d = await startEngineDaemon();
});
afterAll(async () => {
  await d?.stop();
});

const hanging = { '*': [{ do: 'hang' }] };

test('a bulk move and a bulk close stop the running agents on those tickets', async () => {
  await d.project('site', 'research', 'site');
  const moved = await d.ticket('site', 'researcher', hanging, 'Audit the sitemap');
  const closed = await d.ticket('site', 'researcher', hanging, 'Check the robots file');
  const running = (key: string) => waitFor(`${key} running`, () => d.runs(key).find((r) => r.status === 'running' && r.pid));
  const runs = [await running(moved.key), await running(closed.key)];

  expect((await d.api('POST', '/api/tickets/bulk', { keys: [moved.key], action: 'move', column: 'human' })).status).toBe(200);
  expect((await d.api('POST', '/api/tickets/bulk', { keys: [closed.key], action: 'close' })).status).toBe(200);

  const ended = (key: string) => waitFor(`${key}'s run killed`, () => d.runs(key).find((r) => r.status === 'killed'), 60_000);
  expect((await ended(moved.key)).error).toBe('the ticket was moved to human by human while the agent ran');
  expect((await ended(closed.key)).error).toBe('the ticket was closed while the agent ran');
  for (const run of runs) await waitFor(`agent ${run.pid} gone`, () => !pidAlive(run.pid));
  expect(d.ticketRow(moved.key)).toMatchObject({ column_id: 'human', claimed_by_run: null, archived_at: null });
  // closed where it was, unclaimed, and not parked in the inbox
  expect(d.ticketRow(closed.key)).toMatchObject({ column_id: 'researcher', claimed_by_run: null, archived_at: expect.any(Number) });
  expect((await d.api('GET', '/api/inbox')).body.tickets.map((t: { key: string }) => t.key)).not.toContain(closed.key);
});
