// Configuration: defaults, then `<home>/config.json`, then environment overrides; parsed once per
// load and frozen. An invalid file is reported with the field and reason, and the store keeps the
// last good config. This is the only module that reads DISPATCH_* settings from the env. Each
// default is written once, on its field; a missing section is filled in by parsing `{}` (prefault).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { ConflictError, UserError } from './errors.js';
import { writeFileAtomic } from './files.js';

const MAX_TIMER_MINUTES = 7 * 24 * 60; // keeps every timer far below setTimeout's 24.8-day overflow
/** A local clock time (HH:MM, 24 h) or empty for "not set". */
const CLOCK = /^$|^([01]\d|2[0-3]):[0-5]\d$/;

/**
 * Variables that change which code a program loads or which command it runs: a settings write
 * (or a hand edit) must never turn into code execution inside the next agent, whatever tools its
 * agent type allows. PATH is the daemon's own (the `ticket` tool comes first on it).
 */
const CODE_LOADING_VARIABLES = new Set([
  'PATH',
  'SHELL',
  'ENV',
  'BASH_ENV',
  'ZDOTDIR',
  'SHELLOPTS',
  'BASHOPTS',
  'PROMPT_COMMAND',
  'PS4',
  'GCONV_PATH',
  'NODE_OPTIONS',
  'NODE_PATH',
  'NODE_REPL_EXTERNAL_MODULE',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONSTARTUP',
  'PYTHONUSERBASE',
  'PYTHONWARNINGS',
  'PYTHONBREAKPOINT',
  'PERL5LIB',
  'PERLLIB',
  'PERL5OPT',
  'PERL5DB',
  'RUBYOPT',
  'RUBYLIB',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'JDK_JAVA_OPTIONS',
  'CLASSPATH',
  'EDITOR',
  'VISUAL',
  'PAGER',
  'MANPAGER',
  'LESSOPEN',
  'LESSCLOSE',
  'BROWSER',
  'SSH_ASKPASS',
  'SUDO_ASKPASS',
  'GIT_EXEC_PATH',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_ASKPASS',
  'GIT_EDITOR',
  'GIT_SEQUENCE_EDITOR',
  'GIT_PAGER',
  'GIT_EXTERNAL_DIFF',
  'GIT_PROXY_COMMAND',
  'GIT_TEMPLATE_DIR',
  'GIT_DIR',
  'GIT_COMMON_DIR',
]);
const CODE_LOADING_PREFIXES = ['LD_', 'DYLD_', 'GIT_CONFIG', 'BASH_FUNC_'];

/** True when `name` may not be set in `agents.env` (compared case-blind, as some platforms do). */
export function isCodeLoadingVariable(name: string): boolean {
  const upper = name.toUpperCase();
  return CODE_LOADING_VARIABLES.has(upper) || CODE_LOADING_PREFIXES.some((p) => upper.startsWith(p));
}

const cliSettings = z
  .object({ binary: z.string().min(1).optional() })
  .strict()
  .default({});

