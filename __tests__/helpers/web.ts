// Drives the HTML pages of a running test daemon like a browser without JavaScript: GET a page,
// take its form token, POST urlencoded forms without following the redirect. Also inserts agent
// run rows and transcript files directly, the way the runtime records them.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { RunningDaemon } from './daemon.js';

export const sampleTranscript = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'claude-stream-sample.jsonl');

export interface Page {
  status: number;
  html: string;
  location: string | null;
}

export async function getPage(d: RunningDaemon, urlPath: string): Promise<Page> {
  const res = await fetch(d.url + urlPath, { headers: { accept: 'text/html' }, redirect: 'manual' });
  return { status: res.status, html: await res.text(), location: res.headers.get('location') };
}

export function csrfOf(html: string): string {
  const m = /<meta name="csrf-token" content="([^"]+)">/.exec(html);
  if (!m) throw new Error('no form token on the page');
  return m[1]!;
}

export async function postForm(
  d: RunningDaemon,
  urlPath: string,
  fields: Record<string, string | string[]>,
  headers: Record<string, string> = {},
): Promise<Page> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
  const res = await fetch(d.url + urlPath, {
    method: 'POST',
    body,
    redirect: 'manual',
    headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', ...headers },
  });
  return { status: res.status, html: await res.text(), location: res.headers.get('location') };
}

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** A raw request: the test sets every header exactly (fetch adds its own and follows redirects). */
export function rawRequest(
  d: RunningDaemon,
  method: string,
  urlPath: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<RawAnswer> {
  const options = {
    host: '127.0.0.1',
    port: d.port,
    method,
    path: urlPath,
    agent: false,
    headers: { host: `127.0.0.1:${d.port}`, ...headers },
  };
  return new Promise((resolve, reject) => {
    const req = http.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export type ApiAnswer = { status: number; body: any };

/** A JSON API call with `Authorization: Bearer <apiToken>`, as the CLI sends it to a daemon with `api_token`. */
export async function bearerApi(d: RunningDaemon, apiToken: string, method: string, urlPath: string, body?: unknown): Promise<ApiAnswer> {
  const headers: Record<string, string> = { authorization: `Bearer ${apiToken}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await rawRequest(d, method, urlPath, headers, body === undefined ? undefined : JSON.stringify(body));
  return { status: r.status, body: r.text ? JSON.parse(r.text) : null };
}

/** Logs in through the /login form of a daemon with `api_token`; the Cookie header value and the form token. */
export async function loginCookie(d: RunningDaemon, apiToken: string): Promise<{ cookie: string; csrf: string }> {
  const csrf = csrfOf((await rawRequest(d, 'GET', '/login', { accept: 'text/html' })).text);
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' };
  const r = await rawRequest(d, 'POST', '/login', headers, new URLSearchParams({ _csrf: csrf, token: apiToken }).toString());
  const set = r.headers['set-cookie']?.[0];
  if (r.status !== 303 || !set) throw new Error(`login failed: ${r.status} ${r.text.slice(0, 200)}`);
  return { cookie: set.split(';')[0]!, csrf };
}

/** The daemon's form token, read from any page. */
export async function token(d: RunningDaemon): Promise<string> {
  return csrfOf((await getPage(d, '/inbox')).html);
}

export interface RunRowInput {
  id: string;
  ticketKey: string;
  status: string;
  agent?: string;
  transcriptPath?: string | null;
  createdAt?: number;
  costUsd?: number | null;
  tokensIn?: number | null;
  tokensOut?: number | null;
}

export function openHomeDb(d: RunningDaemon): Database.Database {
  return new Database(path.join(d.home, 'tasks.db'));
}

/** Inserts a run row for a ticket (as the runtime does at spawn) and returns its transcript path. */
export function insertRun(d: RunningDaemon, run: RunRowInput): string | null {
  const db = openHomeDb(d);
  try {
    const [abbr, num] = run.ticketKey.split('-');
    const t = db
      .prepare(
        `SELECT t.id, t.project_id, t.column_id FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = ? AND t.number = ?`,
      )
      .get(abbr, Number(num)) as {
      id: number;
      project_id: number;
      column_id: string;
    };
    const now = run.createdAt ?? Date.now();
    const transcript = run.transcriptPath === undefined ? path.join(d.home, 'artifacts', 'runs', `${run.id}.log`) : run.transcriptPath;
    db.prepare(
      `INSERT INTO runs (id, ticket_id, project_id, agent_type_id, model, column_id, status, transcript_path, cost_usd, tokens_in, tokens_out, created_at, started_at, ended_at)
       VALUES (?, ?, ?, ?, 'sonnet', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      run.id,
      t.id,
      t.project_id,
      run.agent ?? 'coding-agent',
      t.column_id,
      run.status,
      transcript,
      run.costUsd ?? null,
      run.tokensIn ?? null,
      run.tokensOut ?? null,
      now,
      now,
      run.status === 'running' ? null : now + 757,
    );
    return transcript;
  } finally {
    db.close();
  }
}

export function setRunStatus(d: RunningDaemon, id: string, status: string): void {
  const db = openHomeDb(d);
  try {
    db.prepare(`UPDATE runs SET status = ?, ended_at = ? WHERE id = ?`).run(status, Date.now(), id);
  } finally {
    db.close();
  }
}

/** Writes a transcript file (whole text), creating the runs folder. */
export function writeTranscript(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

export interface JobInput {
  queue: 'scan' | 'agent-run' | 'merge';
  payload: unknown;
  status?: 'pending' | 'pending_retry' | 'running' | 'failed';
  /** attempts liteque may still make; with maxRuns this gives attempts made = maxRuns - runsLeft */
  runsLeft?: number;
  maxRuns?: number;
  /** a time far ahead keeps a pending job from being picked up */
  availableAt?: number;
}

/** Inserts a liteque job row as `enqueue` would (createdAt in seconds, availableAt in ms) and returns its id. */
export function insertJob(d: RunningDaemon, job: JobInput): number {
  const db = openHomeDb(d);
  try {
    const now = Date.now();
    const payload = typeof job.payload === 'string' ? job.payload : JSON.stringify(job.payload);
    return Number(
      db
        .prepare(
          `INSERT INTO tasks (queue, payload, createdAt, status, expireAt, allocationId, numRunsLeft, maxNumRuns, availableAt) VALUES (?, ?, ?, ?, ?, 'test', ?, ?, ?)`,
        )
        .run(
          job.queue,
          payload,
          Math.floor(now / 1000),
          job.status ?? 'pending',
          job.status === 'running' ? Math.floor(now / 1000) + 3600 : null,
          job.runsLeft ?? 1,
          job.maxRuns ?? 1,
          job.availableAt ?? now,
        ).lastInsertRowid,
    );
  } finally {
    db.close();
  }
}

/** Records an attempt of a job the way the pools do (job_events outlive completed jobs). */
export function insertJobEvent(
  d: RunningDaemon,
  e: { jobId: number; queue: string; attempt: number; outcome: string; error?: string | null; payload?: unknown },
): void {
  const db = openHomeDb(d);
  try {
    const now = Date.now();
    db.prepare(
      `INSERT INTO job_events (job_id, queue, attempt, outcome, payload, error, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      String(e.jobId),
      e.queue,
      e.attempt,
      e.outcome,
      JSON.stringify(e.payload ?? {}),
      e.error ?? null,
      now - 1500,
      e.outcome === 'running' ? null : now,
    );
  } finally {
    db.close();
  }
}

export function jobRow(d: RunningDaemon, id: number): { status: string; numRunsLeft: number; maxNumRuns: number } | undefined {
  const db = openHomeDb(d);
  try {
    return db.prepare(`SELECT status, numRunsLeft, maxNumRuns FROM tasks WHERE id = ?`).get(id) as
      { status: string; numRunsLeft: number; maxNumRuns: number } | undefined;
  } finally {
    db.close();
  }
}

export function jobEventRows(d: RunningDaemon, id: number): { attempt: number; outcome: string; error: string | null }[] {
  const db = openHomeDb(d);
  try {
    return db.prepare(`SELECT attempt, outcome, error FROM job_events WHERE job_id = ? ORDER BY id`).all(String(id)) as {
      attempt: number;
      outcome: string;
      error: string | null;
    }[];
  } finally {
    db.close();
  }
}

/**
 * Makes the scan pool look at its queue now. Jobs written straight into the table (as tests do)
 * are otherwise seen at the pool's slow safety poll: in the product only the daemon enqueues, and
 * it pokes its pools itself. A wake of a registered project does it: the scheduler enqueues that
 * project's scan and pokes the pool, which then takes every job that is due.
 */
export async function pokeScanPool(d: RunningDaemon): Promise<void> {
  const dir = path.join(d.projectsRoot, 'queue-poke');
  fs.mkdirSync(dir, { recursive: true });
  const existing = await d.api('GET', '/api/projects/qpoke');
  if (existing.status === 404) await d.api('POST', '/api/projects', { path: dir, type: 'personal', abbreviation: 'qpoke' });
  await d.api('POST', '/api/projects/qpoke/wake');
}

export interface StreamEvent {
  event: string;
  id: string | null;
  data: any;
}

export interface EventReader {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body of a refused request (not a stream). */
  text: string;
  /** Every event received so far, in order. */
  events: StreamEvent[];
  /** The first event not returned before that `match` accepts; waits up to `timeoutMs`. */
  next(match?: (e: StreamEvent) => boolean, timeoutMs?: number): Promise<StreamEvent>;
  close(): void;
}

/** Opens a server-sent event stream with exactly the given headers (as rawRequest) and parses its events as they arrive. */
export function openEventStream(d: RunningDaemon, urlPath: string, headers: Record<string, string> = {}): Promise<EventReader> {
  const options = {
    host: '127.0.0.1',
    port: d.port,
    method: 'GET',
    path: urlPath,
    agent: false,
    headers: { host: `127.0.0.1:${d.port}`, ...headers },
  };
  return new Promise((resolve, reject) => {
    const req = http.request(options, (res) => {
      const events: StreamEvent[] = [];
      let buffer = '';
      let seen = 0;
      let wake: (() => void) | null = null;
      const reader: EventReader = {
        status: res.statusCode!,
        headers: res.headers,
        text: '',
        events,
        async next(match = () => true, timeoutMs = 30_000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            while (seen < events.length) {
              const e = events[seen++]!;
              if (match(e)) return e;
            }
            if (res.complete || res.destroyed) throw new Error(`stream ended; events: ${JSON.stringify(events)}`);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`no matching event within ${timeoutMs} ms; events: ${JSON.stringify(events)}`);
            await new Promise<void>((r) => {
              const timer = setTimeout(r, left);
              wake = () => {
                clearTimeout(timer);
                r();
              };
            });
          }
        },
        close: () => req.destroy(),
      };
      res.setEncoding('utf8');
      if (!String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        res.on('data', (c: string) => (reader.text += c));
        res.on('end', () => resolve(reader));
        return;
      }
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const e: StreamEvent = { event: 'message', id: null, data: null };
          let data: string | null = null;
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('data: ')) data = line.slice(6);
          }
          if (data === null) continue; // a comment (keepalive) or the retry delay
          e.data = JSON.parse(data);
          events.push(e);
        }
        wake?.();
      });
      res.on('close', () => wake?.());
      res.on('error', () => wake?.()); // closed by the test
      resolve(reader);
    });
    req.on('error', reject);
    req.end();
  });
}
