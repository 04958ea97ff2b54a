// Agent transcripts: the JSON lines an agent CLI writes, turned into one readable conversation model
// whatever the CLI (each CLI's parser is in lib/clis/; claude is the default). Parsing is total: an
// unknown or broken line becomes a `raw` entry or is skipped, never an exception, because the
// file is being written while we read it. The `result` entry is the authority on cost, tokens and
// errors. A tool call also gets a readable form (`toolCall`): a shell command, a diff of an edit, a
// path or pattern, which the run page and `dispatch runs tail` both show.
import fs from 'node:fs';
import { open } from 'node:fs/promises';
import { cliAdapter } from './clis/index.js';

export type TranscriptEntry =
  | { kind: 'init'; model: string; cwd: string; permissionMode: string; tools: string[] }
  | { kind: 'text'; text: string }
  | { kind: 'thinking'; text: string }
  | { kind: 'tool_use'; id: string; name: string; input: string; call: ToolCall }
  | { kind: 'tool_result'; toolUseId: string; content: string; isError: boolean }
  | { kind: 'retry'; attempt: number; maxRetries: number; error: string }
  | { kind: 'result'; summary: TranscriptSummary }
  | { kind: 'raw'; text: string };

export interface TranscriptSummary {
  isError: boolean;
  resultText: string;
  costUsd: number | null;
  tokensIn: number | null;
  tokensOut: number | null;
  numTurns: number | null;
  durationMs: number | null;
  /** the HTTP status of the API answer that ended the run (429, 529, 401…), when the CLI reports one */
  apiErrorStatus: number | null;
}

/** A `rate_limit_event` line: a subscription login's usage-limit state (`rejected` when it is used up). */
export interface RateLimitInfo {
  status: string;
  /** when the limit resets, in ms since the epoch (the line carries epoch seconds) */
  resetsAt: number | null;
  limitType: string;
}

/** One line of a diff: removed, added, or unchanged context. */
export interface DiffLine {
  op: '-' | '+' | ' ';
  text: string;
}

/** How a tool call reads: a shell command, file changes as diffs, a one-line target, or only its raw input. */
export type ToolCall =
  | { kind: 'command'; command: string; description: string }
  | { kind: 'edit'; path: string; hunks: DiffLine[][]; note: string }
  | { kind: 'target'; text: string }
  | { kind: 'input' };

type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON-lines event stream, line by line: each non-empty line with its event, or null where the line is no JSON object (shown raw). */
export function* jsonEvents(lines: readonly string[]): Generator<{ text: string; event: Json | null }> {
  for (const line of lines) {
    const text = line.trim();
    if (!text) continue;
    let value: unknown = null;
    try {
      value = JSON.parse(text);
    } catch {
      value = null;
    }
    yield { text, event: isObject(value) ? value : null };
  }
}
export const str = (v: unknown): string => (typeof v === 'string' ? v : '');
export const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Text of a tool_result's content, which is a string or a list of text/image blocks. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return content === undefined ? '' : JSON.stringify(content);
  return content
    .map((b) => (isObject(b) && b.type === 'text' ? str(b.text) : isObject(b) ? `[${str(b.type) || 'block'}]` : String(b)))
    .join('\n');
}

/** Diffs larger than this (lines of old times lines of new) are shown as all removed, then all added. */
const DIFF_CELLS = 250_000;

/**
 * A line diff of two texts: common leading and trailing lines as context, the middle by longest
 * common subsequence (or, past DIFF_CELLS, as a plain removal followed by an addition).
 */
