// Settings as an attack path, through the real daemon: `agents.env` refuses variables that change
// how programs load code (NODE_OPTIONS, LD_PRELOAD, PATH, …) from the settings page, the API, a
// hand-edited config.json and at start, so no settings write becomes code execution in the next
// agent; and a save while config.json is broken is refused with the reason instead of writing
// defaults over every field (the port, the token, the caps).
import fs from 'node:fs';
import path from 'node:path';
import { startEngineDaemon, waitFor } from './helpers/engine.js';
import { startTestDaemon } from './helpers/daemon.js';
import { bearerApi, getPage, loginCookie, postForm, rawRequest, token } from './helpers/web.js';

const CODE_LOADING = [
  ...['NODE_OPTIONS', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'DYLD_INSERT_LIBRARIES', 'PYTHONPATH', 'PYTHONSTARTUP', 'PERL5LIB'],
  ...['RUBYOPT', 'BASH_ENV', 'ENV', 'PATH', 'GIT_SSH_COMMAND', 'GIT_CONFIG_COUNT', 'GIT_EXEC_PATH'],
];

test('agents.env refuses code-loading variables from the settings page, PATCH /api/config, a hand edit and at start', async () => {
  const d = await startEngineDaemon({ config: { agents: { env: { IS_SANDBOX: '1' } } } });
  try {
    const file = path.join(d.home, 'config.json');
    const before = fs.readFileSync(file, 'utf8');
    const csrf = await token(d);
    for (const name of CODE_LOADING) {
      const api = await d.api('PATCH', '/api/config', { agents: { env: { IS_SANDBOX: '1', [name]: '--require ./evil.cjs' } } });
      expect([name, api.status, api.body.field]).toEqual([name, 400, 'agents.env']);
      expect(api.body.error).toBe(`config: agents.env: ${name} changes which code programs load or run, so agents cannot be given it`);
      const page = await postForm(d, '/settings', { _csrf: csrf, 'agents.env': `IS_SANDBOX=1\n${name}=--require ./evil.cjs` });
      expect([name, page.status]).toEqual([name, 400]);
      expect(page.html).toContain(
        `<span class="field-error">${name} changes which code programs load or run, so agents cannot be given it</span>`,
      );
    }
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
    // ordinary variables, git identity included, are still welcome
    const ok = await d.api('PATCH', '/api/config', { agents: { env: { IS_SANDBOX: '1', GIT_AUTHOR_NAME: 'Agent', NODE_ENV: 'test' } } });
    expect(ok.status).toBe(200);

    // a hand edit is rejected like any invalid file: the last good config stays in use
    fs.writeFileSync(file, JSON.stringify({ agents: { env: { IS_SANDBOX: '2', LD_PRELOAD: '/tmp/evil.so' } } }));
    const cfg = await waitFor('hand edit rejected', async () => {
      const c = (await d.api('GET', '/api/config')).body;
      return /LD_PRELOAD/.test(c.last_error ?? '') && c;
    });
    expect(cfg.last_error).toBe('config: agents.env: LD_PRELOAD changes which code programs load or run, so agents cannot be given it');
    expect(cfg.config.agents.env).toEqual({ IS_SANDBOX: '1', GIT_AUTHOR_NAME: 'Agent', NODE_ENV: 'test' });
    // and the next agent runs without it
    await d.project('envs', 'research', 'ev');
    const envFile = path.join(d.root, 'agent-env.json');
    const t = await d.ticket('ev', 'researcher', {
      researcher: [
        { do: 'env', file: envFile },
        { do: 'move', to: 'done' },
      ],
    });
    await waitFor('agent ran', () => d.ticketRow(t.key).column_id === 'done', 60_000);
    const env = JSON.parse(fs.readFileSync(envFile, 'utf8'));
    expect(env.LD_PRELOAD).toBeUndefined();
    expect(env.IS_SANDBOX).toBe('1');
  } finally {
    await d.stop();
  }
  // a daemon never starts with such a file
  await expect(startTestDaemon({ config: { agents: { env: { NODE_OPTIONS: '--require ./evil.cjs' } } } })).rejects.toThrow(
    /dispatch daemon: the config file \S+ is invalid: agents\.env: NODE_OPTIONS changes which code programs load or run/,
  );
}, 180_000);

