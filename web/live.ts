// GET /events: what open pages learn from the daemon, one stream per page: the ticket changes the
// live pages (board, inbox, ticket) apply in place (moves, new tickets, claims, run ends), the inbox
// badge count every page's header, tab title and favicon show, and new notifications for the
// browser's pop-ups (web/public/notify.js), whichever process made them (lib/live.ts says how they
// are found). One poll for every open page, and only while one is open: every POLL_MS it reads one
// statement that changes with them (changeMark) and, when it did, the history after the last row
// seen, the set of running tickets and the notifications after the last one seen, and sends each
// changed ticket once, with the badge count. A page says from which history row it was rendered
// (?since=, or Last-Event-ID when the browser reconnects) and first gets what changed since then plus
// the tickets running now; more than CATCH_UP_ROWS rows behind, it is told to reload. Notifications
// are not caught up: a page pops up those recorded while it listens, none of a muted project, and
// none while the browser channel is off or in the quiet hours.
import { Router, type Request } from 'express';
import type { Db } from '../lib/db/connection.js';
import { UserError } from '../lib/errors.js';
import { changeMark, historyAfter, historyCursor, liveTickets, runningClaims, type LiveTicket } from '../lib/live.js';
import { browserPopUps, notificationCursor, notificationsAfter, type BrowserNotification } from '../lib/notifications.js';
import { inboxCount } from '../lib/tickets.js';
import type { ConfigStore } from '../lib/config.js';
import type { EventStream, EventStreams } from './sse.js';
import type { AppContext } from './context.js';

/** How often the history is read while a page listens; a move reaches a page within about this (BENCHMARKS.md). */
const POLL_MS = 100;
/** History rows read per poll; a larger burst (a bulk move) goes out over the next polls. */
const ROWS_PER_POLL = 1000;
const CATCH_UP_ROWS = 2000;
/** Tickets per event, so one burst is several small messages. */
const TICKETS_PER_EVENT = 200;
/** Notifications read per poll; the rest of a burst goes out over the next polls. */
const NOTIFICATIONS_PER_POLL = 50;

/** What every event carries besides its tickets: the header badge (the inbox's `needs` count). */
interface Counts {
  inbox: number;
}

export class LiveFeed {
  private readonly clients = new Set<EventStream>();
  private timer: NodeJS.Timeout | null = null;
  private cursor = 0;
  private running = new Map<number, string>();
  private mark = '';
  private lastError = '';
  /** the last notification read: the next are sent on */
  private notified = 0;

  constructor(
    private readonly db: Db,
    private readonly config: ConfigStore,
  ) {}

  /** Adds a page's stream: first what changed since `since` (null: nothing to catch up), then every change. */
  attach(stream: EventStream, since: number | null): void {
    const db = this.db;
    if (this.clients.size === 0) {
      // the mark first: a change committed after it is read again by the next poll
      this.mark = changeMark(db);
      this.cursor = historyCursor(db);
      this.running = runningClaims(db);
      this.notified = notificationCursor(db);
    }
    const catchUp = db.transaction(() => {
      // a history this database does not have (a restored backup); read afresh: the poll's cursor may lag a page just rendered
      if (since !== null && since > historyCursor(db)) return null;
      const behind = since === null ? { tickets: [], more: false } : historyAfter(db, since, CATCH_UP_ROWS);
      if (behind.more) return null;
      const tickets = liveTickets(db, [...new Set([...behind.tickets, ...runningClaims(db).keys()])]);
      // every running ticket is in the list: a page clears the marker of any other
      return { tickets, running: tickets.filter((t) => t.running).map((t) => t.key), counts: counts(db) };
    })();
    if (catchUp === null) stream.send('reset', {}, this.cursor);
    else stream.send('sync', catchUp, this.cursor);
    this.clients.add(stream);
    stream.onClose(() => {
      this.clients.delete(stream);
      if (this.clients.size === 0) this.stop();
    });
    this.timer ??= setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private poll(): void {
    const db = this.db;
    if (!db.open) {
      // the daemon is stopping: its pages reconnect to the next one
      for (const c of [...this.clients]) c.close();
      return;
    }
    let batch: { tickets: LiveTicket[]; counts: Counts } | null;
    let notes: BrowserNotification[] = [];
    let more = false;
    let mark: string;
    try {
      mark = changeMark(db);
      if (mark === this.mark) return;
      batch = db.transaction(() => {
        const history = historyAfter(db, this.cursor, ROWS_PER_POLL);
        more = history.more;
        const running = runningClaims(db);
        const changed = new Set(history.tickets);
        for (const [id, run] of running) if (this.running.get(id) !== run) changed.add(id);
        for (const id of this.running.keys()) if (!running.has(id)) changed.add(id);
        this.cursor = history.cursor;
        this.running = running;
        return changed.size ? { tickets: liveTickets(db, [...changed]), counts: counts(db) } : null;
      })();
    } catch (err) {
      // a busy or failing disk: the next poll tries again, from the same place
      return this.failed(err);
    }
    try {
      // apart from the history's read: it fills in the words of new rows first (a write)
      const after = notificationsAfter(db, this.notified, NOTIFICATIONS_PER_POLL);
      this.notified = after.cursor;
      more ||= after.more;
      if (browserPopUps(this.config.get().notifications)) notes = after.notifications;
      this.lastError = '';
    } catch (err) {
      // the tickets read go out; the notifications are read again by the next poll
      more = true;
      this.failed(err);
    }
    // only once all is read: after a failed read, or with rows left of a burst, the next poll reads on
    if (!more) this.mark = mark;
    for (let i = 0; batch && i < batch.tickets.length; i += TICKETS_PER_EVENT) {
      const data = { tickets: batch.tickets.slice(i, i + TICKETS_PER_EVENT), counts: batch.counts };
      for (const c of this.clients) c.send('tickets', data, this.cursor);
    }
    if (notes.length) for (const c of this.clients) c.send('notifications', { notifications: notes }, this.cursor);
  }

  /** Logs a failed read once, not every poll. */
  private failed(err: unknown): void {
    const message = (err as Error).message;
    if (message !== this.lastError) console.error(`[live] ${(this.lastError = message)}`);
  }
}

function counts(db: Db): Counts {
  return { inbox: inboxCount(db) };
}

/** The history row a page was rendered at: Last-Event-ID on a reconnect, else ?since=; none without either. */
function sinceOf(req: Request): number | null {
  const raw = req.headers['last-event-id'] ?? req.query.since;
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isSafeInteger(n) || n < 0) throw new UserError('since must be a history row id', 'since');
  return n;
}

export function liveEvents(ctx: AppContext, streams: EventStreams): Router {
  const r = Router();
  const feed = new LiveFeed(ctx.store.db, ctx.config);
  r.get('/events', (req, res) => {
    const since = sinceOf(req);
    const stream = streams.start(req, res);
    if (!stream) return;
    try {
      feed.attach(stream, since);
    } catch (err) {
      // the answer has begun: end the stream (freeing its place) and let the error be logged
      stream.close();
      throw err;
    }
  });
  return r;
}
