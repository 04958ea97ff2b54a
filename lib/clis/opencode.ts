// OpenCode (`opencode run --format json`, docs/agents/opencode.md): JSONL events step_start, text,
// reasoning, tool_use (a finished call with its output), step_finish (each step's tokens and cost) and
// error. There is no final result line: the run's result is the last step that did not end in tool
// calls, with the tokens and cost of all steps. Permissions come as OPENCODE_PERMISSION (JSON); a
// permission that would be asked is refused, since `run` has no one to ask.
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

/** OpenCode's tool names read as the Claude Code tools whose readable forms they share. */
const TOOL_NAMES: Record<string, string> = {
  bash: 'Bash',
  edit: 'Edit',
  write: 'Write',
  read: 'Read',
  glob: 'Glob',
  grep: 'Grep',
  list: 'LS',
  webfetch: 'WebFetch',
};
const KEYS: Record<string, string> = { filePath: 'file_path', oldString: 'old_string', newString: 'new_string', replaceAll: 'replace_all' };

type Rule = 'allow' | 'deny';

/** The permission config for an agent type: listed tools allowed, Bash(prefix:*) as bash patterns, the rest refused. */
export function opencodePermission(permissionMode: string, allowedTools: string[]): Record<string, Rule | Record<string, Rule>> {
  if (permissionMode === 'bypassPermissions') {
    return { bash: 'allow', edit: 'allow', read: 'allow', glob: 'allow', grep: 'allow', list: 'allow', webfetch: 'allow' };
  }
  const has = (t: string) => allowedTools.includes(t);
  const bashPatterns: Record<string, Rule> = { '*': 'deny' };
  for (const t of allowedTools) {
    const m = /^Bash\((.+?)(?::\*| \*)?\)$/.exec(t);
    if (!m) continue;
    bashPatterns[m[1]!] = 'allow';
    if (/(?::\*| \*)\)$/.test(t)) bashPatterns[`${m[1]} *`] = 'allow';
  }
  const rule = (ok: boolean): Rule => (ok ? 'allow' : 'deny');
  const edits = permissionMode !== 'plan' && (permissionMode === 'acceptEdits' || has('Edit') || has('Write') || has('MultiEdit'));
  return {
    bash: has('Bash') && permissionMode !== 'plan' ? 'allow' : bashPatterns,
    edit: rule(edits),
    // reading is always allowed (see `unmapped`)
    read: 'allow',
    glob: 'allow',
    grep: 'allow',
    list: 'allow',
    webfetch: rule(has('WebFetch')),
  };
}

function launch(c: LaunchInput) {
  // the message is read from stdin: no positional argument, so nothing can be taken for one
  const args = ['run', '--format', 'json', '--model', c.model];
  const permission = JSON.stringify(opencodePermission(c.permissionMode, c.allowedTools));
  return { args, stdin: promptThenTask(c.prompt, c.task), env: { OPENCODE_PERMISSION: permission } };
}

function input(raw: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (isObject(raw)) for (const [k, v] of Object.entries(raw)) out[KEYS[k] ?? k] = v;
  return out;
}

