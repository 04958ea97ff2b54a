// /queues (the inspector: counts per queue and state, the pools' health, the agents running now
// with a kill button, recent attempts, and the job list filtered by queue and state) and
// /queues/jobs/<id> (a job's data and every attempt). Completed jobs are deleted by both queue
// backends, so a job page is built from its job_events when the job is gone. Lists are paginated
// and never load more than a page; the only counts are the backend's counts per queue and state.
import { listRunners } from '../../../lib/runners.js';
import { Router, type Request, type Response } from 'express';
import {
  JOB_ID,
  JOB_STATUS,
  JOB_STATUSES,
  jobEvents,
  lastJobErrors,
  PAYLOADS,
  QUEUE_NAMES,
  recentJobEvents,
  type JobEvent,
  type JobRow,
  type QueueName,
} from '../../../lib/queue/index.js';
import { requireRun } from '../../../lib/runs.js';
import { findTicket } from '../../../lib/tickets.js';
import { findProject } from '../../../lib/projects.js';
import { NotFoundError, UserError } from '../../../lib/errors.js';
import { formValues, pageNumber, returnPath, submit, withNotice, type FormError } from './form.js';
import type { AppContext } from '../../context.js';

const PAGE_SIZE = 50;
const RECENT_EVENTS = 15;
/** Longest payload or error text shown in the list; the job page shows up to DETAIL_CHARS. */
const LIST_CHARS = 600;
const DETAIL_CHARS = 20_000;

export function queuePages(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  const backend = () => ctx.engine.queue;

  r.get('/queues', async (req, res) => {
    const queue = filterValue(req, 'queue', QUEUE_NAMES);
    const state = filterValue(req, 'state', JOB_STATUSES);
    const page = pageNumber(req.query.page);
    const rows = await backend().list({ queue, status: state, limit: PAGE_SIZE + 1, offset: (page - 1) * PAGE_SIZE });
    const shown = rows.slice(0, PAGE_SIZE);
    const errors = lastJobErrors(
      db,
      shown.map((j) => j.id),
    );
    const base = `/queues?${queue ? `queue=${queue}&` : ''}${state ? `state=${state}&` : ''}`;
    const self = page > 1 ? `${base}page=${page}` : base.slice(0, -1);
    const health = ctx.engine.health();
    res.render('queues/index.njk', {
      title: 'Queues',
      section: 'queues',
      counts: (await backend().counts()).map((c) => ({
        ...c,
        states: JOB_STATUSES.map((s) => ({ state: s, n: c[s], href: `/queues?queue=${c.queue}&state=${s}` })),
      })),
      states: JOB_STATUSES,
      queues: QUEUE_NAMES,
      pools: health.pools,
      schedulerError: health.scheduler_error,
      housekeeping: ctx.engine.housekeeping(),
      agents: activeAgents(ctx),
      runners: listRunners(db),
      recent: recentJobEvents(db, RECENT_EVENTS).map(eventView),
      jobs: shown.map((j) => jobView(j, errors.get(j.id) ?? null, LIST_CHARS)),
      queue: queue ?? '',
      state: state ?? '',
      page,
      prev: page > 1 ? `${base}page=${page - 1}` : null,
      next: rows.length > PAGE_SIZE ? `${base}page=${page + 1}` : null,
      self,
    });
  });

  async function renderJob(res: Response, id: string, error: FormError | null = null): Promise<void> {
    const job = await backend().get(id);
    const events = jobEvents(db, id);
    if (!job && events.length === 0) throw new NotFoundError('job', id);
    const first = events[0];
    const queue = job?.queue ?? (first!.queue as QueueName);
    const payload = job?.payload ?? events[events.length - 1]!.payload;
    res.render('queues/job.njk', {
      title: `Job ${id}`,
      section: 'queues',
      id,
      queue,
      job: job ? jobView(job, null, DETAIL_CHARS) : null,
      outcome: job ? null : events[events.length - 1]!.outcome,
      payload: clip(pretty(payload), DETAIL_CHARS),
      subject: subjectLink(ctx, queue, payload),
      events: events.map(eventView),
      error,
      self: `/queues/jobs/${id}`,
    });
  }

  r.get('/queues/jobs/:id', (req, res) => renderJob(res, jobId(req.params.id)));

  r.post('/queues/jobs/:id/retry', async (req, res) => {
    const id = await existingJob(ctx, req.params.id);
    const values = formValues(req);
    await submit(
      res,
      async () => {
        if (!(await backend().retry(id))) throw new UserError(`job ${id} is not a failed job, so there is nothing to retry`, 'id');
        const job = await backend().get(id);
        if (job) ctx.engine.pokeQueue(job.queue);
        return withNotice(returnPath(values, `/queues/jobs/${id}`), 'retried');
      },
      (error) => renderJob(res, id, error),
    );
  });

  r.post('/queues/jobs/:id/delete', async (req, res) => {
    const id = await existingJob(ctx, req.params.id);
    const values = formValues(req);
    await submit(
      res,
      async () => {
        if (!(await backend().remove(id))) {
          throw new UserError(
            `job ${id} cannot be deleted: only pending and failed jobs can, and it is ${(await backend().get(id))?.status ?? 'no longer queued'}`,
            'id',
          );
        }
        // the job's own page may no longer exist after a delete, so a request to go back there lands on the list
        const back = returnPath(values, '/queues');
        return withNotice(back.startsWith(`/queues/jobs/${id}`) ? '/queues' : back, 'deleted');
      },
      (error) => renderJob(res, id, error),
    );
  });

  return r;
}