test('a save while config.json is broken is refused with the reason; no field (port, token, caps) is reset', async () => {
  const apiToken = 'broken-config-token-81d2';
  const agents = { max_concurrent_global: 4, max_concurrent_per_project: 2 };
  const config = { port: 6123, claude_binary: 'my-claude', api_token: apiToken, agents, backups: { keep: 3 } };
  const lastError = async () => (await bearerApi(d, apiToken, 'GET', '/api/config')).body.last_error as string | null;
  const d = await startTestDaemon({ config });
  try {
    const file = path.join(d.home, 'config.json');
    const { cookie, csrf } = await loginCookie(d, apiToken);
    const broken = '{"agents": {"max_concurrent_global": ';
    fs.writeFileSync(file, broken);
    await waitFor('broken file noticed', async () => /not valid JSON/.test((await lastError()) ?? ''));

    const api = await bearerApi(d, apiToken, 'PATCH', '/api/config', { agents: { max_concurrent_global: 9 } });
    expect(api.status).toBe(409);
    expect(api.body.error).toMatch(/^not saved: .*config\.json is invalid \(config: .*is not valid JSON.*\), and saving now would reset/);
    expect(api.body.error).toContain('The daemon keeps running on the last good config.');
    expect(api.body.error).toContain('Fix the file (or remove it to start from defaults), then save again.');

    // the page shows the last good values (not defaults) and refuses the save with the same reason
    const page = await rawRequest(d, 'GET', '/settings', { accept: 'text/html', cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('The config file on disk was rejected and the last good config is in use');
    expect(page.text).toMatch(/id="f-agents-max_concurrent_global" name="agents.max_concurrent_global" value="4"/);
    expect(page.text).toMatch(/id="f-claude_binary" name="claude_binary" value="my-claude"/);
    const fields = { _csrf: csrf, 'agents.max_concurrent_global': '9', claude_binary: 'my-claude', port: '6123' };
    const save = await postForm(d, '/settings', fields, { cookie });
    expect(save.status).toBe(409);
    expect(save.html).toContain('saving now would reset every field it holds');
    expect(fs.readFileSync(file, 'utf8')).toBe(broken);

    // live config and the token guard are untouched
    expect((await rawRequest(d, 'GET', '/api/config')).status).toBe(401);
    expect((await rawRequest(d, 'GET', '/settings', { accept: 'text/html' })).status).toBe(303);
    const live = (await bearerApi(d, apiToken, 'GET', '/api/config')).body;
    expect(live.config).toMatchObject({ claude_binary: 'my-claude', api_token: '********', agents, backups: { keep: 3 } });
    expect(live.file).toMatchObject({ port: 6123, claude_binary: 'my-claude', api_token: '********', agents, backups: { keep: 3 } });

    // once the file is fixed, a save merges into it and keeps every other field
    fs.writeFileSync(file, JSON.stringify(config));
    await waitFor('fixed file loaded', async () => (await lastError()) === null);
    expect((await bearerApi(d, apiToken, 'PATCH', '/api/config', { agents: { max_concurrent_global: 9 } })).status).toBe(200);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ ...config, agents: { ...agents, max_concurrent_global: 9 } });
  } finally {
    await d.stop();
  }
}, 120_000);

test('without a token, the settings page of a broken config.json shows the last good values too', async () => {
  const d = await startTestDaemon({ config: { agents: { max_concurrent_global: 6 } } });
  try {
    fs.writeFileSync(path.join(d.home, 'config.json'), JSON.stringify({ agents: { max_concurrent_global: 'six' } }));
    const lastError = async () => ((await d.api('GET', '/api/config')).body.last_error ?? '') as string;
    await waitFor('bad field noticed', async () => /agents\.max_concurrent_global/.test(await lastError()));
    const page = await getPage(d, '/settings');
    expect(page.html).toMatch(/id="f-agents-max_concurrent_global" name="agents.max_concurrent_global" value="6"/);
    expect((await d.api('GET', '/api/config')).body.file.agents.max_concurrent_global).toBe(6);
  } finally {
    await d.stop();
  }
}, 120_000);