function parse(lines: readonly string[]): TranscriptEntry[] {
  const out: TranscriptEntry[] = [];
  let lastText = '';
  let tokensIn = 0;
  let tokensOut = 0;
  let cost = 0;
  let steps = 0;
  for (const { text, event: v } of jsonEvents(lines)) {
    if (!v) {
      out.push({ kind: 'raw', text });
      continue;
    }
    const part = isObject(v.part) ? v.part : {};
    switch (v.type) {
      case 'text':
        if (str(part.text)) out.push({ kind: 'text', text: (lastText = str(part.text)) });
        break;
      case 'reasoning':
        if (str(part.text)) out.push({ kind: 'thinking', text: str(part.text) });
        break;
      case 'tool_use': {
        const state = isObject(part.state) ? part.state : {};
        const name = str(part.tool) || 'tool';
        const id = str(part.callID) || str(part.id);
        const call = toolCall(TOOL_NAMES[name] ?? name, input(state.input));
        out.push({ kind: 'tool_use', id, name, input: JSON.stringify(state.input ?? {}, null, 2), call });
        if (state.status === 'completed') out.push({ kind: 'tool_result', toolUseId: id, content: str(state.output), isError: false });
        else if (state.status === 'error') {
          out.push({ kind: 'tool_result', toolUseId: id, content: str(state.error) || 'the tool failed', isError: true });
        }
        break;
      }
      case 'step_finish': {
        const tokens = isObject(part.tokens) ? part.tokens : {};
        const cache = isObject(tokens.cache) ? tokens.cache : {};
        steps++;
        tokensIn += (num(tokens.input) ?? 0) + (num(cache.read) ?? 0) + (num(cache.write) ?? 0);
        tokensOut += (num(tokens.output) ?? 0) + (num(tokens.reasoning) ?? 0);
        cost += num(part.cost) ?? 0;
        if (part.reason !== 'tool-calls') out.push({ kind: 'result', summary: summary(false, lastText) });
        break;
      }
      case 'error': {
        const error = isObject(v.error) ? v.error : {};
        const data = isObject(error.data) ? error.data : {};
        const message = str(data.message) || str(error.name) || 'the run failed';
        const named = str(error.name) && str(error.name) !== 'UnknownError' ? `${str(error.name)}: ${message}` : message;
        out.push({ kind: 'result', summary: { ...summary(true, named), apiErrorStatus: num(data.statusCode) ?? statusIn(message) } });
        break;
      }
    }
  }
  return out;

  function summary(isError: boolean, resultText: string): TranscriptSummary {
    const counted = <T>(v: T): T | null => (steps ? v : null);
    return {
      isError,
      resultText,
      costUsd: counted(cost),
      tokensIn: counted(tokensIn),
      tokensOut: counted(tokensOut),
      numTurns: steps || null,
      durationMs: null,
      apiErrorStatus: null,
    };
  }
}

const AUTH_TEXT = /ProviderAuthError|unauthorized|invalid api key|authentication|not logged in/i;
const LIMIT_TEXT = /usage limit|quota/i;

export const opencode: CliAdapter = {
  name: 'opencode',
  label: 'OpenCode',
  defaultBinary: 'opencode',
  models: ['anthropic/claude-sonnet-4-5', 'openai/gpt-5', 'google/gemini-2.5-pro', 'opencode/grok-code'],
  modelPattern: /^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._:/@-]*$/i,
  modelHint: 'provider/model, such as anthropic/claude-sonnet-4-5',
  inheritedEnv: ['ANTHROPIC_API_KEY', 'OPENAI_API_KEY', 'GEMINI_API_KEY', 'OPENROUTER_API_KEY', 'OPENCODE_CONFIG', 'OPENCODE_CONFIG_DIR'],
  authFix: 'not logged in: run opencode auth login, or set the provider API key for the daemon',
  launch,
  unmapped: ({ permissionMode, allowedTools }) => {
    const known = (t: string) =>
      /^Bash(\(.+\))?$/.test(t) || ['Read', 'Edit', 'Write', 'MultiEdit', 'Glob', 'Grep', 'LS', 'WebFetch'].includes(t);
    const out = allowedTools.filter((t) => !known(t)).map((t) => `allowed tool ${t}: OpenCode has no such tool`);
    if (permissionMode === 'auto') out.push('permission mode auto: OpenCode has no classifier mode; only the listed tools are allowed');
    out.push('OpenCode always lets the agent read files (read, glob, grep, list)');
    return out;
  },
  parse,
  end: (lines): TranscriptEnd => {
    let result: TranscriptSummary | null = null;
    for (const e of parse(lines)) if (e.kind === 'result') result = e.summary;
    return { result, rateLimit: null };
  },
  classify: (end, now) => {
    const text = end.result?.isError ? end.result.resultText : '';
    const status = end.result?.apiErrorStatus ?? null;
    if ((status === 429 || status === null) && LIMIT_TEXT.test(text))
      return { cause: 'usage_limit', resetsAt: now + 3600_000, limitType: 'unknown' };
    if (status === 401 || status === 403 || AUTH_TEXT.test(text)) return { cause: 'auth' };
    if (status === 429 || (status !== null && status >= 500 && status <= 599) || /rate limit|overloaded/i.test(text))
      return { cause: 'rate_limited' };
    return { cause: 'agent' };
  },
};
