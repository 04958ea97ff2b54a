// Server-sent event streams, the one way the daemon pushes to open pages: a run's live transcript
// (/runs/<id>/events) and the ticket changes of the live board, inbox and ticket pages (/events).
// Both go through the guards of every other route (Host, api_token) and share this: the headers,
// the reconnect delay, keepalive comments, clean-up when the client goes away, and one cap on how
// many streams the daemon holds open at once (each is a socket and, while listening, a poll).
import type { Request, Response } from 'express';

/** Open streams at most; one more is answered 503 (a browser holds at most 6 per host anyway, per profile). */
export const MAX_STREAMS = 32;
const KEEPALIVE_MS = 15_000;
const RETRY_MS = 2000;

export interface EventStream {
  /** Sends one event; `data` is JSON, so it never spans lines. Nothing happens once closed. */
  send(event: string, data: unknown, id?: number): void;
  /** Ends the stream (the client reconnects after the retry delay unless told otherwise). */
  close(): void;
  readonly closed: boolean;
  /** Called once when the stream ends, whoever ended it. */
  onClose(fn: () => void): void;
}

export class EventStreams {
  private open = 0;
  constructor(private readonly max = MAX_STREAMS) {}

  get count(): number {
    return this.open;
  }

  /** Starts an event stream on `res`; when `max` are open already, answers 503 and returns null. */
  start(req: Request, res: Response): EventStream | null {
    if (this.open >= this.max) {
      res
        .status(503)
        .set('Retry-After', '10')
        .json({ error: `too many live pages open (at most ${this.max}); close some and reload` });
      return null;
    }
    this.open++;
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    res.write(`retry: ${RETRY_MS}\n\n`);
    let closed = false;
    let lastWrite = Date.now();
    const listeners: (() => void)[] = [];
    const write = (text: string) => {
      if (closed) return;
      res.write(text);
      lastWrite = Date.now();
    };
    const keepalive = setInterval(() => {
      if (Date.now() - lastWrite >= KEEPALIVE_MS) write(': keepalive\n\n');
    }, KEEPALIVE_MS / 3);
    keepalive.unref();
    const close = () => {
      if (closed) return;
      closed = true;
      this.open--;
      clearInterval(keepalive);
      res.end();
      for (const fn of listeners.splice(0)) fn();
    };
    req.on('close', close);
    res.on('error', close);
    return {
      send: (event, data, id) => write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
      close,
      get closed() {
        return closed;
      },
      onClose: (fn) => {
        if (closed) fn();
        else listeners.push(fn);
      },
    };
  }
}
