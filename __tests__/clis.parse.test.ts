// Each agent CLI's adapter against that CLI's real output (transcripts recorded from the real CLIs run
// against a local mock of their model APIs): the common transcript model, the run's result and tokens,
// the cause of a failure, and how an agent type's settings become the CLI's argv, stdin and permissions.
import fs from 'node:fs';
import path from 'node:path';
import { allAdapters, cliAdapter, cliBinary } from '../lib/clis/index.js';
import { opencodePermission } from '../lib/clis/opencode.js';
import { parseConfig } from '../lib/config.js';
import { describeTranscriptLine, parseTranscript, readTranscriptEnd } from '../lib/transcript.js';
import { repoRoot } from './helpers/daemon.js';

const fixture = (name: string) => path.join(repoRoot, '__tests__', 'fixtures', name);
const kinds = (cli: string, name: string) => parseTranscript(fs.readFileSync(fixture(name), 'utf8'), cli).map((e) => e.kind);
const NOW = Date.UTC(2026, 10, 30, 9, 0);

describe('recorded transcripts read into the common model', () => {
  test('codex 0.171.0: a shell call with its output, the final message, tokens from turn.completed and no cost', () => {
    const entries = parseTranscript(fs.readFileSync(fixture('codex-mock-0.171.0.jsonl'), 'utf8'), 'codex');
    expect(entries.map((e) => e.kind)).toEqual(['raw', 'tool_use', 'tool_result', 'text', 'result']);
    expect(entries[1]).toMatchObject({ kind: 'tool_use', name: 'shell', call: { kind: 'command', command: 'echo hello-from-tool' } });
    expect(entries[2]).toMatchObject({ kind: 'tool_result', isError: false, content: expect.stringContaining('hello-from-tool') });
    expect(readTranscriptEnd(fixture('codex-mock-0.171.0.jsonl'), 'codex').result).toMatchObject({
      isError: false,
      resultText: 'Done: the tool said hello.',
      tokensIn: 2400,
      tokensOut: 80,
      costUsd: null,
    });
  });

  test('gemini 0.61.0: init, a shell call and its result, the text, and the stats of the result line', () => {
    expect(kinds('gemini', 'gemini-mock-0.61.0.jsonl')).toEqual(['init', 'tool_use', 'tool_result', 'text', 'result']);
    const entries = parseTranscript(fs.readFileSync(fixture('gemini-mock-0.61.0.jsonl'), 'utf8'), 'gemini');
    expect(entries[1]).toMatchObject({
      name: 'run_shell_command',
      call: { kind: 'command', command: 'echo hello-from-tool', description: 'Say hello' },
    });
    expect(readTranscriptEnd(fixture('gemini-mock-0.61.0.jsonl'), 'gemini').result).toMatchObject({
      isError: false,
      resultText: 'Done: the tool said hello.',
      tokensIn: 2400,
      tokensOut: 80,
      costUsd: null,
      durationMs: 3467,
    });
  });

  test("gemini: the assistant's streamed pieces are one message", () => {
    const lines = [
      JSON.stringify({ type: 'message', role: 'assistant', content: 'Hel', delta: true }),
      JSON.stringify({ type: 'message', role: 'assistant', content: 'lo.', delta: true }),
      JSON.stringify({ type: 'result', status: 'success', stats: { input_tokens: 5, output_tokens: 2 } }),
    ];
    expect(parseTranscript(lines.join('\n'), 'gemini')).toEqual([
      { kind: 'text', text: 'Hello.' },
      { kind: 'result', summary: expect.objectContaining({ resultText: 'Hello.', tokensIn: 5, tokensOut: 2 }) },
    ]);
  });

  test('opencode 1.18.33: the bash call with its output, the text, and the tokens and cost of all steps', () => {
    expect(kinds('opencode', 'opencode-mock-1.18.33.jsonl')).toEqual(['tool_use', 'tool_result', 'text', 'result']);
    expect(readTranscriptEnd(fixture('opencode-mock-1.18.33.jsonl'), 'opencode').result).toMatchObject({
      isError: false,
      resultText: 'Done: the tool said hello.',
      tokensIn: 2400,
      tokensOut: 80,
      costUsd: 0,
      numTurns: 2,
    });
  });

  test('dispatch runs tail reads each CLI line by line', () => {
    const codexLine = fs.readFileSync(fixture('codex-mock-0.171.0.jsonl'), 'utf8').split('\n')[4]!;
    expect(describeTranscriptLine(codexLine, 'codex')[0]).toBe('$ echo hello-from-tool');
    const opencodeLine = fs.readFileSync(fixture('opencode-mock-1.18.33.jsonl'), 'utf8').split('\n')[1]!;
    expect(describeTranscriptLine(opencodeLine, 'opencode')).toEqual(['$ echo hello-from-tool   # Say hello', '  → hello-from-tool\n']);
  });
});

