// OpenAI Codex (`codex exec --json`, docs/agents/codex.md): JSONL thread events. Items (agent_message,
// reasoning, command_execution, file_change, mcp_tool_call, web_search) start and complete; a turn ends
// with turn.completed (its usage: no cost) or turn.failed (its error message). Codex has no per-command
// allowlist: its sandbox bounds what commands may change.
import { resetFromText } from '../runCause.js';
import {
  isObject,
  jsonEvents,
  num,
  str,
  toolCall,
  type TranscriptEnd,
  type TranscriptEntry,
  type TranscriptSummary,
} from '../transcript.js';
import { promptThenTask, statusIn, type CliAdapter, type LaunchInput } from './index.js';

type Json = Record<string, unknown>;

function sandboxArgs(mode: string, dataDir: string): string[] {
  if (mode === 'bypassPermissions') return ['--dangerously-bypass-approvals-and-sandbox'];
  if (mode === 'plan') return ['--sandbox', 'read-only'];
  // the ticket tool writes the daemon's database, outside the working folder
  return ['--sandbox', 'workspace-write', '--add-dir', dataDir];
}

function launchArgs(c: LaunchInput): string[] {
  // `-` (last, after single-valued flags only): the instructions are read from stdin
  return ['exec', '--json', '--skip-git-repo-check', '--model', c.model, ...sandboxArgs(c.permissionMode, c.dataDir), '-'];
}

/** The command a shell call ran: Codex reports `/bin/bash -lc '<command>'`; the inner command reads better. */
export function shellCommand(command: string): string {
  const m = /^(?:\/usr)?\/bin\/(?:ba|z)?sh -lc ('(?:[^']|'\\'')*')$/.exec(command);
  return m ? m[1]!.slice(1, -1).replace(/'\\''/g, "'") : command;
}

/** The entries of a completed item (a started one is shown once it completes, with its output: one line says it all). */
function itemEntries(item: Json, completed: boolean): TranscriptEntry[] {
  if (!completed) return [];
  const id = str(item.id);
  const use = (name: string, input: unknown, call = toolCall(name, input)): TranscriptEntry => ({
    kind: 'tool_use',
    id,
    name,
    input: JSON.stringify(input ?? {}, null, 2),
    call,
  });
  const opened = (name: string, input: unknown, call?: ReturnType<typeof toolCall>) => [use(name, input, call)];
  switch (item.type) {
    case 'agent_message':
      return str(item.text) ? [{ kind: 'text', text: str(item.text) }] : [];
    case 'reasoning':
      return str(item.text) ? [{ kind: 'thinking', text: str(item.text) }] : [];
    case 'command_execution': {
      const command = shellCommand(str(item.command));
      const head = opened('shell', { command: str(item.command) }, { kind: 'command', command, description: '' });
      const failed = item.status === 'failed' || (num(item.exit_code) ?? 0) !== 0;
      const output = str(item.aggregated_output);
      const content = failed ? `Exit code ${item.exit_code ?? '?'}\n${output}` : output;
      return [...head, { kind: 'tool_result', toolUseId: id, content, isError: failed }];
    }
    case 'file_change': {
      const changes = Array.isArray(item.changes) ? item.changes.filter(isObject) : [];
      const text = changes.map((c) => `${str(c.kind)} ${str(c.path)}`).join(', ');
      const head = opened('apply_patch', { changes }, { kind: 'target', text });
      return [...head, { kind: 'tool_result', toolUseId: id, content: str(item.status), isError: item.status === 'failed' }];
    }
    case 'mcp_tool_call': {
      const head = opened(`${str(item.server)}.${str(item.tool)}`, item.arguments);
      const error = isObject(item.error) ? str(item.error.message) : '';
      return [
        ...head,
        { kind: 'tool_result', toolUseId: id, content: error || JSON.stringify(item.result ?? ''), isError: item.status === 'failed' },
      ];
    }
    case 'web_search':
      return [use('WebSearch', { query: str(item.query) })];
    case 'error':
      return [{ kind: 'raw', text: `warning: ${str(item.message)}` }];
    default:
      return [];
  }
}

