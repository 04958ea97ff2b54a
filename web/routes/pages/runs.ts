// /runs (recent runs across projects, filter by status, paginated), /runs/<id> (the transcript
// as a conversation), /runs/<id>/events (server-sent events tailing the transcript by byte offset
// while the run is live, through web/sse.ts) and the kill button, which asks first (confirm.ts).
// The transcript file is only ever found through the run row (lib/runs transcriptFile), never from
// a request parameter. Rendering is capped: the page shows the newest TRANSCRIPT_WINDOW bytes and
// each entry at most ENTRY_CHARS characters.
// The page and the live view render entries with the same template (runs/entry.njk) from the
// same view (entryView): tool calls as a shell command, a diff or a one-line target with the raw
// input a click away, and long tool results folded behind "show all".
import { RUN_CAUSES, type RunCause } from '../../../lib/runCause.js';
import { Router, type Request } from 'express';
import { requireRun, listRuns, LIVE_STATUSES, RUN_STATUSES, transcriptFile, type RunListItem, type RunStatus } from '../../../lib/runs.js';
import { parseTranscript, readTranscriptChunk, transcriptSummary } from '../../../lib/transcript.js';
import type { DiffLine, ToolCall, TranscriptEntry } from '../../../lib/transcript.js';
import { UserError } from '../../../lib/errors.js';
import { formValues, pageNumber, returnPath, withNotice } from './form.js';
import { confirmed, renderConfirm } from './confirm.js';
import type { AppContext } from '../../context.js';
import type { EventStreams } from '../../sse.js';

const PAGE_SIZE = 50;
const TRANSCRIPT_WINDOW = 1024 * 1024;
const ENTRY_CHARS = 10_000;
/** A tool result longer than this many lines shows its first RESULT_PREVIEW_LINES, the rest behind "show all". */
const RESULT_LINES = 20;
const RESULT_PREVIEW_LINES = 10;
/** Lines of an edit's diff shown; the rest is in the raw input. */
const DIFF_LINES = 400;
const POLL_MS = 500;

