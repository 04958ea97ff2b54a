// Gemini CLI (`gemini -p … -o stream-json`, docs/agents/gemini.md): JSONL events init, message (the
// assistant's text comes in deltas, joined here), tool_use, tool_result, error (a warning unless the
// run ends) and result (status and token stats: no cost). Its exit code names fatal errors (41 auth,
// 52 config).
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

/** Gemini's tool names read as the Claude Code tools whose readable forms they share. */
const TOOL_NAMES: Record<string, string> = {
  run_shell_command: 'Bash',
  write_file: 'Write',
  replace: 'Edit',
  read_file: 'Read',
  read_many_files: 'Read',
  glob: 'Glob',
  grep_search: 'Grep',
  search_file_content: 'Grep',
  list_directory: 'LS',
  web_fetch: 'WebFetch',
  google_web_search: 'WebSearch',
};
/** Ours → Gemini's: a Claude Code tool name (or Bash(prefix:*) pattern) as a Gemini allowed-tools entry. */
const ALLOWED: Record<string, string[]> = {
  Bash: ['run_shell_command'],
  Read: ['read_file', 'read_many_files'],
  Write: ['write_file'],
  Edit: ['replace'],
  MultiEdit: ['replace'],
  Glob: ['glob'],
  Grep: ['grep_search'],
  LS: ['list_directory'],
  WebFetch: ['web_fetch'],
  WebSearch: ['google_web_search'],
};
const APPROVAL: Record<string, string> = {
  plan: 'plan',
  default: 'default',
  dontAsk: 'default',
  acceptEdits: 'auto_edit',
  auto: 'yolo',
  bypassPermissions: 'yolo',
};

/** `Bash(git log:*)` → `run_shell_command(git log)`; null when the pattern has no Gemini form. */
function allowedTool(pattern: string): string[] | null {
  const bash = /^Bash\((.+?)(?::\*| \*)?\)$/.exec(pattern);
  if (bash) return [`run_shell_command(${bash[1]})`];
  return ALLOWED[pattern] ?? null;
}

function launchArgs(c: LaunchInput): string[] {
  const args = [
    '--output-format',
    'stream-json',
    '--model',
    c.model,
    '--approval-mode',
    APPROVAL[c.permissionMode] ?? 'default',
    '--skip-trust',
  ];
  // one `--allowed-tools=<tool>` per tool: the `=` form takes exactly one value, so nothing is swallowed
  for (const t of c.allowedTools.flatMap((p) => allowedTool(p) ?? [])) args.push(`--allowed-tools=${t}`);
  // -p switches to headless mode and is appended to the input read on stdin (the prompt and the task)
  args.push('--prompt', 'Carry out the task above.');
  return args;
}

function parse(lines: readonly string[]): TranscriptEntry[] {
  const out: TranscriptEntry[] = [];
  let lastText = '';
  let joining = false;
  for (const { text, event: v } of jsonEvents(lines)) {
    if (!v) {
      out.push({ kind: 'raw', text });
      joining = false;
      continue;
    }
    const wasJoining = joining;
    joining = false;
    switch (v.type) {
      case 'init':
        out.push({ kind: 'init', model: str(v.model), cwd: '', permissionMode: '', tools: [] });
        break;
      case 'message': {
        if (v.role !== 'assistant' || !str(v.content)) break;
        const last = out[out.length - 1];
        if (wasJoining && last?.kind === 'text') last.text += str(v.content);
        else out.push({ kind: 'text', text: str(v.content) });
        lastText = (out[out.length - 1] as { text: string }).text;
        joining = v.delta === true;
        break;
      }
      case 'tool_use': {
        const name = str(v.tool_name) || 'tool';
        const params = isObject(v.parameters) ? { ...v.parameters } : {};
        if (params.file_path === undefined && typeof params.absolute_path === 'string') params.file_path = params.absolute_path;
        const call = toolCall(TOOL_NAMES[name] ?? name, params);
        out.push({ kind: 'tool_use', id: str(v.tool_id), name, input: JSON.stringify(v.parameters ?? {}, null, 2), call });
        break;
      }
      case 'tool_result': {
        const error = isObject(v.error) ? str(v.error.message) : '';
        out.push({ kind: 'tool_result', toolUseId: str(v.tool_id), content: error || str(v.output), isError: v.status === 'error' });
        break;
      }
      case 'error':
        out.push({ kind: 'raw', text: `${str(v.severity) || 'error'}: ${str(v.message)}` });
        break;
      case 'result': {
        const stats = isObject(v.stats) ? v.stats : {};
        const error = isObject(v.error) ? v.error : null;
        const isError = v.status !== 'success';
        const type = error && str(error.type) !== 'unknown' ? str(error.type) : '';
        const resultText = error ? `${type ? `${type}: ` : ''}${str(error.message)}` : lastText;
        const summary: TranscriptSummary = {
          isError,
          resultText,
          costUsd: null,
          tokensIn: num(stats.input_tokens),
          tokensOut: num(stats.output_tokens),
          numTurns: null,
          durationMs: num(stats.duration_ms),
          apiErrorStatus: isError ? statusIn(resultText) : null,
        };
        out.push({ kind: 'result', summary });
        break;
      }
    }
  }
  return out;
}