function parse(lines: readonly string[]): TranscriptEntry[] {
  const out: TranscriptEntry[] = [];
  let lastText = '';
  let tokensIn = 0;
  let tokensOut = 0;
  let turns = 0;
  for (const { text, event: v } of jsonEvents(lines)) {
    if (!v) {
      out.push({ kind: 'raw', text });
      continue;
    }
    if ((v.type === 'item.started' || v.type === 'item.completed' || v.type === 'item.updated') && isObject(v.item)) {
      const entries = itemEntries(v.item, v.type === 'item.completed');
      for (const e of entries) if (e.kind === 'text') lastText = e.text;
      out.push(...entries);
    } else if (v.type === 'turn.completed') {
      const usage = isObject(v.usage) ? v.usage : {};
      turns++;
      tokensIn += num(usage.input_tokens) ?? 0;
      tokensOut += num(usage.output_tokens) ?? 0;
      out.push({ kind: 'result', summary: summary(false, lastText, tokensIn, tokensOut, turns) });
    } else if (v.type === 'turn.failed') {
      const message = isObject(v.error) ? str(v.error.message) : '';
      out.push({ kind: 'result', summary: summary(true, message || 'the turn failed', tokensIn || null, tokensOut || null, turns + 1) });
    } else if (v.type === 'error') {
      const message = str(v.message);
      const retry = /Reconnecting\.\.\.\s*(\d+)\/(\d+)/.exec(message);
      // a fatal error is repeated by turn.failed, which carries the run's end
      if (retry) out.push({ kind: 'retry', attempt: Number(retry[1]), maxRetries: Number(retry[2]), error: message });
    }
  }
  return out;
}

function summary(
  isError: boolean,
  resultText: string,
  tokensIn: number | null,
  tokensOut: number | null,
  turns: number,
): TranscriptSummary {
  const apiErrorStatus = isError ? statusIn(resultText) : null;
  return { isError, resultText, costUsd: null, tokensIn, tokensOut, numTurns: turns, durationMs: null, apiErrorStatus };
}

const LIMIT_TEXT = /hit your usage limit/i;
const AUTH_TEXT = /\b401\b|\b403\b|unauthorized|not logged in|invalid api key|please (log|sign) ?in|codex login/i;

/** "try again at 3:45 PM" (the machine's local time) or "try again in 2 hours 5 minutes"; an hour from now otherwise. */
export function codexResetAt(text: string, now: number): number {
  const at = /try again at (\d{1,2}):(\d{2})\s*([AP]M)/i.exec(text);
  if (at) {
    const d = new Date(now);
    const hour = (Number(at[1]) % 12) + (at[3]!.toUpperCase() === 'PM' ? 12 : 0);
    d.setHours(hour, Number(at[2]), 0, 0);
    let t = d.getTime();
    if (t <= now) t += 24 * 3600_000;
    return t;
  }
  const inMatch = /try again in ((?:\d+\s*(?:days?|hours?|minutes?|seconds?)[\s,and]*)+)/i.exec(text);
  if (inMatch) {
    const unit: Record<string, number> = { d: 86400_000, h: 3600_000, m: 60_000, s: 1000 };
    let ms = 0;
    for (const m of inMatch[1]!.matchAll(/(\d+)\s*(d|h|m|s)/gi)) ms += Number(m[1]) * unit[m[2]!.toLowerCase()]!;
    if (ms > 0) return now + ms;
  }
  return resetFromText(text, now);
}

export const codex: CliAdapter = {
  name: 'codex',
  label: 'OpenAI Codex',
  defaultBinary: 'codex',
  models: ['gpt-5-codex', 'gpt-5', 'gpt-5-mini', 'o3', 'o4-mini'],
  modelPattern: /^[a-z0-9][a-z0-9._:-]*$/i,
  modelHint: 'an OpenAI model name such as gpt-5-codex',
  inheritedEnv: ['CODEX_HOME', 'OPENAI_API_KEY', 'CODEX_API_KEY', 'OPENAI_BASE_URL'],
  authFix: 'not logged in: run codex login, or set OPENAI_API_KEY for the daemon',
  launch: (c) => ({ args: launchArgs(c), stdin: promptThenTask(c.prompt, c.task), env: {} }),
  unmapped: ({ permissionMode, allowedTools }) => {
    const out: string[] = [];
    if (allowedTools.length)
      out.push('allowed tools: Codex has no per-tool or per-command allowlist; its sandbox decides what commands may change');
    if (!['plan', 'bypassPermissions'].includes(permissionMode)) {
      out.push(
        `permission mode ${permissionMode}: runs in the workspace-write sandbox (the working folder and the data folder are writable)`,
      );
    }
    return out;
  },
  parse,
  end: (lines) => {
    const entries = parse(lines);
    let result: TranscriptSummary | null = null;
    for (const e of entries) if (e.kind === 'result') result = e.summary;
    return { result, rateLimit: null } satisfies TranscriptEnd;
  },
  classify: (end, now) => {
    const text = end.result?.isError ? end.result.resultText : '';
    const status = end.result?.apiErrorStatus ?? null;
    if (LIMIT_TEXT.test(text)) return { cause: 'usage_limit', resetsAt: codexResetAt(text, now), limitType: 'usage_limit' };
    const serverError = status !== null && status >= 500 && status <= 599;
    if (status === 429 || /too many requests|rate limit/i.test(text) || serverError) return { cause: 'rate_limited' };
    if (AUTH_TEXT.test(text)) return { cause: 'auth' };
    return { cause: 'agent' };
  },
};