/** Mirrors the JSON API's validation: a job id as the list shows it, or a 400 that says so. */
function jobId(raw: string): string {
  if (!JOB_ID.test(raw)) throw new UserError('job id must be a job id as listed on this page', 'id');
  return raw;
}

/** A job id that names a queued job or one with recorded attempts (404 otherwise). */
async function existingJob(ctx: AppContext, raw: string): Promise<string> {
  const id = jobId(raw);
  if (!(await ctx.engine.queue.get(id)) && jobEvents(ctx.store.db, id).length === 0) throw new NotFoundError('job', id);
  return id;
}

function filterValue<T extends string>(req: Request, name: string, allowed: readonly T[]): T | undefined {
  const v = req.query[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !allowed.includes(v as T)) throw new UserError(`${name} must be one of ${allowed.join(', ')}`, name);
  return v as T;
}

function activeAgents(ctx: AppContext) {
  const now = Date.now();
  const runnerNames = new Map(listRunners(ctx.store.db).map((w) => [w.id, w.name]));
  return ctx.engine.activeRuns().flatMap((a) => {
    let run;
    try {
      run = requireRun(ctx.store.db, a.id);
    } catch (err) {
      // the run row went away between the engine's answer and this read: nothing to show or kill
      if (err instanceof NotFoundError) return [];
      throw err;
    }
    return [
      {
        id: a.id,
        pid: a.pid,
        agent: a.agent_type_id,
        ticketKey: run.ticket_key,
        ticketTitle: run.ticket_title,
        runner: run.runner_id === null ? null : (runnerNames.get(run.runner_id) ?? String(run.runner_id)),
        startedAt: a.started_at,
        elapsedMs: a.started_at ? now - a.started_at : null,
      },
    ];
  });
}

function jobView(job: JobRow, lastError: string | null, chars: number) {
  return {
    id: job.id,
    queue: job.queue,
    state: job.status,
    attempts: job.attempts,
    maxRuns: job.max_runs,
    createdAt: job.created_at,
    // only a waiting job has a meaningful "available at"; liteque leaves stale values on the others
    waiting: job.status === JOB_STATUS.pending || job.status === JOB_STATUS.pendingRetry,
    availableAt: job.available_at,
    leaseUntil: job.status === JOB_STATUS.running ? job.expire_at : null,
    key: job.idempotency_key,
    payload: clip(pretty(job.payload), chars),
    lastError: lastError === null ? null : clip(lastError, chars),
    retryable: job.status === JOB_STATUS.failed,
    deletable: job.status !== JOB_STATUS.running,
  };
}

function eventView(e: JobEvent) {
  return {
    jobId: e.job_id,
    queue: e.queue,
    attempt: e.attempt,
    outcome: e.outcome,
    error: e.error === null ? null : clip(e.error, DETAIL_CHARS),
    startedAt: e.started_at,
    endedAt: e.ended_at,
    durationMs: e.ended_at === null ? null : e.ended_at - e.started_at,
  };
}

/** Payloads are stored as JSON text; shown indented when they parse, as stored when they do not. */
function pretty(payload: string): string {
  try {
    return JSON.stringify(JSON.parse(payload), null, 2);
  } catch {
    return payload;
  }
}

function clip(text: string, chars: number): { text: string; clipped: number } {
  return text.length > chars ? { text: text.slice(0, chars), clipped: text.length - chars } : { text, clipped: 0 };
}

/** What the job is about, as a link: the project it scans, the run it delivers, the ticket it merges. */
function subjectLink(ctx: AppContext, queue: QueueName, payload: string): { href: string; label: string } | null {
  let data: unknown;
  try {
    data = JSON.parse(payload);
  } catch {
    return null;
  }
  const db = ctx.store.db;
  if (queue === 'scan') {
    const p = PAYLOADS.scan.safeParse(data);
    const project = p.success ? findProject(db, p.data.projectId) : undefined;
    return project?.abbreviation ? { href: `/projects/${project.abbreviation}`, label: `project ${project.name}` } : null;
  }
  if (queue === 'agent-run') {
    const p = PAYLOADS['agent-run'].safeParse(data);
    if (!p.success) return null;
    try {
      return { href: `/runs/${requireRun(db, p.data.runId).id}`, label: `run ${p.data.runId}` };
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
  }
  const p = PAYLOADS.merge.safeParse(data);
  const ticket = p.success ? findTicket(db, p.data.ticketId) : undefined;
  return ticket
    ? { href: `/tickets/${ticket.abbreviation}-${ticket.number}`, label: `ticket ${ticket.abbreviation}-${ticket.number}` }
    : null;
}