const QUOTA_TEXT = /exhausted your daily quota|TerminalQuotaError|INSUFFICIENT_G1_CREDITS_BALANCE|usage limit/i;
const AUTH_TEXT =
  /FatalAuthenticationError|UNAUTHENTICATED|PERMISSION_DENIED|API key not valid|GEMINI_API_KEY|Manual authorization is required/i;

export const gemini: CliAdapter = {
  name: 'gemini',
  label: 'Gemini CLI',
  defaultBinary: 'gemini',
  models: ['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite'],
  modelPattern: /^[a-z0-9][a-z0-9._-]*$/i,
  modelHint: 'a Gemini model name such as gemini-2.5-pro',
  inheritedEnv: [
    'GEMINI_API_KEY',
    'GOOGLE_API_KEY',
    'GOOGLE_CLOUD_PROJECT',
    'GOOGLE_CLOUD_LOCATION',
    'GOOGLE_GENAI_USE_VERTEXAI',
    'GOOGLE_APPLICATION_CREDENTIALS',
    'GEMINI_CLI_HOME',
  ],
  authFix: 'not logged in: run gemini once to log in, or set GEMINI_API_KEY for the daemon',
  launch: (c) => ({ args: launchArgs(c), stdin: promptThenTask(c.prompt, c.task), env: {} }),
  unmapped: ({ permissionMode, allowedTools }) => {
    const out = allowedTools.filter((t) => allowedTool(t) === null).map((t) => `allowed tool ${t}: Gemini CLI has no such tool`);
    if (permissionMode === 'auto') out.push('permission mode auto: Gemini CLI has no classifier mode; runs as yolo (every tool allowed)');
    if (permissionMode === 'dontAsk') out.push('permission mode dontAsk: runs as default (tools that need approval are refused headless)');
    return out;
  },
  parse,
  end: (lines): TranscriptEnd => {
    let result: TranscriptSummary | null = null;
    for (const e of parse(lines)) if (e.kind === 'result') result = e.summary;
    return { result, rateLimit: null };
  },
  classify: (end, now, exitCode) => {
    const text = end.result?.isError ? end.result.resultText : '';
    const status = end.result?.apiErrorStatus ?? null;
    if (QUOTA_TEXT.test(text)) return { cause: 'usage_limit', resetsAt: resetFromText(text, now), limitType: 'daily_quota' };
    if (exitCode === 52) return { cause: 'config' };
    if (exitCode === 41 || status === 401 || status === 403 || AUTH_TEXT.test(text)) return { cause: 'auth' };
    const serverError = status !== null && status >= 500 && status <= 599;
    if (status === 429 || /RESOURCE_EXHAUSTED|UNAVAILABLE|overloaded/i.test(text) || serverError) return { cause: 'rate_limited' };
    return { cause: 'agent' };
  },
};
