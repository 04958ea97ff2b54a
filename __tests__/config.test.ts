import fs from 'node:fs';
import path from 'node:path';
import { ConfigStore, defaultConfig, parseConfig } from '../lib/config.js';
import { tempDir } from './helpers/home.js';

const fieldOf = (raw: unknown) => {
  try {
    parseConfig(raw);
  } catch (err) {
    return (err as Error & { field?: string }).field;
  }
  return null;
};

describe('config', () => {
  test('defaults are the documented ones', () => {
    const c = defaultConfig();
    expect(c).toMatchObject({
      port: 5757,
      claude_binary: 'claude',
      heartbeat: { base_interval_seconds: 300, max_interval_seconds: 86400, backoff_multiplier: 2 },
      agents: {
        max_concurrent_per_project: 3,
        max_concurrent_global: 10,
        default_timeout_minutes: 30,
        circuit_breaker_max_runs: 3,
        max_runs_per_ticket: 20,
        parallel_coding: true,
        env: {},
      },
      ai: { auth_method: 'oauth' },
      logs: { retention_days: 14 },
      backups: { interval_hours: 24, keep: 7 },
    });
    expect(Object.isFrozen(c.agents)).toBe(true);
  });

  test.each([
    [{ port: 'x' }, 'port'],
    [{ agents: { max_concurrent_global: 0 } }, 'agents.max_concurrent_global'],
    [{ agents: { default_timeout_minutes: 60 * 24 * 365 } }, 'agents.default_timeout_minutes'],
    [{ agents: { max_runs_per_ticket: 0 } }, 'agents.max_runs_per_ticket'],
    [{ agents: { max_runs_per_ticket: 2.5 } }, 'agents.max_runs_per_ticket'],
    [{ heartbeat: { base_interval_seconds: 600, max_interval_seconds: 60 } }, 'heartbeat.max_interval_seconds'],
    [{ ai: { auth_method: 'api_key' } }, 'ai.api_key'],
    [{ ai: { auth_method: 'magic' } }, 'ai.auth_method'],
    [{ agents: { env: { 'BAD NAME': 'x' } } }, 'agents.env.BAD NAME'],
    [{ typo_field: 1 }, '(root)'],
  ])('%j is rejected naming %s', (raw, field) => {
    expect(fieldOf(raw)).toBe(field);
  });

  test('an invalid file is reported with field and reason, and the store keeps the last good config', () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ agents: { max_concurrent_global: 4 } }));
    const store = new ConfigStore(file, {});
    expect(store.get().agents.max_concurrent_global).toBe(4);
    const changes: unknown[] = [];
    store.on('change', (c) => changes.push(c));
    fs.writeFileSync(file, '{ "agents": { "max_concurrent_global": -1 } }');
    store.reload();
    expect(store.lastError).toBe('config: agents.max_concurrent_global: Too small: expected number to be >=1');
    expect(store.get().agents.max_concurrent_global).toBe(4);
    fs.writeFileSync(file, '{ not json');
    store.reload();
    expect(store.lastError).toMatch(/is not valid JSON/);
    fs.writeFileSync(file, JSON.stringify({ agents: { max_concurrent_global: 6 } }));
    store.reload();
    expect(store.lastError).toBeNull();
    expect(store.get().agents.max_concurrent_global).toBe(6);
    expect(changes).toHaveLength(1);
  });

  test('update validates before writing: a bad edit never lands on disk', () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    const store = new ConfigStore(file, {});
    store.update({ agents: { parallel_coding: false } });
    const written = fs.readFileSync(file, 'utf8');
    expect(JSON.parse(written).agents.parallel_coding).toBe(false);
    expect(() => store.update({ heartbeat: { backoff_multiplier: 0 } })).toThrow(/heartbeat.backoff_multiplier/);
    expect(fs.readFileSync(file, 'utf8')).toBe(written);
  });

  const CODE_LOADING = [
    ...[
      'NODE_OPTIONS',
      'NODE_PATH',
      'LD_PRELOAD',
      'LD_AUDIT',
      'ld_preload',
      'DYLD_INSERT_LIBRARIES',
      'PYTHONPATH',
      'PYTHONSTARTUP',
      'PERL5LIB',
    ],
    ...['RUBYOPT', 'BASH_ENV', 'ENV', 'PATH', 'SHELL', 'GIT_SSH_COMMAND', 'GIT_CONFIG_KEY_0', 'GIT_EXTERNAL_DIFF', 'JAVA_TOOL_OPTIONS'],
  ];
  test.each(CODE_LOADING)('agents.env refuses %s, naming it', (name) => {
    const raw = { agents: { env: { [name]: 'x' } } };
    expect(() => parseConfig(raw)).toThrow(
      `config: agents.env: ${name} changes which code programs load or run, so agents cannot be given it`,
    );
    expect(fieldOf(raw)).toBe('agents.env');
  });

  test('agents.env keeps ordinary variables', () => {
    const env = {
      IS_SANDBOX: '1',
      GIT_AUTHOR_NAME: 'Agent',
      NODE_ENV: 'test',
      PYTHONUNBUFFERED: '1',
      MY_PATH: '/x',
      ANTHROPIC_MODEL: 'opus',
    };
    expect(parseConfig({ agents: { env } }).agents.env).toEqual(env);
  });

  test('update refuses while the file is broken: nothing is written, the last good values stay', () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ port: 6001, api_token: 'keep-me', agents: { max_concurrent_global: 4 } }));
    const store = new ConfigStore(file, {});
    for (const broken of ['{ "port": ', JSON.stringify({ port: 'x' })]) {
      fs.writeFileSync(file, broken);
      const refusal = /^not saved: .* is invalid \(config: .*\), and saving now would reset every field it holds/;
      expect(() => store.update({ agents: { max_concurrent_global: 5 } })).toThrow(refusal);
      expect(fs.readFileSync(file, 'utf8')).toBe(broken);
      expect(store.lastError).toMatch(/^config: /);
      expect(store.fileValues()).toMatchObject({ port: 6001, api_token: 'keep-me', agents: { max_concurrent_global: 4 } });
      expect(store.get()).toMatchObject({ port: 6001, api_token: 'keep-me', agents: { max_concurrent_global: 4 } });
    }
  });

  test('environment overrides win over the file', () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ port: 6000, claude_binary: 'claude' }));
    const store = new ConfigStore(file, { DISPATCH_PORT: '7001', DISPATCH_CLAUDE_BIN: '/opt/fake-claude' });
    expect(store.get()).toMatchObject({ port: 7001, claude_binary: '/opt/fake-claude' });
    expect(() => new ConfigStore(file, { DISPATCH_PORT: 'eighty' })).toThrow(/DISPATCH_PORT/);
  });
});