export function lineDiff(before: string, after: string): DiffLine[] {
  const a = before === '' ? [] : before.split('\n');
  const b = after === '' ? [] : after.split('\n');
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const oldMid = a.slice(head, a.length - tail);
  const newMid = b.slice(head, b.length - tail);
  const middle: DiffLine[] = [];
  if (oldMid.length * newMid.length > DIFF_CELLS || !oldMid.length || !newMid.length) {
    for (const text of oldMid) middle.push({ op: '-', text });
    for (const text of newMid) middle.push({ op: '+', text });
  } else {
    // lcs[i][j]: length of the longest common subsequence of oldMid[i..] and newMid[j..]
    const n = oldMid.length;
    const m = newMid.length;
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i]![j] = oldMid[i] === newMid[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && oldMid[i] === newMid[j]) {
        middle.push({ op: ' ', text: oldMid[i]! });
        i++;
        j++;
      } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) middle.push({ op: '-', text: oldMid[i++]! });
      else middle.push({ op: '+', text: newMid[j++]! });
    }
  }
  const context = (lines: string[]) => lines.map((text): DiffLine => ({ op: ' ', text }));
  return [...context(a.slice(0, head)), ...middle, ...context(b.slice(b.length - tail))];
}

const joinDefined = (parts: (string | false)[]) => parts.filter(Boolean).join(' ');

/** The readable form of a call to one of Claude Code's tools; anything unknown keeps only its raw input. */
export function toolCall(name: string, input: unknown): ToolCall {
  const i = isObject(input) ? input : {};
  const path = str(i.file_path) || str(i.notebook_path) || str(i.path);
  switch (name) {
    case 'Bash':
      return str(i.command) ? { kind: 'command', command: str(i.command), description: str(i.description) } : { kind: 'input' };
    case 'Edit': {
      const note = i.replace_all === true ? 'every occurrence' : '';
      return { kind: 'edit', path, hunks: [lineDiff(str(i.old_string), str(i.new_string))], note };
    }
    case 'MultiEdit': {
      const edits = Array.isArray(i.edits) ? i.edits.filter(isObject) : [];
      const hunks = edits.map((e) => lineDiff(str(e.old_string), str(e.new_string)));
      return { kind: 'edit', path, hunks, note: `${edits.length} edit${edits.length === 1 ? '' : 's'}` };
    }
    case 'Write':
      return { kind: 'edit', path, hunks: [lineDiff('', str(i.content))], note: 'whole file' };
    case 'Read': {
      const from = num(i.offset);
      const count = num(i.limit);
      const range = from !== null || count !== null ? `(lines ${from ?? 1}${count !== null ? `–${(from ?? 1) + count - 1}` : ' on'})` : '';
      return path ? { kind: 'target', text: joinDefined([path, range]) } : { kind: 'input' };
    }
    case 'Grep':
    case 'Glob': {
      const pattern = str(i.pattern);
      const scope = joinDefined([path && `in ${path}`, str(i.glob) && `(${str(i.glob)})`, str(i.type) && `(type ${str(i.type)})`]);
      return pattern ? { kind: 'target', text: joinDefined([pattern, scope]) } : { kind: 'input' };
    }
    case 'LS':
      return path ? { kind: 'target', text: path } : { kind: 'input' };
    case 'WebFetch':
      return str(i.url) ? { kind: 'target', text: str(i.url) } : { kind: 'input' };
    case 'WebSearch':
      return str(i.query) ? { kind: 'target', text: str(i.query) } : { kind: 'input' };
    default:
      return { kind: 'input' };
  }
}

/** One line saying what a tool call does, for plain-text transcripts. */
export function toolCallLine(name: string, call: ToolCall, input: string): string {
  switch (call.kind) {
    case 'command':
      return `$ ${call.command.replace(/\n/g, '\n  ')}${call.description ? `   # ${call.description}` : ''}`;
    case 'edit': {
      const lines = call.hunks.flat();
      return `${name} ${call.path} (+${lines.filter((l) => l.op === '+').length} −${lines.filter((l) => l.op === '-').length})`;
    }
    case 'target':
      return `${name} ${call.text}`;
    case 'input':
      return `tool ${name}: ${input.replace(/\s+/g, ' ')}`;
  }
}

/**
 * Entries of one line. Claude's assistant lines carry one content block each in practice; a line that
 * somehow carries several yields only its first here, so use `parseTranscript` for whole files.
 */
export function parseTranscriptLine(line: string, cli = 'claude'): TranscriptEntry | null {
  return cliAdapter(cli).parse([line])[0] ?? null;
}