describe('failure causes from recorded errors', () => {
  const classify = (cli: string, name: string, exit: number | null = 1) =>
    cliAdapter(cli).classify(readTranscriptEnd(fixture(name), cli), NOW, exit);

  test('codex: a used-up ChatGPT plan is a usage limit until the named time, a 429 is a rate limit, a 401 a login problem', () => {
    const limit = classify('codex', 'codex-usage-limit-0.171.0.jsonl');
    expect(limit.cause).toBe('usage_limit');
    const at = new Date(limit.resetsAt!);
    expect([at.getHours(), at.getMinutes()]).toEqual([11, 16]);
    expect(limit.resetsAt! - NOW).toBeLessThanOrEqual(24 * 3600_000);
    expect(limit.resetsAt!).toBeGreaterThan(NOW);
    expect(classify('codex', 'codex-429-0.171.0.jsonl')).toEqual({ cause: 'rate_limited' });
    expect(classify('codex', 'codex-401-0.171.0.jsonl')).toEqual({ cause: 'auth' });
    expect(classify('codex', 'codex-mock-0.171.0.jsonl')).toEqual({ cause: 'agent' });
  });

  test('gemini: a 401 is a login problem; exit codes 41 and 52 are login and setup problems', () => {
    expect(classify('gemini', 'gemini-401-0.61.0.jsonl')).toEqual({ cause: 'auth' });
    const none = { result: null, rateLimit: null };
    expect(cliAdapter('gemini').classify(none, NOW, 41)).toEqual({ cause: 'auth' });
    expect(cliAdapter('gemini').classify(none, NOW, 52)).toEqual({ cause: 'config' });
    expect(cliAdapter('gemini').classify(none, NOW, 1)).toEqual({ cause: 'agent' });
  });

  test('opencode: an error event with a status or a provider login error', () => {
    const end = (error: unknown) => readEnd('opencode', [JSON.stringify({ type: 'error', error })]);
    expect(
      cliAdapter('opencode').classify(end({ name: 'APIError', data: { message: 'Too many requests', statusCode: 429 } }), NOW, 1),
    ).toEqual({ cause: 'rate_limited' });
    expect(cliAdapter('opencode').classify(end({ name: 'ProviderAuthError', data: { message: 'invalid x-api-key' } }), NOW, 1)).toEqual({
      cause: 'auth',
    });
  });
});

function readEnd(cli: string, lines: string[]) {
  return cliAdapter(cli).end(lines);
}

describe('launching each CLI', () => {
  const input = {
    model: 'm',
    permissionMode: 'default',
    allowedTools: ['Bash(ticket:*)', 'Read', 'Bash(git log:*)', 'NotebookEdit'],
    promptFile: '/p/run.prompt.md',
    prompt: '# Reviewer',
    task: 'Your ticket is ab-1',
    dataDir: '/home/x/.dispatch',
  };

  test('claude keeps its argv: the prompt as a file, the task on stdin, the variadic tools last', () => {
    const l = cliAdapter('claude').launch({ ...input, model: 'sonnet' });
    expect(l.args).toEqual([
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--model',
      'sonnet',
      '--permission-mode',
      'default',
      '--append-system-prompt-file',
      '/p/run.prompt.md',
      '--allowedTools',
      'Bash(ticket:*)',
      'Read',
      'Bash(git log:*)',
      'NotebookEdit',
    ]);
    expect(l.stdin).toBe('Your ticket is ab-1');
  });

  test('the others read the prompt and the task on stdin; no argument can be taken for the prompt', () => {
    const codex = cliAdapter('codex').launch(input);
    expect(codex.args).toEqual([
      'exec',
      '--json',
      '--skip-git-repo-check',
      '--model',
      'm',
      '--sandbox',
      'workspace-write',
      '--add-dir',
      '/home/x/.dispatch',
      '-',
    ]);
    expect(cliAdapter('codex').launch({ ...input, permissionMode: 'plan' }).args).toContain('read-only');
    const gemini = cliAdapter('gemini').launch(input);
    expect(gemini.args).toEqual([
      '--output-format',
      'stream-json',
      '--model',
      'm',
      '--approval-mode',
      'default',
      '--skip-trust',
      '--allowed-tools=run_shell_command(ticket)',
      '--allowed-tools=read_file',
      '--allowed-tools=read_many_files',
      '--allowed-tools=run_shell_command(git log)',
      '--prompt',
      'Carry out the task above.',
    ]);
    const opencode = cliAdapter('opencode').launch(input);
    expect(opencode.args).toEqual(['run', '--format', 'json', '--model', 'm']);
    for (const l of [codex, gemini, opencode]) expect(l.stdin).toBe('# Reviewer\n\n---\n\nYour ticket is ab-1');
    expect(JSON.parse(opencode.env.OPENCODE_PERMISSION!).bash).toEqual({
      '*': 'deny',
      ticket: 'allow',
      'ticket *': 'allow',
      'git log': 'allow',
      'git log *': 'allow',
    });
  });

  test('what a CLI cannot honour is listed', () => {
    expect(cliAdapter('claude').unmapped(input)).toEqual([]);
    expect(cliAdapter('codex').unmapped(input).join('\n')).toMatch(/no per-tool or per-command allowlist/);
    expect(cliAdapter('gemini').unmapped(input)).toEqual(['allowed tool NotebookEdit: Gemini CLI has no such tool']);
    expect(cliAdapter('opencode').unmapped(input)).toContain('allowed tool NotebookEdit: OpenCode has no such tool');
    expect(opencodePermission('plan', ['Edit']).edit).toBe('deny');
    expect(opencodePermission('acceptEdits', []).edit).toBe('allow');
  });

  test("each CLI's binary: clis.<name>.binary, else its name; for claude claude_binary unless clis.claude.binary is set", () => {
    const plain = parseConfig({});
    expect(allAdapters().map((a) => cliBinary(plain, a.name))).toEqual(['claude', 'codex', 'gemini', 'opencode']);
    expect(cliBinary(parseConfig({ claude_binary: '/opt/claude' }), 'claude')).toBe('/opt/claude');
    expect(cliBinary(parseConfig({ claude_binary: '/opt/claude', clis: { claude: { binary: '/opt/c2' } } }), 'claude')).toBe('/opt/c2');
    expect(cliBinary(parseConfig({ clis: { codex: { binary: '/opt/codex' } } }), 'codex')).toBe('/opt/codex');
    expect(() => parseConfig({ clis: { aider: { binary: 'x' } } })).toThrow(/clis/);
  });
});
