// The runner API (docs/RUNNERS.md): `/api/runner/*` for `dispatch runner` processes, each call with
// `Authorization: Bearer <runner token>`, and `/api/agent/ticket` for the agents they run, with their
// run's secret. These paths need no api_token and no loopback Host (web/security.ts), so every
// request here is checked for its token first, and every body is bounded. The daemon decides
// everything: which run a runner gets (its slots enforced), whether a run must stop, how it ended.
import { spawn } from 'node:child_process';
import express, { Router, type Request, type Response } from 'express';
import { authenticateRunner, MAX_RUNNER_SLOTS, recordHello, type Runner } from '../../../lib/runners.js';
import { isRemoteRunSecret } from '../../../lib/runs.js';
import { ticketBin } from '../../../lib/paths.js';
import { UserError } from '../../../lib/errors.js';
import { bodyObject } from '../../http.js';
import type { TranscriptPiece } from '../../../lib/runner/protocol.js';
import type { AppContext } from '../../context.js';

/** A transcript chunk may be large (one tool result); the rest of a body is small. */
const BODY_LIMIT = '8mb';
const MAX_ARGS = 8;
const MAX_ARG_CHARS = 300_000;
const MAX_STDIN_CHARS = 1024 * 1024;
/** The most ticket tool processes at once, and waiting for a turn; more is refused with 503. */
const TICKET_CONCURRENCY = 4;
const TICKET_QUEUE = 64;
const TICKET_TIMEOUT_MS = 60_000;
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

function bearer(req: Request): string {
  return /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
}

function refuse(res: Response, status: number, error: string): void {
  res.status(status).json({ error });
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new UserError(`${field} must be a whole number from ${min} to ${max}`, field);
  }
  return v;
}

function optionalText(v: unknown, field: string, max: number): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length > max) throw new UserError(`${field} must be a string of at most ${max} characters`, field);
  return v;
}

function transcriptChunk(v: unknown): TranscriptPiece | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new UserError('transcript must be { offset, data }', 'transcript');
  const t = v as Record<string, unknown>;
  const offset = int(t.offset, 'transcript.offset', 0, Number.MAX_SAFE_INTEGER);
  if (typeof t.data !== 'string') throw new UserError('transcript.data must be a string', 'transcript.data');
  return { offset, data: t.data };
}

export function runnerApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  r.use(express.json({ limit: BODY_LIMIT }));
  r.use((req, res, next) => {
    const runner = authenticateRunner(db, bearer(req));
    if (!runner) return refuse(res, 401, 'missing, wrong or revoked runner token');
    res.locals.runner = runner;
    next();
  });
  const runnerOf = (res: Response) => res.locals.runner as Runner;
  const lease = () => ctx.config.get().runners.lease_seconds * 1000;

  r.post('/hello', (req, res) => {
    const body = bodyObject(req);
    const runner = runnerOf(res);
    const slots = body.slots === undefined ? runner.slots : int(body.slots, 'slots', 1, MAX_RUNNER_SLOTS);
    recordHello(db, runner.id, { host: optionalText(body.host, 'host', 200), version: optionalText(body.version, 'version', 100) });
    // the slots given at `dispatch runners add` are the most it gets, whatever it offers
    res.json({
      name: runner.name,
      lease_ms: lease(),
      beat_ms: Math.max(500, Math.floor(lease() / 3)),
      slots: Math.min(slots, runner.slots),
    });
  });

  r.post('/claim', async (req, res) => {
    const body = bodyObject(req);
    const free = int(body.free, 'free', 0, MAX_RUNNER_SLOTS);
    const waitMs = body.wait_seconds === undefined ? 20_000 : int(body.wait_seconds, 'wait_seconds', 0, 20) * 1000;
    let gone = false;
    res.on('close', () => (gone = true));
    const spec = free < 1 ? null : await ctx.engine.remote.claimRemote(runnerOf(res), { waitMs, aborted: () => gone });
    if (!spec) return void res.status(204).end();
    res.json({ run: spec });
  });

  r.post('/runs/:id/beat', (req, res) => {
    const body = bodyObject(req);
    const pid = body.pid === undefined || body.pid === null ? undefined : int(body.pid, 'pid', 1, 2 ** 31 - 1);
    res.json(ctx.engine.remote.beatRemote(runnerOf(res), String(req.params.id), { pid, transcript: transcriptChunk(body.transcript) }));
  });

  r.post('/runs/:id/end', async (req, res) => {
    const body = bodyObject(req);
    const exitCode = body.exit_code === undefined || body.exit_code === null ? null : int(body.exit_code, 'exit_code', -255, 255);
    const signal = optionalText(body.signal, 'signal', 20);
    const push = body.push as Record<string, unknown> | undefined;
    if (!push || typeof push !== 'object' || typeof push.ok !== 'boolean') throw new UserError('push must be { ok, error? }', 'push');
    const error = optionalText(push.error, 'push.error', 2000) ?? undefined;
    const ended = await ctx.engine.remote.endRemote(runnerOf(res), String(req.params.id), {
      exitCode,
      signal,
      push: { ok: push.ok, error },
      transcript: transcriptChunk(body.transcript),
    });
    if (!ended) return refuse(res, 503, 'the daemon is starting and does not drive this run yet; send the end again in a few seconds');
    res.json(ended);
  });
  return r;
}

