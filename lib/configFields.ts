// The settings in a person's words: each config field's group, label and one line of help, and the
// one place where a schema refusal becomes a sentence about that field ("The global limit must be
// at least 1"). The API and config.json keep the field paths; the Settings page shows these. A field
// missing here still appears, under Advanced with its path as label, so no setting is ever hidden.
import { ConfigFieldError, type ConfigIssue } from './config.js';
import { UserError } from './errors.js';

export const SETTINGS_GROUPS = ['Agents', 'Heartbeat', 'Budgets', 'Notifications', 'AI login', 'Advanced'] as const;
export type SettingsGroup = (typeof SETTINGS_GROUPS)[number];

export interface FieldText {
  group: SettingsGroup;
  label: string;
  /** how a sentence names it: "the global limit" */
  noun: string;
  help: string;
  /** the sentence for the schema's own checks across fields (code "custom"), when its message names internal paths */
  custom?: string;
}

const f = (group: SettingsGroup, label: string, noun: string, help: string, custom?: string): FieldText => ({
  group,
  label,
  noun,
  help,
  custom,
});

export const FIELD_TEXT: Record<string, FieldText> = {
  'agents.max_concurrent_global': f('Agents', 'Global limit', 'the global limit', 'The most agents running at once, across all projects.'),
  'agents.max_concurrent_per_project': f(
    'Agents',
    'Limit per project',
    'the limit per project',
    'The most agents running at once in one project.',
  ),
  'agents.default_timeout_minutes': f(
    'Agents',
    'Default timeout (minutes)',
    'the default timeout',
    "The timeout a new agent type starts with. Each agent type's own timeout (on its page) is the one used: it wins over this default.",
  ),
  'agents.max_runs_per_ticket': f(
    'Agents',
    'Runs per ticket',
    'the number of runs per ticket',
    'After this many runs on one ticket, it goes to your inbox instead of starting another.',
  ),
  'agents.circuit_breaker_max_runs': f(
    'Agents',
    'Failures in a row before giving up',
    'the number of failures in a row',
    'After this many failed runs in a row on one ticket, the ticket goes to your inbox with the last error.',
  ),
  'agents.parallel_coding': f(
    'Agents',
    'Parallel coding',
    'parallel coding',
    "On: each ticket is coded on its own branch and worktree, and merged when done. A project's own setting (on its board) " +
      'wins over this one.',
  ),
  'worktrees.spare': f(
    'Agents',
    'Spare worktrees per big repository',
    'the number of spare worktrees',
    'Ready worktrees (at the main branch, set up) kept for each repository of 2,000 files or more, so a new ticket starts ' +
      'without waiting for a checkout. 0 turns this off.',
  ),
  'agents.retry_backoff_seconds': f(
    'Agents',
    'Wait after a failed run (seconds)',
    'the wait after a failed run',
    'The first wait before a failed ticket runs again; it grows with each failure.',
  ),
  'agents.no_move_wait_seconds': f(
    'Agents',
    'Wait after a run that did not move its ticket (seconds)',
    'the wait after a run that did not move its ticket',
    'How long a ticket waits before its next run when the last one left it where it was.',
  ),
  'agents.usage_limit_margin_seconds': f(
    'Agents',
    'Margin after a usage limit (seconds)',
    'the margin after a usage limit',
    'Agents start again this long after the usage limit the AI named has reset.',
  ),
  'agents.env': f(
    'Agents',
    'Agent environment',
    'the agent environment',
    'Extra environment variables for every agent, one NAME=value per line.',
  ),
  'heartbeat.base_interval_seconds': f(
    'Heartbeat',
    'Check interval (seconds)',
    'the check interval',
    'How often an idle project is looked at for work nobody announced.',
  ),
  'heartbeat.max_interval_seconds': f(
    'Heartbeat',
    'Longest interval (seconds)',
    'the longest interval',
    'A project with nothing to do is checked less and less often, up to this.',
    'The longest interval must be at least the check interval',
  ),
  'heartbeat.backoff_multiplier': f(
    'Heartbeat',
    'Slow-down factor',
    'the slow-down factor',
    'Each empty check multiplies the interval by this.',
  ),
  'budgets.daily_usd': f(
    'Budgets',
    'Daily budget (USD)',
    'the daily budget',
    "No new run starts once today's runs cost this much; 0 means no budget. A project can have its own on its board.",
  ),
  'notifications.webhook_url': f(
    'Notifications',
    'Webhook URL',
    'the webhook URL',
    'Every notification is posted here. Hidden once saved; leave it as shown to keep it, empty it to remove it.',
    'The webhook URL must start with http:// or https://',
  ),
  'notifications.webhook_format': f(
    'Notifications',
    'Webhook format',
    'the webhook format',
    'json: {"title", "text", "ticket", "url", …}; ntfy: an ntfy topic URL (message as body, Title header); slack: a ' +
      'Slack-compatible incoming webhook ({"text"}).',
  ),
  'notifications.desktop': f(
    'Notifications',
    'Desktop notifications',
    'desktop notifications',
    'Shown with notify-send (Linux) or osascript (macOS) on the machine the daemon runs on.',
  ),
  'notifications.browser': f(
    'Notifications',
    'Browser notifications',
    'browser notifications',
    'Pop-ups on any open Dispatcher page (allow them below, once per browser).',
  ),
  'notifications.quiet_hours_start': f(
    'Notifications',
    'Quiet hours from',
    'the start of the quiet hours',
    'A local time like 22:00. During quiet hours webhook and desktop notifications are held and sent when they end; pages still count.',
  ),
  'notifications.quiet_hours_end': f(
    'Notifications',
    'Quiet hours until',
    'the end of the quiet hours',
    'A local time like 07:00; empty both to have no quiet hours.',
    'Quiet hours need both a start and an end, and the two must differ',
  ),
  'ai.auth_method': f(
    'AI login',
    'How agents log in',
    'the login method',
    "oauth: the claude CLI's own login; api_key: the key below; custom: the key and an endpoint below.",
  ),
  'ai.api_key': f(
    'AI login',
    'API key',
    'the API key',
    'Given to agents as their key. Never shown again after saving.',
    'The API key is required when agents log in with an API key',
  ),
  'ai.base_url': f(
    'AI login',
    'Custom endpoint',
    'the custom endpoint',
    'The API address for the custom login.',
    'The custom endpoint must be an http(s) URL when agents log in with custom',
  ),
  claude_binary: f('AI login', 'claude program', 'the claude program', 'The claude CLI agents run: a name on the PATH or a full path.'),
  port: f('Advanced', 'Port', 'the port', 'The port the daemon listens on (at the listen address below, and always on 127.0.0.1).'),
  projects_root: f('Advanced', 'Projects folder', 'the projects folder', 'The folder whose subfolders are offered as projects.'),
  api_token: f(
    'Advanced',
    'Access token',
    'the access token',
    'When set, the API needs it as a bearer token and pages need a login. Never shown again after saving.',
  ),
  listen: f(
    'Advanced',
    'Listen address',
    'the listen address',
    'The address the daemon listens on: 127.0.0.1 (this machine only), or one runners on other machines reach (0.0.0.0 for ' +
      'all), which needs a runner token first (dispatch runners add). Other machines reach only the runner paths. Needs a restart.',
  ),
  'runners.lease_seconds': f(
    'Advanced',
    'Runner lease (seconds)',
    'the runner lease',
    'A run on a runner whose heartbeat stops for this long is recorded as crashed and retried; runners beat at a third of it.',
  ),
  'logs.retention_days': f('Advanced', 'Keep logs (days)', 'the days logs are kept', 'Daemon logs older than this are deleted.'),
  'backups.interval_hours': f(
    'Advanced',
    'Backup interval (hours)',
    'the backup interval',
    'How often the database is copied to the backups folder.',
  ),
  'backups.keep': f('Advanced', 'Backups kept', 'the number of backups kept', 'The newest this many backups are kept.'),
  'board.done_limit': f('Advanced', 'Cards in Done', 'the number of cards in Done', 'How many of the newest done tickets a board shows.'),
  'queue.keep_days': f(
    'Advanced',
    'Keep job history (days)',
    'the days job history is kept',
    'Finished jobs and failed ones are forgotten after this.',
  ),
  'queue.backend': f(
    'Advanced',
    'Queue backend',
    'the queue backend',
    'Where the durable job queues live: sqlite (built in, nothing to install) or redis (a Redis server, to scale out). Needs a restart.',
  ),
  'queue.redis_url': f(
    'Advanced',
    'Redis URL',
    'the Redis URL',
    'The Redis server used when the queue backend is redis, like redis://127.0.0.1:6379. Shown masked after saving.',
  ),
  'clis.claude.binary': f(
    'AI login',
    'Claude Code program',
    'the Claude Code program',
    'Overrides the claude program above for Claude Code agent types. Leave empty to use it.',
  ),
  'clis.codex.binary': f(
    'AI login',
    'Codex program',
    'the Codex program',
    'The codex CLI for agent types that use Codex. Empty: codex on the PATH.',
  ),
  'clis.gemini.binary': f(
    'AI login',
    'Gemini CLI program',
    'the Gemini CLI program',
    'The gemini CLI for agent types that use Gemini CLI. Empty: gemini on the PATH.',
  ),
  'clis.opencode.binary': f(
    'AI login',
    'OpenCode program',
    'the OpenCode program',
    'The opencode CLI for agent types that use OpenCode. Empty: opencode on the PATH.',
  ),
};

