// The pipeline with each agent CLI: the same scripted ticket goes code → review → security → done
// whichever CLI runs the agent types (each CLI's fake takes that CLI's flags and writes its event
// format), its tokens are recorded from that format, and a project can use a different CLI in each
// column. The permission mapping is exercised for real: each fake refuses a ticket command its CLI's
// flags would not allow.
import { comments, fakeClis, startEngineDaemon, waitFor, type CliName, type EngineDaemon } from './helpers/engine.js';

const FLOW = {
  'coding-agent': [
    { do: 'comment', type: 'journal', body: 'implemented it' },
    { do: 'move', to: 'code-reviewer' },
  ],
  'code-reviewer': [{ do: 'move', to: 'security-reviewer', comment: 'looks right' }],
  'security-reviewer': [{ do: 'move', to: 'done', comment: 'no issues' }],
};
const COLUMNS = ['coding-agent', 'code-reviewer', 'security-reviewer'] as const;
/** Whether the CLI reports a cost (Codex and Gemini CLI report tokens only). */
const REPORTS_COST: Record<CliName, boolean> = { claude: true, codex: false, gemini: false, opencode: true };

let d: EngineDaemon;
beforeAll(async () => {
  // one run that does not move its ticket parks it (the permission tests below)
  d = await startEngineDaemon({ config: { agents: { circuit_breaker_max_runs: 1 } } });
  await d.project('matrix', 'software-dev', 'mx');
});
afterAll(() => d.stop());

async function useCli(agentType: string, cli: CliName): Promise<void> {
  const res = await d.api('PATCH', `/api/agent-types/${agentType}`, { cli, model: fakeClis[cli].model });
  expect(res.status).toBe(200);
  expect(res.body.agent_type).toMatchObject({ cli, model: fakeClis[cli].model });
}

async function flow(title: string): Promise<{ key: string; runs: any[] }> {
  const t = await d.ticket('mx', 'coding-agent', FLOW, title);
  await waitFor(`${title} done`, () => d.ticketRow(t.key).column_id === 'done', 120_000);
  await waitFor('runs finalized', () => d.runs(t.key).every((r) => r.status !== 'running' && r.status !== 'queued'), 60_000);
  return { key: t.key, runs: d.runs(t.key) };
}

describe.each(['claude', 'codex', 'gemini', 'opencode'] as const)('the pipeline with %s', (cli) => {
  test(`a ticket goes code → review → security → done, with its tokens recorded from ${cli}'s events`, async () => {
    for (const a of COLUMNS) await useCli(a, cli);
    const { key, runs } = await flow(`through ${cli}`);
    expect(runs.map((r) => [r.agent_type_id, r.cli, r.status, r.exit_code])).toEqual(COLUMNS.map((c) => [c, cli, 'success', 0]));
    for (const r of runs) {
      expect(r.tokens_in).toBeGreaterThan(0);
      expect(r.tokens_out).toBeGreaterThan(0);
      if (REPORTS_COST[cli]) expect(r.cost_usd).toBeGreaterThan(0);
      else expect(r.cost_usd).toBeNull();
      expect(r.result_text).toBe(`Done with ${key}.`);
    }
    const moves = comments(d, key)
      .filter((c) => c.type === 'move')
      .map((c) => [c.to_column, c.author.split(':')[0]]);
    expect(moves).toEqual([
      ['coding-agent', 'human'],
      ['code-reviewer', 'coding-agent'],
      ['security-reviewer', 'code-reviewer'],
      ['done', 'security-reviewer'],
    ]);
    expect(comments(d, key).some((c) => c.type === 'journal' && c.body === 'implemented it')).toBe(true);

    // the run page renders the CLI's transcript through the common model: the ticket commands and the last words
    const page = await fetch(`${d.url}/runs/${runs[0].id}`).then((r) => r.text());
    expect(page).toContain(`ticket move ${key} code-reviewer`);
    expect(page).toContain(`Done with ${key}.`);
    const tail = d.cli(['runs', 'tail', runs[2].id]);
    expect(tail.stdout).toContain(`$ ticket move ${key} done`);
  }, 180_000);
});

test('a project can use a different CLI in each column', async () => {
  const plan: Record<(typeof COLUMNS)[number], CliName> = {
    'coding-agent': 'codex',
    'code-reviewer': 'gemini',
    'security-reviewer': 'opencode',
  };
  for (const a of COLUMNS) await useCli(a, plan[a]);
  const { runs } = await flow('mixed CLIs');
  expect(runs.map((r) => [r.agent_type_id, r.cli, r.status])).toEqual(COLUMNS.map((c) => [c, plan[c], 'success']));
  expect(runs.every((r) => r.tokens_in > 0 && r.tokens_out > 0)).toBe(true);
}, 180_000);

