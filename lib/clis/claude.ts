// Claude Code (`claude -p`, docs/agents/claude.md): stream-json lines, one content block per assistant
// line; the final `result` line is the authority on cost, tokens and errors (`subtype` stays "success"
// on API errors, so `is_error` decides), and a `rate_limit_event` tells a subscription's limit state.
import { classifyEnd } from '../runCause.js';
import { contentText, isObject, jsonEvents, num, str, toolCall } from '../transcript.js';
import type { RateLimitInfo, TranscriptEnd, TranscriptEntry, TranscriptSummary } from '../transcript.js';
import type { CliAdapter, LaunchInput } from './index.js';

type Json = Record<string, unknown>;

function summaryOf(line: Json): TranscriptSummary {
  const usage = isObject(line.usage) ? line.usage : {};
  // input counts what the model read: fresh input plus cache writes and cache reads
  const inputs = ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens']
    .map((k) => num(usage[k]))
    .filter((v): v is number => v !== null);
  return {
    isError: line.is_error === true,
    resultText: str(line.result),
    costUsd: num(line.total_cost_usd),
    tokensIn: inputs.length ? inputs.reduce((a, b) => a + b, 0) : null,
    tokensOut: num(usage.output_tokens),
    numTurns: num(line.num_turns),
    durationMs: num(line.duration_ms),
    apiErrorStatus: num(line.api_error_status),
  };
}

function blockEntries(message: unknown): TranscriptEntry[] {
  const content = isObject(message) ? message.content : undefined;
  if (typeof content === 'string') return content ? [{ kind: 'text', text: content }] : [];
  if (!Array.isArray(content)) return [];
  const out: TranscriptEntry[] = [];
  for (const b of content) {
    if (!isObject(b)) continue;
    if (b.type === 'text' && str(b.text)) out.push({ kind: 'text', text: str(b.text) });
    else if (b.type === 'thinking' && str(b.thinking)) out.push({ kind: 'thinking', text: str(b.thinking) });
    else if (b.type === 'tool_use') {
      const name = str(b.name) || 'tool';
      out.push({ kind: 'tool_use', id: str(b.id), name, input: JSON.stringify(b.input ?? {}, null, 2), call: toolCall(name, b.input) });
    } else if (b.type === 'tool_result')
      out.push({ kind: 'tool_result', toolUseId: str(b.tool_use_id), content: contentText(b.content), isError: b.is_error === true });
  }
  return out;
}

/** The entries of one stream-json line (a line carries its own state: no parsing across lines). */
export function claudeLineEntries(line: string): TranscriptEntry[] {
  const [first] = jsonEvents([line]);
  if (!first) return [];
  const value = first.event;
  if (!value) return [{ kind: 'raw', text: first.text }];
  switch (value.type) {
    case 'system':
      if (value.subtype === 'init') {
        const tools = Array.isArray(value.tools) ? value.tools.map(String) : [];
        return [{ kind: 'init', model: str(value.model), cwd: str(value.cwd), permissionMode: str(value.permissionMode), tools }];
      }
      if (value.subtype === 'api_retry') {
        const error = str(value.error) || String(value.error_status ?? '');
        return [{ kind: 'retry', attempt: num(value.attempt) ?? 0, maxRetries: num(value.max_retries) ?? 0, error }];
      }
      return [];
    case 'assistant':
    case 'user':
      return blockEntries(value.message);
    case 'result':
      return [{ kind: 'result', summary: summaryOf(value) }];
    default:
      return [];
  }
}

function rateLimitOf(line: string): RateLimitInfo | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(value) || value.type !== 'rate_limit_event' || !isObject(value.rate_limit_info)) return null;
  const info = value.rate_limit_info;
  const resets = num(info.resetsAt);
  return { status: str(info.status), resetsAt: resets === null ? null : resets * 1000, limitType: str(info.rateLimitType) };
}

/** The last result and rate-limit event, scanned from the end; lines are parsed as JSON (key order differs by version). */
function claudeEnd(lines: readonly string[]): TranscriptEnd {
  const end: TranscriptEnd = { result: null, rateLimit: null };
  for (let i = lines.length - 1; i >= 0 && !(end.result && end.rateLimit); i--) {
    const line = lines[i]!;
    if (!end.rateLimit && line.includes('"rate_limit_event"')) end.rateLimit = rateLimitOf(line);
    if (!end.result && line.includes('"result"')) {
      const entry = claudeLineEntries(line)[0];
      if (entry?.kind === 'result') end.result = entry.summary;
    }
  }
  return end;
}

/** The CLI's arguments. The prompt travels as a file and the task on stdin: a variadic flag such as
 * --allowedTools would swallow a trailing prompt, and one argv string is capped at 128 KiB. */
function claudeArgs(c: LaunchInput): string[] {
  const args = ['-p', '--output-format', 'stream-json', '--verbose', '--model', c.model, '--permission-mode', c.permissionMode];
  args.push('--append-system-prompt-file', c.promptFile);
  if (c.allowedTools.length) args.push('--allowedTools', ...c.allowedTools);
  return args;
}

export const claude: CliAdapter = {
  name: 'claude',
  label: 'Claude Code',
  defaultBinary: 'claude',
  models: ['sonnet', 'opus', 'haiku'],
  modelPattern: /^[^\s-]\S*$/,
  modelHint: 'an alias (sonnet, opus, haiku) or a full model name such as claude-sonnet-4-5',
  inheritedEnv: ['CLAUDE_CONFIG_DIR'],
  authFix: 'not logged in: run claude once, or set ai.api_key',
  launch: (c) => ({ args: claudeArgs(c), stdin: c.task, env: {} }),
  unmapped: () => [],
  parse: (lines) => lines.flatMap(claudeLineEntries),
  end: claudeEnd,
  classify: (end, now) => classifyEnd(end, now),
};