export const configSchema = z
  .object({
    port: z.number().int().min(0).max(65535).default(5757),
    projects_root: z.string().min(1).default(path.join(os.homedir(), 'Development')),
    claude_binary: z.string().min(1).default('claude'),
    // each agent CLI's binary (lib/clis/); unset: its usual name on PATH, and for claude `claude_binary`
    clis: z
      .object({
        claude: cliSettings,
        codex: cliSettings,
        gemini: cliSettings,
        opencode: cliSettings,
      })
      .strict()
      .default({ claude: {}, codex: {}, gemini: {}, opencode: {} }),
    heartbeat: z
      .object({
        base_interval_seconds: z.number().int().min(1).max(86400).default(300),
        max_interval_seconds: z
          .number()
          .int()
          .min(1)
          .max(7 * 86400)
          .default(86400),
        backoff_multiplier: z.number().min(1).max(10).default(2),
      })
      .strict()
      .prefault({}),
    agents: z
      .object({
        max_concurrent_per_project: z.number().int().min(1).max(100).default(3),
        max_concurrent_global: z.number().int().min(1).max(500).default(10),
        default_timeout_minutes: z.number().int().min(1).max(MAX_TIMER_MINUTES).default(30),
        circuit_breaker_max_runs: z.number().int().min(1).max(100).default(3),
        max_runs_per_ticket: z.number().int().min(1).max(1000).default(20),
        parallel_coding: z.boolean().default(true),
        env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid variable name'), z.string()).default({}),
        retry_backoff_seconds: z.number().min(0).max(3600).default(30),
        no_move_wait_seconds: z.number().min(0).max(86400).default(120),
        usage_limit_margin_seconds: z.number().min(0).max(3600).default(60),
      })
      .strict()
      .prefault({}),
    ai: z
      .object({
        auth_method: z.enum(['oauth', 'api_key', 'custom']).default('oauth'),
        api_key: z.string().default(''),
        base_url: z.string().default(''),
      })
      .strict()
      .prefault({}),
    worktrees: z
      .object({
        /** ready worktrees kept per big repository (lib/spares.ts), so a new ticket's first run need not wait for a checkout */
        spare: z.number().int().min(0).max(10).default(1),
      })
      .strict()
      .prefault({}),
    logs: z
      .object({ retention_days: z.number().int().min(1).max(3650).default(14) })
      .strict()
      .prefault({}),
    backups: z
      .object({
        interval_hours: z
          .number()
          .min(0.01)
          .max(24 * 30)
          .default(24),
        keep: z.number().int().min(1).max(1000).default(7),
      })
      .strict()
      .prefault({}),
    board: z
      .object({ done_limit: z.number().int().min(1).max(1000).default(50) })
      .strict()
      .prefault({}),
    queue: z
      .object({
        keep_days: z.number().int().min(1).max(3650).default(14),
        /** where the durable queues live: 'sqlite' (embedded) or 'redis' (BullMQ on a Redis server, for scaling out) */
        backend: z.enum(['sqlite', 'redis']).default('sqlite'),
        redis_url: z
          .string()
          .max(500)
          .regex(/^rediss?:\/\/[^\s]+$/, 'must be a redis:// or rediss:// URL')
          .default('redis://127.0.0.1:6379'),
      })
      .strict()
      .prefault({}),
    budgets: z
      .object({ daily_usd: z.number().min(0).max(1_000_000).default(0) })
      .strict()
      .prefault({}),
    notifications: z
      .object({
        webhook_url: z.string().max(2000).default(''),
        webhook_format: z.enum(['json', 'ntfy', 'slack']).default('json'),
        desktop: z.boolean().default(false),
        browser: z.boolean().default(true),
        quiet_hours_start: z.string().regex(CLOCK, 'must be a time like 22:00, or empty').default(''),
        quiet_hours_end: z.string().regex(CLOCK, 'must be a time like 07:00, or empty').default(''),
      })
      .strict()
      .prefault({}),
    api_token: z.string().default(''),
    /** the address the daemon listens on; one other machines reach needs a runner token (docs/RUNNERS.md) */
    listen: z
      .string()
      .max(100)
      .regex(/^(localhost|[0-9.]+|[0-9a-fA-F:]+)$/, 'must be an IP address (like 127.0.0.1, 0.0.0.0 or ::) or localhost')
      .default('127.0.0.1'),
    runners: z
      .object({
        /** a remote run whose runner sends no heartbeat for this long is finalized as crashed */
        lease_seconds: z.number().int().min(2).max(3600).default(30),
      })
      .strict()
      .prefault({}),
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
    for (const name of Object.keys(c.agents.env).filter(isCodeLoadingVariable)) {
      const message = `${name} changes which code programs load or run, so agents cannot be given it`;
      ctx.addIssue({ code: 'custom', path: ['agents', 'env'], message });
    }
    const { webhook_url: hook, quiet_hours_start: qs, quiet_hours_end: qe } = c.notifications;
    if (hook && !/^https?:\/\/[^/\s]+/i.test(hook)) {
      ctx.addIssue({ code: 'custom', path: ['notifications', 'webhook_url'], message: 'must be an http(s) URL' });
    }
    if (Boolean(qs) !== Boolean(qe) || (qs && qs === qe)) {
      const message = 'quiet hours need both a start and a different end';
      ctx.addIssue({ code: 'custom', path: ['notifications', 'quiet_hours_end'], message });
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
export const RESTART_FIELDS: readonly string[] = ['port', 'listen', 'claude_binary', 'projects_root', 'queue.backend', 'queue.redis_url'];

/** True for an address only this machine reaches: 127.0.0.0/8, ::1 (also IPv4-mapped) or localhost. */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase().replace(/^::ffff:/, '');
  return a === 'localhost' || a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

export function defaultConfig(): Config {
  return deepFreeze(configSchema.parse({}));
}

/** What the schema refused, kept so the Settings page can say it in words (lib/configFields.ts). */
export interface ConfigIssue {
  field: string;
  code: string;
  message: string;
  minimum?: number | bigint;
  maximum?: number | bigint;
  inclusive?: boolean;
  expected?: string;
  values?: string[];
}

/** A refused config: the message names the field path (the API, the CLI, the log); `issue` is the refusal itself. */
export class ConfigFieldError extends UserError {
  constructor(
    message: string,
    field: string,
    readonly issue: ConfigIssue,
  ) {
    super(message, field);
    this.name = 'ConfigFieldError';
  }
}

/** Validates raw JSON-shaped input; throws a ConfigFieldError naming the first bad field. */
export function parseConfig(raw: unknown): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    const reason = issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
    const i = issue as { minimum?: number | bigint; maximum?: number | bigint; inclusive?: boolean; expected?: string; values?: unknown[] };
    throw new ConfigFieldError(`config: ${field}: ${reason}`, field, {
      field,
      code: issue.code,
      message: issue.code === 'unrecognized_keys' ? issue.keys.map((k) => `"${k}"`).join(', ') : issue.message,
      minimum: i.minimum,
      maximum: i.maximum,
      inclusive: i.inclusive,
      expected: i.expected,
      values: i.values?.map(String),
    });
  }
  return deepFreeze(result.data);
}

/** Applies the environment overrides (they win over the file). */
function withEnv(config: Config, env: NodeJS.ProcessEnv): Config {
  const out = structuredClone(config) as z.infer<typeof configSchema>;
  if (env.DISPATCH_PORT) {
    const port = Number(env.DISPATCH_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UserError(`DISPATCH_PORT: not a port number: ${env.DISPATCH_PORT}`, 'port');
    out.port = port;
  }
  if (env.DISPATCH_CLAUDE_BIN) {
    out.claude_binary = env.DISPATCH_CLAUDE_BIN;
    delete out.clis.claude.binary;
  }
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
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', 0o600);
}

/**
 * Holds the live config. `reload()` re-reads the file; on a bad file it keeps the last good
 * config and remembers the error. `update()` validates before writing, so a bad edit never lands,
 * and refuses while the file itself is broken: merging into defaults would silently reset every
 * other field (port, token, caps), and the broken file may hold a hand edit worth fixing.
 */
export class ConfigStore extends EventEmitter {
  private current: Config;
  /** The file's values (without env overrides) as last read successfully. */
  private lastGood: Config;
  lastError: string | null = null;
  private watcher: fs.FSWatcher | null = null;

  constructor(
    readonly file: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    super();
    this.lastGood = parseConfig(readConfigFile(file));
    this.current = withEnv(this.lastGood, env);
  }

  get(): Config {
    return this.current;
  }

  /** The file's own values (without env overrides), for the settings page; the last good ones while the file is broken. */
  fileValues(): Config {
    try {
      return parseConfig(readConfigFile(this.file));
    } catch {
      return this.lastGood;
    }
  }

  reload(): Config {
    try {
      const file = parseConfig(readConfigFile(this.file));
      const next = withEnv(file, this.env);
      this.lastGood = file;
      this.lastError = null;
      this.swap(next);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.emit('invalid', this.lastError);
    }
    return this.current;
  }

  /**
   * Merges a partial config into the file's values, validates, writes atomically, applies. `check`
   * sees the file's values after and before the change and may refuse it by throwing (lib/health.ts).
   */
  update(patch: Record<string, unknown>, check?: (next: Config, prev: Config) => void): Config {
    let file: Config;
    try {
      file = parseConfig(readConfigFile(this.file));
    } catch (err) {
      this.lastError = (err as Error).message;
      throw new ConflictError(
        `not saved: ${this.file} is invalid (${this.lastError}), and saving now would reset every field it holds. ` +
          'The daemon keeps running on the last good config. Fix the file (or remove it to start from defaults), then save again.',
      );
    }
    const merged = mergeDeep(structuredClone(file) as Record<string, unknown>, patch);
    const parsed = parseConfig(merged);
    check?.(parsed, file);
    writeJsonAtomic(this.file, parsed);
    this.lastGood = parsed;
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