test("an agent type's CLI is checked: an unknown CLI or a model the CLI cannot take is refused", async () => {
  const unknown = await d.api('PATCH', '/api/agent-types/code-reviewer', { cli: 'aider' });
  expect(unknown.status).toBe(400);
  expect(unknown.body.error).toMatch(/cli must be one of claude, codex, gemini, opencode/);
  const model = await d.api('PATCH', '/api/agent-types/code-reviewer', { cli: 'opencode', model: 'sonnet' });
  expect(model.status).toBe(400);
  expect(model.body.error).toMatch(/model for OpenCode must be provider\/model/);
  expect((await d.api('GET', '/api/agent-types/code-reviewer')).body.agent_type.cli).toBe('gemini');
});

test('the agent-type page picks the CLI, offers its models and says what of the permissions it cannot honour', async () => {
  await useCli('code-reviewer', 'gemini');
  await d.api('PATCH', '/api/agent-types/code-reviewer', { allowed_tools: ['Bash(ticket:*)', 'Read', 'NotebookEdit'] });
  const page = await fetch(`${d.url}/agent-types/code-reviewer`).then((r) => r.text());
  expect(page).toMatch(
    /<option value="gemini" data-models="gemini-2\.5-pro,gemini-2\.5-flash,gemini-2\.5-flash-lite" selected>Gemini CLI<\/option>/,
  );
  expect(page).toMatch(/<datalist id="at-models" data-cli="gemini"><option value="gemini-2\.5-pro">/);
  expect(page).not.toMatch(/<datalist[^>]*>[^<]*<option value="sonnet">/);
  expect(page).toContain('Gemini CLI cannot honour all of these permissions');
  expect(page).toContain('allowed tool NotebookEdit: Gemini CLI has no such tool');
  const list = await fetch(`${d.url}/agent-types`).then((r) => r.text());
  expect(list).toMatch(/code-reviewer<\/code>[\s\S]*?<td>Gemini CLI<\/td><td>gemini-2\.5-flash<\/td>/);
});

test("Settings shows each CLI's binary and whether it is found", async () => {
  const patch = await d.api('PATCH', '/api/config', { clis: { opencode: { binary: '/nonexistent/opencode' } } });
  expect(patch.status).toBe(200);
  const page = await fetch(`${d.url}/settings`).then((r) => r.text());
  const row = (setting: string) =>
    new RegExp(`<tr data-cli-binary="${setting.replace(/\./g, '\\.')}">[\\s\\S]*?</tr>`).exec(page)?.[0] ?? '';
  expect(row('clis.codex.binary')).toContain(fakeClis.codex.binary);
  expect(row('clis.codex.binary')).toContain('>found<');
  expect(row('clis.opencode.binary')).toContain('/nonexistent/opencode');
  expect(row('clis.opencode.binary')).toContain('not found');
  expect(page).toMatch(/id="f-clis-gemini-binary" name="clis\.gemini\.binary"/);
  expect((await d.api('PATCH', '/api/config', { clis: { opencode: { binary: fakeClis.opencode.binary } } })).status).toBe(200);
});

describe.each([
  ['codex', { permission_mode: 'plan' }, 'read-only sandbox'],
  ['gemini', { allowed_tools: ['Read'] }, 'no run_shell_command(ticket)'],
  ['opencode', { allowed_tools: ['Read'] }, 'no bash pattern for ticket'],
] as const)("%s's permission flags bind the agent", (cli, settings, why) => {
  test(`an agent type that may not run ticket changes (${why}) cannot move its ticket`, async () => {
    await useCli('security-reviewer', cli);
    const allowed = ['Bash(ticket:*)', 'Read'];
    expect(
      (await d.api('PATCH', '/api/agent-types/security-reviewer', { permission_mode: 'default', allowed_tools: allowed, ...settings }))
        .status,
    ).toBe(200);
    const t = await d.ticket('mx', 'security-reviewer', { 'security-reviewer': [{ do: 'move', to: 'done' }] }, `bound ${cli}`);
    // its move is refused, so the run ends without moving it: the circuit breaker parks it in human
    await waitFor('human', () => d.ticketRow(t.key).column_id === 'human', 120_000).catch((err) => {
      throw new Error(`${err.message}; runs: ${JSON.stringify(d.runs(t.key).map((r) => [r.status, r.error, r.result_text]))}`);
    });
    const moves = comments(d, t.key)
      .filter((c) => c.type === 'move')
      .map((c) => [c.to_column, c.author.split(':')[0]]);
    expect(moves).toEqual([
      ['security-reviewer', 'human'],
      ['human', 'system'],
    ]);
    const run = d.runs(t.key)[0];
    expect(run).toMatchObject({ cli, status: 'success' });
    expect(d.cli(['runs', 'tail', run.id]).stdout).toMatch(/✗/);
    await d.api('PATCH', '/api/agent-types/security-reviewer', { permission_mode: 'default', allowed_tools: allowed });
  }, 180_000);
});
