// The transcript parser on the real CLI's stream-json sample: a readable conversation, the final
// result's cost and tokens, and total parsing of broken or half-written lines. The chunked reader
// never returns half a line of a file that is still being written.
import fs from 'node:fs';
import path from 'node:path';
import {
  describeTranscriptLine,
  lineDiff,
  parseTranscript,
  parseTranscriptLine,
  readTranscriptChunk,
  toolCall,
  transcriptSummary,
} from '../lib/transcript.js';
import { tempDir } from './helpers/home.js';
import { sampleTranscript } from './helpers/web.js';

const sample = fs.readFileSync(sampleTranscript, 'utf8');

test('the sample becomes init, text, tool calls, results (one an error) and the final result', () => {
  const entries = parseTranscript(sample);
  expect(entries.map((e) => e.kind)).toEqual([
    'init',
    'text',
    'tool_use',
    'tool_result',
    'tool_use',
    'tool_result',
    'tool_use',
    'tool_result',
    'text',
    'result',
  ]);
  expect(entries[0]).toMatchObject({ kind: 'init', model: 'claude-sonnet-5', cwd: '/home/user/Development/sample' });
  expect(entries[2]).toMatchObject({ kind: 'tool_use', name: 'Bash' });
  expect(entries[2]!.kind === 'tool_use' && JSON.parse(entries[2]!.input)).toEqual({
    command: "node ticket.cjs comment abc-7 'started'",
    description: 'Comment on the ticket',
  });
  expect(entries[5]).toMatchObject({ kind: 'tool_result', isError: true });
  expect(entries[3]).toMatchObject({ kind: 'tool_result', isError: false, content: 'ticket ok comment abc-7 started' });
});

test('the summary comes from the result line', () => {
  expect(transcriptSummary(parseTranscript(sample))).toEqual({
    isError: false,
    resultText: 'Ticket abc-7 is done.',
    costUsd: 0.105228,
    tokensIn: 34336,
    tokensOut: 148,
    numTurns: 4,
    durationMs: 757,
    apiErrorStatus: null,
  });
  expect(transcriptSummary(parseTranscript(sample.split('\n').slice(0, 5).join('\n')))).toBeNull();
});

test('an API error is judged by is_error, not subtype', () => {
  const line = JSON.stringify({
    type: 'result',
    subtype: 'success',
    is_error: true,
    result: 'API Error: 400 bad thing',
    total_cost_usd: 0,
    usage: { input_tokens: 0, output_tokens: 0 },
  });
  expect(parseTranscriptLine(line)).toMatchObject({ kind: 'result', summary: { isError: true, resultText: 'API Error: 400 bad thing' } });
});

test('broken, empty and unknown lines never throw', () => {
  expect(parseTranscriptLine('')).toBeNull();
  expect(parseTranscriptLine('{"type":"assistant","mess')).toEqual({ kind: 'raw', text: '{"type":"assistant","mess' });
  expect(parseTranscriptLine('42')).toEqual({ kind: 'raw', text: '42' });
  expect(parseTranscriptLine('{"type":"stream_event"}')).toBeNull();
  expect(parseTranscriptLine('{"type":"assistant","message":{"content":"plain"}}')).toEqual({ kind: 'text', text: 'plain' });
  expect(
    parseTranscriptLine(
      '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"a"},{"type":"image"}]}]}}',
    ),
  ).toEqual({
    kind: 'tool_result',
    toolUseId: 't',
    content: 'a\n[image]',
    isError: false,
  });
  expect(parseTranscriptLine('{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"error_status":529}')).toMatchObject({
    kind: 'retry',
    attempt: 1,
    error: '529',
  });
});

test('chunks end at a line boundary and resume from the returned offset', async () => {
  const file = path.join(tempDir(), 'run.log');
  const lines = sample.split('\n').filter(Boolean);
  fs.writeFileSync(file, `${lines[0]}\n${lines[1]!.slice(0, 30)}`);
  const first = await readTranscriptChunk(file, 0, 1024 * 1024);
  expect(first.text).toBe(`${lines[0]}\n`);
  expect(first.end).toBe(Buffer.byteLength(`${lines[0]}\n`));
  fs.appendFileSync(file, `${lines[1]!.slice(30)}\n`);
  const second = await readTranscriptChunk(file, first.end, 1024 * 1024);
  expect(second.text).toBe(`${lines[1]}\n`);
  const third = await readTranscriptChunk(file, second.end, 1024 * 1024);
  expect(third).toMatchObject({ text: '', end: second.end });
  fs.appendFileSync(file, 'tail without newline');
  expect((await readTranscriptChunk(file, second.end, 1024 * 1024, true)).text).toBe('tail without newline');
});

test('a file larger than the cap keeps its newest whole lines and reports what it skipped', async () => {
  const file = path.join(tempDir(), 'big.log');
  const line = `${'x'.repeat(99)}\n`;
  fs.writeFileSync(file, line.repeat(100));
  const chunk = await readTranscriptChunk(file, 0, 1050);
  expect(chunk.text).toBe(line.repeat(10));
  expect(chunk.skipped).toBe(9000);
  expect(chunk.end).toBe(10_000);
});

