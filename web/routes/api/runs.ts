// /api/runs and /api/queues: agent runs with their transcripts, and the durable queues.
import { RUN_CAUSES, type RunCause } from '../../../lib/runCause.js';
import { Router } from 'express';
import { getRun, listRuns, LIVE_STATUSES, requireRun, RUN_STATUS, transcriptFile, type RunStatus } from '../../../lib/runs.js';
import { readTranscriptChunk } from '../../../lib/transcript.js';
import { JOB_ID, JOB_STATUSES, jobEvents, QUEUE_NAMES, recentJobEvents, type JobStatus, type QueueName } from '../../../lib/queue/index.js';
import { findTicket } from '../../../lib/tickets.js';
import { NotFoundError, UserError } from '../../../lib/errors.js';
import { queryInt } from '../../http.js';
import type { AppContext } from '../../context.js';

const TRANSCRIPT_CHUNK = 1024 * 1024;

export function runsApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;

  r.get('/', (req, res) => {
    const status = req.query.status;
    if (status !== undefined && !Object.values(RUN_STATUS).includes(status as RunStatus))
      throw new UserError(`status must be one of ${Object.values(RUN_STATUS).join(', ')}`, 'status');
    let ticketId: number | undefined;
    if (typeof req.query.ticket === 'string') {
      const ticket = findTicket(db, req.query.ticket);
      if (!ticket) throw new NotFoundError('ticket', req.query.ticket);
      ticketId = ticket.id;
    }
    const cause = req.query.cause;
    if (cause !== undefined && (typeof cause !== 'string' || !RUN_CAUSES.includes(cause as RunCause)))
      throw new UserError(`cause must be one of ${RUN_CAUSES.join(', ')}`, 'cause');
    res.json({
      runs: listRuns(db, {
        ticketId,
        status: status as RunStatus | undefined,
        cause: cause as RunCause | undefined,
        limit: queryInt(req.query.limit, 'limit', 50, 500),
        offset: queryInt(req.query.offset, 'offset', 0, 1_000_000_000),
      }),
    });
  });

  r.get('/active', (_req, res) => res.json({ runs: ctx.engine.activeRuns() }));

  r.get('/:id', (req, res) => res.json({ run: requireRun(db, req.params.id) }));

  /** Complete transcript lines from a byte offset, for `dispatch runs tail` and live pages. */
  r.get('/:id/transcript', async (req, res) => {
    const run = requireRun(db, req.params.id);
    const offset = queryInt(req.query.offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    // the path comes from the runs table and must lie inside the runs folder, never from the request
    const file = transcriptFile(ctx.paths.runs, run);
    const live = LIVE_STATUSES.includes(run.status);
    const chunk = file ? await readTranscriptChunk(file, offset, TRANSCRIPT_CHUNK, !live) : { text: '', end: offset, skipped: 0 };
    res.json({
      run_id: run.id,
      status: run.status,
      cli: run.cli,
      text: chunk.text,
      next_offset: chunk.end,
      skipped: chunk.skipped,
      done: !live,
    });
  });

  r.post('/:id/kill', async (req, res) => {
    const run = requireRun(db, req.params.id);
    const killed = await ctx.engine.killRun(run.id);
    if (!killed) throw new UserError(`run ${run.id} is not running (${getRun(db, run.id)!.status})`, 'id');
    res.json({ ok: true, run: getRun(db, run.id) });
  });
  return r;
}

export function queuesApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  const backend = () => ctx.engine.queue;
  const jobId = (raw: string) => {
    if (!JOB_ID.test(raw)) throw new UserError('job id must be a job id as listed by /api/queues/jobs', 'id');
    return raw;
  };

  r.get('/', async (_req, res) =>
    res.json({ queues: await backend().counts(), recent: recentJobEvents(db, 20), engine: ctx.engine.health() }),
  );

  r.get('/jobs', async (req, res) => {
    const { queue, status } = req.query;
    if (queue !== undefined && !QUEUE_NAMES.includes(queue as QueueName))
      throw new UserError(`queue must be one of ${QUEUE_NAMES.join(', ')}`, 'queue');
    if (status !== undefined && !JOB_STATUSES.includes(status as JobStatus))
      throw new UserError(`status must be one of ${JOB_STATUSES.join(', ')}`, 'status');
    res.json({
      jobs: await backend().list({
        queue: queue as QueueName | undefined,
        status: status as JobStatus | undefined,
        limit: queryInt(req.query.limit, 'limit', 50, 500),
        offset: queryInt(req.query.offset, 'offset', 0, 1_000_000_000),
      }),
    });
  });

  r.get('/jobs/:id', async (req, res) => {
    const id = jobId(req.params.id);
    const job = await backend().get(id);
    const events = jobEvents(db, id);
    if (!job && events.length === 0) throw new NotFoundError('job', id);
    res.json({ job: job ?? null, events });
  });

  r.post('/jobs/:id/retry', async (req, res) => {
    const id = jobId(req.params.id);
    if (!(await backend().retry(id))) throw new UserError(`job ${id} is not a failed job`, 'id');
    const job = await backend().get(id);
    if (job) ctx.engine.pokeQueue(job.queue);
    res.json({ ok: true, job: job ?? null });
  });

  r.post('/jobs/:id/delete', async (req, res) => {
    const id = jobId(req.params.id);
    if (!(await backend().remove(id))) throw new UserError(`job ${id} cannot be deleted: it is running or gone`, 'id');
    res.json({ ok: true });
  });
  return r;
}