export function fieldText(name: string): FieldText {
  return FIELD_TEXT[name] ?? { group: 'Advanced', label: name, noun: name, help: '' };
}

const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const num = (n: unknown) =>
  typeof n === 'bigint' || typeof n === 'number' ? Number(n).toLocaleString('en-US', { maximumFractionDigits: 6 }) : String(n);

/** One refusal of the schema as a sentence about its field. */
export function configSentence(issue: ConfigIssue): string {
  const text = fieldText(issue.field);
  const subject = capital(text.noun);
  switch (issue.code) {
    case 'too_small':
      return `${subject} must be ${issue.inclusive === false ? 'more than' : 'at least'} ${num(issue.minimum)}`;
    case 'too_big':
      return `${subject} must be ${issue.inclusive === false ? 'less than' : 'at most'} ${num(issue.maximum)}`;
    case 'invalid_type':
      if (issue.expected === 'int') return `${subject} must be a whole number`;
      if (issue.expected === 'number') return `${subject} must be a number`;
      if (issue.expected === 'boolean') return `${subject} must be on or off`;
      return `${subject} must be ${issue.expected === 'string' ? 'text' : `a ${issue.expected}`}`;
    case 'invalid_value':
      return `${subject} must be one of: ${(issue.values ?? []).join(', ')}`;
    case 'unrecognized_keys':
      return `There is no setting called ${issue.message}`;
    case 'custom':
      // the schema's own messages name their subject (an agent variable) or get a sentence here
      return text.custom ?? (issue.field === 'agents.env' ? issue.message : `${subject} ${issue.message}`);
    default:
      return `${subject} ${issue.message}`;
  }
}

/** A config refusal for the Settings page: the same error (status, field) with the sentence as its message. */
export function inWords(err: unknown): unknown {
  if (err instanceof ConfigFieldError) return new UserError(configSentence(err.issue), err.field);
  return err;
}
