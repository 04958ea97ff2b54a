// The runner's side of the daemon's runner API (docs/RUNNERS.md): every call is a JSON POST under
// the runner token. A call either gets an answer (any HTTP status, returned as it is) or fails
// with Unreachable (no connection, a reset, no answer in time): the runner keeps working and
// tries again, since the daemon being away must never cost an agent's work.

/** One run the daemon hands a runner (the `RunSpec` of docs/RUNNERS.md). */
export interface RunSpec {
  run_id: string;
  ticket_key: string;
  branch: string;
  project: { abbreviation: string; name: string; remote_url: string; main_branch: string | null };
  cli: string;
  agent: { id: string; model: string; permission_mode: string; allowed_tools: string[]; prompt: string; task: string };
  env: Record<string, string>;
  run_secret: string;
  timeout_minutes: number;
}

export interface Hello {
  name: string;
  lease_ms: number;
  beat_ms: number;
}

/** A piece of a run's transcript: `data` starts at byte `offset` of the transcript file. */
export interface TranscriptPiece {
  offset: number;
  data: string;
}

export interface EndReport {
  exit_code: number | null;
  signal: string | null;
  push: { ok: boolean; error?: string };
}

export interface Answer<T> {
  status: number;
  body: T | null;
}

/** The daemon could not be reached, or did not answer in time. */
export class Unreachable extends Error {}

export class RunnerClient {
  private readonly base: string;

  constructor(
    daemonUrl: string,
    private readonly token: string,
  ) {
    this.base = daemonUrl.replace(/\/+$/, '');
  }

  async post<T>(urlPath: string, body: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Answer<T>> {
    const signals = [AbortSignal.timeout(opts.timeoutMs ?? 30_000), ...(opts.signal ? [opts.signal] : [])];
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.base + urlPath, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
        body: JSON.stringify(body),
        signal: AbortSignal.any(signals),
      });
      text = await res.text();
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Unreachable(cause?.code ?? cause?.message ?? (err as Error).message);
    }
    let parsed: T | null = null;
    try {
      parsed = text ? (JSON.parse(text) as T) : null;
    } catch {
      // not JSON (a proxy's error page): the status says enough
    }
    return { status: res.status, body: parsed };
  }

  hello(body: { slots: number; host: string; version: string }): Promise<Answer<Hello>> {
    return this.post('/api/runner/hello', body);
  }

  /** Long poll: the daemon answers within about 20 s, with a run or 204. */
  claim(free: number, signal?: AbortSignal): Promise<Answer<{ run: RunSpec }>> {
    return this.post('/api/runner/claim', { free }, { timeoutMs: 60_000, signal });
  }

  beat(runId: string, body: { pid?: number; transcript?: TranscriptPiece }): Promise<Answer<{ stop: null | { why: string } }>> {
    return this.post(`/api/runner/runs/${encodeURIComponent(runId)}/beat`, body);
  }

  end(runId: string, body: EndReport & { transcript?: TranscriptPiece }): Promise<Answer<{ status: string }>> {
    return this.post(`/api/runner/runs/${encodeURIComponent(runId)}/end`, body, { timeoutMs: 120_000 });
  }
}
