// Agent transcripts: the stream-json lines `claude -p --output-format stream-json --verbose`
// writes (research/claude-cli.md §5). The final `result` line carries is_error, usage and cost;
// `subtype` says "success" even on API errors, so only `is_error` and the exit code are trusted.
import fs from 'node:fs';
import path from 'node:path';

export interface TranscriptResult {
  isError: boolean;
  resultText: string | null;
  costUsd: number | null;
  tokensIn: number | null;
  tokensOut: number | null;
  numTurns: number | null;
  durationMs: number | null;
}

const TAIL_BYTES = 512 * 1024;

/**
 * The transcript file to serve, only when it really lies inside the runs folder once `..` and
 * symlinks are resolved (a prefix test on the stored path is not enough: `runs/../x` and
 * `runs-evil/x` both start with `runs`). Null when it is elsewhere or missing.
 */
export function transcriptInside(runsDir: string, file: string | null): string | null {
  if (!file) return null;
  try {
    const real = fs.realpathSync(file);
    const rel = path.relative(fs.realpathSync(runsDir), real);
    return rel !== '' && rel.split(path.sep)[0] !== '..' && !path.isAbsolute(rel) ? real : null;
  } catch {
    return null;
  }
}

/** The final result of a transcript, read from its tail only (a transcript can be megabytes). */
export function readTranscriptResult(file: string): TranscriptResult | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, size - length);
    const lines = buf.toString('utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!.trim();
      if (!line.startsWith('{') || !line.includes('"result"')) continue;
      const summary = resultFromLine(line);
      if (summary) return summary;
    }
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

function resultFromLine(line: string): TranscriptResult | null {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (e.type !== 'result') return null;
  const usage = (e.usage ?? {}) as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const tokensIn = ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'].map((k) => num(usage[k])).filter((v): v is number => v !== null);
  return {
    isError: e.is_error === true,
    resultText: typeof e.result === 'string' ? e.result.slice(0, 20_000) : null,
    costUsd: num(e.total_cost_usd),
    tokensIn: tokensIn.length ? tokensIn.reduce((a, b) => a + b, 0) : null,
    tokensOut: num(usage.output_tokens),
    numTurns: num(e.num_turns),
    durationMs: num(e.duration_ms),
  };
}

/** One transcript line as a line of readable text (for `dispatch runs tail`); null for noise. */
export function describeTranscriptLine(line: string): string | null {
  let e: Record<string, any>;
  try {
    e = JSON.parse(line) as Record<string, any>;
  } catch {
    return line.length > 300 ? `${line.slice(0, 300)}… (${line.length} characters)` : line;
  }
  if (e.type === 'system' && e.subtype === 'init') return `── session ${e.session_id} · ${e.model} · ${e.permissionMode} · ${e.cwd}`;
  if (e.type === 'system' && e.subtype === 'api_retry') return `   (API retry ${e.attempt}/${e.max_retries}: ${e.error_status ?? ''})`;
  if (e.type === 'assistant') {
    return (e.message?.content ?? [])
      .map((b: any) => (b.type === 'text' ? `assistant: ${b.text}` : b.type === 'tool_use' ? `tool ${b.name}: ${typeof b.input?.command === 'string' ? b.input.command : JSON.stringify(b.input)}` : null))
      .filter(Boolean)
      .join('\n') || null;
  }
  if (e.type === 'user') {
    return (e.message?.content ?? [])
      .filter((b: any) => b.type === 'tool_result')
      .map((b: any) => {
        const text = typeof b.content === 'string' ? b.content : JSON.stringify(b.content);
        return `  ${b.is_error ? '✗' : '→'} ${text.length > 500 ? `${text.slice(0, 500)}…` : text}`;
      })
      .join('\n') || null;
  }
  if (e.type === 'result') {
    const cost = typeof e.total_cost_usd === 'number' ? ` · $${e.total_cost_usd.toFixed(4)}` : '';
    return `── ${e.is_error ? 'error' : 'result'} after ${e.num_turns ?? '?'} turns${cost}: ${e.result ?? ''}`;
  }
  return null;
}