describe('tool calls read like a terminal session', () => {
  test('Bash is a command with its description; the sample shows it so', () => {
    expect(toolCall('Bash', { command: 'npm test -- --watch=false', description: 'Run the tests' })).toEqual({
      kind: 'command',
      command: 'npm test -- --watch=false',
      description: 'Run the tests',
    });
    const bash = parseTranscript(sample).find((e) => e.kind === 'tool_use')!;
    expect(bash.kind === 'tool_use' && bash.call).toEqual({
      kind: 'command',
      command: "node ticket.cjs comment abc-7 'started'",
      description: 'Comment on the ticket',
    });
    const line = JSON.stringify({
      type: 'assistant',
      message: { content: [{ type: 'tool_use', id: 't', name: 'Bash', input: { command: 'ls -la', description: 'List' } }] },
    });
    expect(describeTranscriptLine(line)).toEqual(['$ ls -la   # List']);
  });

  test('Edit, MultiEdit and Write are diffs; Read, Grep and Glob one line; the rest keeps its raw input', () => {
    expect(
      toolCall('Edit', { file_path: '/r/a.ts', old_string: 'const a = 1;\nconst b = 2;', new_string: 'const a = 1;\nconst b = 3;' }),
    ).toEqual({
      kind: 'edit',
      path: '/r/a.ts',
      note: '',
      hunks: [
        [
          { op: ' ', text: 'const a = 1;' },
          { op: '-', text: 'const b = 2;' },
          { op: '+', text: 'const b = 3;' },
        ],
      ],
    });
    expect(toolCall('Edit', { file_path: 'x', old_string: 'a', new_string: 'b', replace_all: true })).toMatchObject({
      note: 'every occurrence',
    });
    const multi = toolCall('MultiEdit', {
      file_path: 'm.ts',
      edits: [{ old_string: 'a', new_string: 'b' }, { old_string: 'c', new_string: '' }, 'junk'],
    });
    expect(multi).toEqual({
      kind: 'edit',
      path: 'm.ts',
      note: '2 edits',
      hunks: [
        [
          { op: '-', text: 'a' },
          { op: '+', text: 'b' },
        ],
        [{ op: '-', text: 'c' }],
      ],
    });
    expect(toolCall('Write', { file_path: 'n.txt', content: 'one\ntwo' })).toEqual({
      kind: 'edit',
      path: 'n.txt',
      note: 'whole file',
      hunks: [
        [
          { op: '+', text: 'one' },
          { op: '+', text: 'two' },
        ],
      ],
    });
    expect(toolCall('Read', { file_path: '/r/lib/x.ts' })).toEqual({ kind: 'target', text: '/r/lib/x.ts' });
    expect(toolCall('Read', { file_path: '/r/lib/x.ts', offset: 10, limit: 5 })).toEqual({
      kind: 'target',
      text: '/r/lib/x.ts (lines 10–14)',
    });
    expect(toolCall('Grep', { pattern: 'TODO\\(', path: 'lib', glob: '*.ts' })).toEqual({ kind: 'target', text: 'TODO\\( in lib (*.ts)' });
    expect(toolCall('Glob', { pattern: '**/*.njk' })).toEqual({ kind: 'target', text: '**/*.njk' });
    expect(toolCall('TodoWrite', { todos: [] })).toEqual({ kind: 'input' });
    // whatever an agent sends, the parser never throws
    for (const input of [null, 'str', 42, [], { command: 7 }, { edits: 'x' }, { file_path: {} }]) {
      for (const name of ['Bash', 'Edit', 'MultiEdit', 'Write', 'Read', 'Grep', 'Glob', 'LS', 'WebFetch', 'WebSearch'])
        expect(() => toolCall(name, input)).not.toThrow();
    }
    expect(toolCall('Bash', { command: 7 })).toEqual({ kind: 'input' });
  });

  test('lineDiff keeps common lines as context and finds the changed ones', () => {
    expect(lineDiff('a\nb\nc\nd', 'a\nc\nx\nd')).toEqual([
      { op: ' ', text: 'a' },
      { op: '-', text: 'b' },
      { op: ' ', text: 'c' },
      { op: '+', text: 'x' },
      { op: ' ', text: 'd' },
    ]);
    expect(lineDiff('', '')).toEqual([]);
    expect(lineDiff('same', 'same')).toEqual([{ op: ' ', text: 'same' }]);
    // past the size limit the middle is a removal then an addition, still complete
    const big = Array.from({ length: 600 }, (_, i) => `line ${i}`);
    const changed = big.map((l, i) => (i % 2 ? `${l} changed` : l));
    const diff = lineDiff(big.join('\n'), changed.join('\n'));
    expect(diff.filter((l) => l.op !== '+').map((l) => l.text)).toEqual(big);
    expect(diff.filter((l) => l.op !== '-').map((l) => l.text)).toEqual(changed);
  });
});