/** Runs of the ticket tool in flight and waiting: bounded, so agents cannot crowd out the daemon. */
let running = 0;
const waiting: (() => void)[] = [];

async function withTicketSlot<T>(fn: () => Promise<T>): Promise<T | null> {
  if (running >= TICKET_CONCURRENCY) {
    if (waiting.length >= TICKET_QUEUE) return null;
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else running++;
  try {
    return await fn();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

/** Runs bin/ticket.cjs on this machine with the run's secret: every rule it applies applies to remote agents too. */
function runTicketTool(
  ctx: AppContext,
  secret: string,
  argv: string[],
  stdin: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: process.env.LANG,
    DISPATCH_RUN_SECRET: secret,
    DISPATCH_DB_PATH: ctx.paths.db,
    DISPATCH_PORT: String(ctx.engine.port()),
  };
  const token = ctx.config.get().api_token;
  if (token) env.DISPATCH_API_TOKEN = token;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ticketBin, ...argv], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: TICKET_TIMEOUT_MS });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const keep = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_OUTPUT_BYTES) into.push(chunk);
      else child.kill('SIGKILL');
    };
    child.stdout.on('data', keep(out));
    child.stderr.on('data', keep(err));
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: signal ? `${stderr}the ticket tool was stopped (${signal}): it ran too long or printed too much\n` : stderr,
      });
    });
  });
}

export function agentApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  r.use(express.json({ limit: '2mb' }));
  r.post('/ticket', async (req, res) => {
    const secret = bearer(req);
    // only runs on runners use this path; ticket.cjs itself decides what the run may do
    if (!isRemoteRunSecret(db, secret)) return refuse(res, 401, 'missing or wrong run secret');
    const body = bodyObject(req);
    const argv = body.argv;
    if (
      !Array.isArray(argv) ||
      argv.length === 0 ||
      argv.length > MAX_ARGS ||
      argv.some((a) => typeof a !== 'string' || a.length > MAX_ARG_CHARS)
    ) {
      throw new UserError(`argv must be a list of 1 to ${MAX_ARGS} strings of at most ${MAX_ARG_CHARS} characters`, 'argv');
    }
    const stdin = optionalText(body.stdin, 'stdin', MAX_STDIN_CHARS) ?? '';
    const result = await withTicketSlot(() => runTicketTool(ctx, secret, argv as string[], stdin));
    if (!result) return refuse(res, 503, 'too many ticket commands at once; try again in a moment');
    res.json(result);
  });
  return r;
}
