// Configuration: defaults, then `<home>/config.json`, then environment overrides; parsed once per
// load and frozen. An invalid file is reported with the field and reason, and the store keeps the
// last good config (SPEC 6). This is the only module that reads DISPATCH_* settings from the env.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { UserError } from './errors.js';

const MAX_TIMER_MINUTES = 7 * 24 * 60; // keeps every timer far below setTimeout's 24.8-day overflow

export const configSchema = z
  .object({
    port: z.number().int().min(0).max(65535).default(5757),
    projects_root: z.string().min(1).default(path.join(os.homedir(), 'Development')),
    claude_binary: z.string().min(1).default('claude'),
    heartbeat: z
      .object({
        base_interval_seconds: z.number().int().min(1).max(86400).default(300),
        max_interval_seconds: z.number().int().min(1).max(7 * 86400).default(86400),
        backoff_multiplier: z.number().min(1).max(10).default(2),
      })
      .strict()
      .default({ base_interval_seconds: 300, max_interval_seconds: 86400, backoff_multiplier: 2 }),
    agents: z
      .object({
        max_concurrent_per_project: z.number().int().min(1).max(100).default(3),
        max_concurrent_global: z.number().int().min(1).max(500).default(10),
        default_timeout_minutes: z.number().int().min(1).max(MAX_TIMER_MINUTES).default(30),
        circuit_breaker_max_runs: z.number().int().min(1).max(100).default(3),
        max_runs_per_ticket: z.number().int().min(1).max(1000).default(20),
        parallel_coding: z.boolean().default(true),
        env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid variable name'), z.string()).default({}),
      })
      .strict()
      .default({
        max_concurrent_per_project: 3,
        max_concurrent_global: 10,
        default_timeout_minutes: 30,
        circuit_breaker_max_runs: 3,
        max_runs_per_ticket: 20,
        parallel_coding: true,
        env: {},
      }),
    ai: z
      .object({
        auth_method: z.enum(['oauth', 'api_key', 'custom']).default('oauth'),
        api_key: z.string().default(''),
        base_url: z.string().default(''),
      })
      .strict()
      .default({ auth_method: 'oauth', api_key: '', base_url: '' }),
    logs: z
      .object({ retention_days: z.number().int().min(1).max(3650).default(14) })
      .strict()
      .default({ retention_days: 14 }),
    backups: z
      .object({
        interval_hours: z.number().min(0.01).max(24 * 30).default(24),
        keep: z.number().int().min(1).max(1000).default(7),
      })
      .strict()
      .default({ interval_hours: 24, keep: 7 }),
    board: z
      .object({ done_limit: z.number().int().min(1).max(1000).default(50) })
      .strict()
      .default({ done_limit: 50 }),
    queue: z
      .object({ keep_days: z.number().int().min(1).max(3650).default(14) })
      .strict()
      .default({ keep_days: 14 }),
    budgets: z
      .object({ daily_usd: z.number().min(0).max(1_000_000).default(0) })
      .strict()
      .default({ daily_usd: 0 }),
    api_token: z.string().default(''),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.heartbeat.max_interval_seconds < c.heartbeat.base_interval_seconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['heartbeat', 'max_interval_seconds'],
        message: 'must be at least heartbeat.base_interval_seconds',
      });
    }
    if (c.ai.auth_method === 'api_key' && !c.ai.api_key) {
      ctx.addIssue({ code: 'custom', path: ['ai', 'api_key'], message: 'is required when ai.auth_method is api_key' });
    }
    if (c.ai.auth_method === 'custom' && !/^https?:\/\//.test(c.ai.base_url)) {
      ctx.addIssue({ code: 'custom', path: ['ai', 'base_url'], message: 'must be an http(s) URL when ai.auth_method is custom' });
    }
  });

export type Config = Readonly<z.infer<typeof configSchema>>;

/** Fields that only take effect after a daemon restart (labelled in the settings page). */
export const RESTART_FIELDS: readonly string[] = ['port', 'claude_binary', 'projects_root'];

export function defaultConfig(): Config {
  return deepFreeze(configSchema.parse({}));
}

/** Validates raw JSON-shaped input; throws a UserError naming the first bad field. */
export function parseConfig(raw: unknown): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    const reason = issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
    throw new UserError(`config: ${field}: ${reason}`, field);
  }
  return deepFreeze(result.data);
}

/** Applies the environment overrides (they win over the file). */
function withEnv(config: Config, env: NodeJS.ProcessEnv): Config {
  const out = structuredClone(config) as z.infer<typeof configSchema>;
  if (env.DISPATCH_PORT) {
    const port = Number(env.DISPATCH_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`DISPATCH_PORT: not a port number: ${env.DISPATCH_PORT}`, 'port');
    out.port = port;
  }
  if (env.DISPATCH_CLAUDE_BIN) out.claude_binary = env.DISPATCH_CLAUDE_BIN;
  if (env.DISPATCH_PROJECTS_ROOT) out.projects_root = path.resolve(env.DISPATCH_PROJECTS_ROOT);
  return deepFreeze(out);
}

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`config: ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/**
 * Holds the live config. `reload()` re-reads the file; on a bad file it keeps the last good
 * config and remembers the error. `update()` validates before writing, so a bad edit never lands.
 */
export class ConfigStore extends EventEmitter {
  private current: Config;
  lastError: string | null = null;
  private watcher: fs.FSWatcher | null = null;

  constructor(readonly file: string, private readonly env: NodeJS.ProcessEnv = process.env) {
    super();
    this.current = withEnv(parseConfig(readConfigFile(file)), env);
  }

  get(): Config {
    return this.current;
  }

  /** The file's own values (without env overrides), for the settings page. */
  fileValues(): Config {
    try {
      return parseConfig(readConfigFile(this.file));
    } catch {
      return defaultConfig();
    }
  }

  reload(): Config {
    try {
      const next = withEnv(parseConfig(readConfigFile(this.file)), this.env);
      this.lastError = null;
      this.swap(next);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.emit('invalid', this.lastError);
    }
    return this.current;
  }

  /** Merges a partial config into the file's values, validates, writes atomically, applies. */
  update(patch: Record<string, unknown>): Config {
    const merged = mergeDeep(structuredClone(this.fileValues()) as Record<string, unknown>, patch);
    const parsed = parseConfig(merged);
    writeJsonAtomic(this.file, parsed);
    this.lastError = null;
    this.swap(withEnv(parsed, this.env));
    return this.current;
  }

  /** Hot reload on file edits made outside the daemon. */
  watch(): void {
    if (this.watcher) return;
    let timer: NodeJS.Timeout | null = null;
    try {
      this.watcher = fs.watch(path.dirname(this.file), (_event, name) => {
        if (name !== path.basename(this.file)) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => this.reload(), 100);
      });
      this.watcher.unref();
    } catch {
      this.watcher = null;
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  private swap(next: Config): void {
    const prev = this.current;
    this.current = next;
    if (JSON.stringify(prev) !== JSON.stringify(next)) this.emit('change', next, prev);
  }
}

/** Keys that would reach Object.prototype through `target[key]` (a JSON body can carry them as own keys). */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function mergeDeep(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(patch)) {
    if (PROTOTYPE_KEYS.has(key)) throw new UserError(`config: unknown field "${key}"`, key);
    const existing = target[key];
    if (value && typeof value === 'object' && !Array.isArray(value) && existing && typeof existing === 'object' && key !== 'env') {
      target[key] = mergeDeep(existing as Record<string, unknown>, value as Record<string, unknown>);
    } else {
      target[key] = value;
    }
  }
  return target;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