export function runPages(ctx: AppContext, streams: EventStreams): Router {
  const r = Router();
  const db = ctx.store.db;

  r.get('/runs', (req, res) => {
    const status = typeof req.query.status === 'string' && req.query.status ? (req.query.status as RunStatus) : undefined;
    if (status && !RUN_STATUSES.includes(status)) throw new UserError(`status must be one of ${RUN_STATUSES.join(', ')}`, 'status');
    const cause = typeof req.query.cause === 'string' && req.query.cause ? (req.query.cause as RunCause) : undefined;
    if (cause && !RUN_CAUSES.includes(cause)) throw new UserError(`cause must be one of ${RUN_CAUSES.join(', ')}`, 'cause');
    const page = pageNumber(req.query.page);
    const rows = listRuns(db, { status, cause, limit: PAGE_SIZE + 1, offset: (page - 1) * PAGE_SIZE });
    const base = `/runs?${status ? `status=${status}&` : ''}${cause ? `cause=${cause}&` : ''}`;
    res.render('runs/index.njk', {
      title: 'Runs',
      section: 'runs',
      runs: rows.slice(0, PAGE_SIZE).map(runRow),
      statuses: RUN_STATUSES,
      status: status ?? '',
      causes: RUN_CAUSES,
      cause: cause ?? '',
      page,
      prev: page > 1 ? `${base}page=${page - 1}` : null,
      next: rows.length > PAGE_SIZE ? `${base}page=${page + 1}` : null,
      self: page > 1 ? `${base}page=${page}` : base.slice(0, -1),
    });
  });

  r.get('/runs/:id', async (req, res) => {
    const run = requireRun(db, req.params.id);
    const file = transcriptFile(ctx.paths.runs, run);
    const live = LIVE_STATUSES.includes(run.status);
    const chunk = file ? await readTranscriptChunk(file, 0, TRANSCRIPT_WINDOW, !live) : null;
    const entries = chunk ? parseTranscript(chunk.text, run.cli) : [];
    const summary = transcriptSummary(entries);
    res.render('runs/show.njk', {
      title: `Run ${run.id}`,
      section: 'runs',
      run: {
        ...runRow(run),
        exitCode: run.exit_code,
        error: run.error,
        cwd: run.cwd,
        pid: run.pid,
        resultText: run.result_text ?? summary?.resultText ?? null,
        isError: summary?.isError ?? null,
        numTurns: summary?.numTurns ?? null,
        tokensIn: run.tokens_in ?? summary?.tokensIn ?? null,
        tokensOut: run.tokens_out ?? summary?.tokensOut ?? null,
        cost: run.cost_usd ?? summary?.costUsd ?? null,
      },
      hasFile: file !== null,
      entries: entries.map(entryView),
      skippedBytes: chunk?.skipped ?? 0,
      totalBytes: chunk?.size ?? 0,
      offset: chunk?.end ?? 0,
      live,
      self: `/runs/${run.id}`,
    });
  });

  r.get('/runs/:id/events', (req, res) => {
    const run = requireRun(db, req.params.id);
    let offset = startOffset(req);
    const stream = streams.start(req, res);
    if (!stream) return;
    let busy = false;
    const tick = async () => {
      if (busy || stream.closed) return;
      busy = true;
      try {
        const current = requireRun(db, run.id);
        const ended = !LIVE_STATUSES.includes(current.status);
        const file = transcriptFile(ctx.paths.runs, current);
        if (file) {
          const chunk = await readTranscriptChunk(file, offset, TRANSCRIPT_WINDOW, ended);
          if (chunk.end !== offset || chunk.text) {
            const html = await Promise.all(
              parseTranscript(chunk.text, current.cli).map((e) => renderView(req, 'runs/entry.njk', { entry: entryView(e) })),
            );
            offset = chunk.end;
            stream.send('entries', { html: html.join(''), skipped: chunk.skipped }, offset);
          }
        }
        if (ended) {
          stream.send('end', { status: current.status });
          stream.close();
        }
      } catch (err) {
        stream.send('failure', { message: (err as Error).message });
        stream.close();
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void tick(), POLL_MS);
    stream.onClose(() => clearInterval(timer));
    void tick();
  });

  r.post('/runs/:id/kill', async (req, res) => {
    const run = requireRun(db, req.params.id);
    const values = formValues(req);
    const back = returnPath(values, `/runs/${run.id}`);
    if (LIVE_STATUSES.includes(run.status) && !confirmed(values)) {
      renderConfirm(res, {
        question: `Kill run ${run.id}?`,
        details: [
          `The ${run.agent_type_id} agent working on ${run.ticket_key} (${run.ticket_title}) is stopped with its whole process tree,` +
            ' and the ticket is parked in Human.',
        ],
        action: `/runs/${run.id}/kill`,
        fields: { return_to: back },
        confirmLabel: 'Kill the run',
        cancel: back,
        section: 'runs',
      });
      return;
    }
    const killed = LIVE_STATUSES.includes(run.status) ? await ctx.engine.killRun(run.id) : false;
    res.redirect(303, withNotice(back, killed ? 'killed' : 'not-running'));
  });

  return r;
}

function startOffset(req: Request): number {
  const raw = req.headers['last-event-id'] ?? req.query.offset ?? '0';
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new UserError('offset must be a byte offset', 'offset');
  return n;
}

function renderView(req: Request, view: string, locals: object): Promise<string> {
  return new Promise((resolve, reject) => req.app.render(view, locals, (err, html) => (err ? reject(err) : resolve(html))));
}

function runRow(run: RunListItem) {
  const start = run.started_at ?? run.created_at;
  return {
    id: run.id,
    ticketKey: run.ticket_key,
    ticketTitle: run.ticket_title,
    agent: run.agent_type_id,
    model: run.model,
    column: run.column_id,
    status: run.status,
    cause: run.cause,
    live: LIVE_STATUSES.includes(run.status),
    attempt: run.attempt,
    startedAt: start,
    durationMs: run.started_at ? (run.ended_at ?? Date.now()) - run.started_at : null,
    tokensIn: run.tokens_in,
    tokensOut: run.tokens_out,
    cost: run.cost_usd,
  };
}

function clip(text: string): { text: string; clipped: number } {
  return text.length > ENTRY_CHARS ? { text: text.slice(0, ENTRY_CHARS), clipped: text.length - ENTRY_CHARS } : { text, clipped: 0 };
}

function entryView(e: TranscriptEntry) {
  switch (e.kind) {
    case 'text':
    case 'thinking':
    case 'raw':
      return { kind: e.kind, ...clip(e.text) };
    case 'tool_use':
      return { kind: e.kind, name: e.name, id: e.id, call: callView(e.call), ...clip(e.input) };
    case 'tool_result':
      return { kind: e.kind, isError: e.isError, id: e.toolUseId, ...fold(clip(e.content)) };
    case 'retry':
      return { kind: e.kind, attempt: e.attempt, maxRetries: e.maxRetries, text: e.error, clipped: 0 };
    case 'init':
      return {
        kind: e.kind,
        model: e.model,
        cwd: e.cwd,
        permissionMode: e.permissionMode,
        toolCount: e.tools.length,
        text: '',
        clipped: 0,
      };
    case 'result':
      return { kind: e.kind, ...clip(e.summary.resultText), summary: e.summary };
  }
}

/** A long result as its first lines and the rest (shown under "show all"). */
function fold(c: { text: string; clipped: number }) {
  const lines = c.text.replace(/\n$/, '').split('\n');
  if (lines.length <= RESULT_LINES) return { ...c, rest: '', lineCount: lines.length };
  const text = lines.slice(0, RESULT_PREVIEW_LINES).join('\n');
  return { text, rest: lines.slice(RESULT_PREVIEW_LINES).join('\n'), lineCount: lines.length, clipped: c.clipped };
}

const DIFF_CLASS: Record<DiffLine['op'], string> = { '+': 'dl-add', '-': 'dl-del', ' ': 'dl-ctx' };

function callView(call: ToolCall) {
  switch (call.kind) {
    case 'command':
      return { kind: call.kind, description: call.description, ...clip(call.command) };
    case 'edit': {
      const lines: { cls: string; text: string }[] = [];
      call.hunks.forEach((hunk, i) => {
        if (call.hunks.length > 1) lines.push({ cls: 'dl-hunk', text: `@@ edit ${i + 1} of ${call.hunks.length} @@` });
        for (const l of hunk) {
          const text = l.text.length > ENTRY_CHARS ? `${l.text.slice(0, ENTRY_CHARS)}…` : l.text;
          lines.push({ cls: DIFF_CLASS[l.op], text: `${l.op} ${text}` });
        }
      });
      const hiddenLines = Math.max(0, lines.length - DIFF_LINES);
      return { kind: call.kind, path: call.path, note: call.note, lines: lines.slice(0, DIFF_LINES), hiddenLines };
    }
    case 'target':
      return { kind: call.kind, ...clip(call.text) };
    case 'input':
      return { kind: call.kind };
  }
}