/** The entries of a transcript written by `cli` (a CLI's parser may join lines, such as streamed text). */
export function parseTranscript(text: string, cli = 'claude'): TranscriptEntry[] {
  return cliAdapter(cli).parse(text.split('\n'));
}

/** The final result's fields, or null while the run has not written its result line. */
export function transcriptSummary(entries: readonly TranscriptEntry[]): TranscriptSummary | null {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.kind === 'result') return e.summary;
  }
  return null;
}

export interface TranscriptChunk {
  /** complete lines read, without a trailing partial line */
  text: string;
  /** byte offset just after the last complete line: where the next read starts */
  end: number;
  /** total file size when read */
  size: number;
  /** bytes skipped at the start because the file was larger than the cap */
  skipped: number;
}

/**
 * Reads complete lines from `offset`, at most `maxBytes` of them; when more is available the
 * newest `maxBytes` are kept (starting at a line boundary) and `skipped` says how much was left out.
 * A partial last line is left for the next read (unless `includePartial`, for a finished run),
 * so a live tail never shows half a JSON line.
 */
export async function readTranscriptChunk(
  file: string,
  offset: number,
  maxBytes: number,
  includePartial = false,
): Promise<TranscriptChunk> {
  const handle = await open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    if (offset >= size) return { text: '', end: Math.min(offset, size), size, skipped: 0 };
    const start = Math.max(offset, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buf, 0, buf.length, start);
    let data = buf.subarray(0, bytesRead);
    let skipped = start - offset;
    if (skipped > 0) {
      const nl = data.indexOf(10);
      skipped += nl + 1;
      data = nl === -1 ? data.subarray(data.length) : data.subarray(nl + 1);
    }
    const lastNl = data.lastIndexOf(10);
    const complete = includePartial ? data : lastNl === -1 ? data.subarray(0, 0) : data.subarray(0, lastNl + 1);
    return { text: complete.toString('utf8'), end: offset + skipped + complete.length, size, skipped };
  } finally {
    await handle.close();
  }
}

const RESULT_TAIL_BYTES = 512 * 1024;

export interface TranscriptEnd {
  result: TranscriptSummary | null;
  /** the last rate-limit event, when the CLI prints one (Claude Code's rate_limit_event) */
  rateLimit: RateLimitInfo | null;
}

/**
 * The final result and the last rate-limit event of a transcript file written by `cli`, read from its
 * tail only (a transcript can be megabytes).
 */
export function readTranscriptEnd(file: string, cli = 'claude'): TranscriptEnd {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return { result: null, rateLimit: null };
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, RESULT_TAIL_BYTES);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, size - length);
    return cliAdapter(cli).end(buf.toString('utf8').split('\n'));
  } finally {
    fs.closeSync(fd);
  }
}

/** One transcript line as readable text lines (for `dispatch runs tail`). */
export function describeTranscriptLine(line: string, cli = 'claude'): string[] {
  return cliAdapter(cli)
    .parse([line])
    .map((e) => {
      switch (e.kind) {
        case 'init':
          return `── session · ${[e.model, e.permissionMode, e.cwd].filter(Boolean).join(' · ')}`;
        case 'text':
          return `assistant: ${e.text}`;
        case 'thinking':
          return `thinking: ${e.text}`;
        case 'tool_use':
          return toolCallLine(e.name, e.call, e.input);
        case 'tool_result':
          return `  ${e.isError ? '✗' : '→'} ${e.content.length > 500 ? `${e.content.slice(0, 500)}…` : e.content}`;
        case 'retry':
          return `   (API retry ${e.attempt}/${e.maxRetries}: ${e.error})`;
        case 'result':
          return `── ${e.summary.isError ? 'error' : 'result'} after ${e.summary.numTurns ?? '?'} turns${e.summary.costUsd !== null ? ` · $${e.summary.costUsd.toFixed(4)}` : ''}: ${e.summary.resultText}`;
        case 'raw':
          return e.text.length > 300 ? `${e.text.slice(0, 300)}… (${e.text.length} characters)` : e.text;
      }
    });
}
