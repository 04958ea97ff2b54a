// Notifications: telling the person that something needs them when no page is open. The record is
// the `notifications` table (migration 13): a trigger writes a row for every move into human by an
// agent or the daemon, whichever process writes it, and the daemon writes the rows of pauses it
// causes itself, each in the transaction of its cause. The daemon's notifier (createNotifier) then
// fills in each row's words from the committed ticket and queues one durable `notify` job per
// channel (webhook, desktop); open pages get the rows over their live event stream (web/live.ts).
// Delivery never touches the engine's pools: the notify queue has its own, every request and
// command has a timeout, and a failing endpoint is retried by the queue with a growing backoff.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from './errors.js';
import { getProject, type Project } from './projects.js';
import { jobKeys, type NotifyPayload, type QueueBackend } from './queue/index.js';
import type { Config, ConfigStore } from './config.js';
import type { Db } from './db/connection.js';
import type { Logger } from './logger.js';

/** How long a webhook request or a desktop command may take before the attempt counts as failed. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/** The longest text sent in a notification body. */
const MAX_BODY = 1000;

export type NotificationKind = 'inbox' | 'paused';
export type Channel = NotifyPayload['channel'];
type NotificationsConfig = Config['notifications'];

export interface NotificationRow {
  id: number;
  kind: NotificationKind;
  ticket_id: number | null;
  project_id: number | null;
  comment_id: number | null;
  author: string | null;
  dedupe_key: string | null;
  title: string | null;
  body: string | null;
  created_at: number;
  queued_at: number | null;
  outcome: string | null;
}

/** What every channel sends. */
export interface Message {
  kind: NotificationKind | 'test';
  title: string;
  text: string;
  ticket: string | null;
  project: string | null;
  /** the page to open, on the daemon's own address */
  path: string;
  created_at: number;
}

/** A notification the daemon causes itself; its dedupe key makes a repeat of the same event a no-op. */
export interface OwnNotification {
  kind: 'paused';
  title: string;
  body: string;
  dedupeKey: string;
  projectId?: number | null;
  at?: number;
}

/** Records a notification the daemon causes itself, inside the caller's transaction when there is one. */
export function recordNotification(db: Db, n: OwnNotification): void {
  db.prepare(
    `INSERT INTO notifications (kind, project_id, author, dedupe_key, title, body, created_at) VALUES (?, ?, 'system', ?, ?, ?, ?)
     ON CONFLICT(dedupe_key) DO NOTHING`,
  ).run(n.kind, n.projectId ?? null, n.dedupeKey, n.title, clip(n.body), n.at ?? Date.now());
}

function clip(text: string): string {
  return text.length > MAX_BODY ? `${text.slice(0, MAX_BODY - 1)}…` : text;
}

/** Who put a ticket in human, in words: an agent's type ("coding-agent"), "the merge" or "the daemon". */
export function whoParked(author: string | null): string {
  if (!author || author === 'system') return 'the daemon';
  if (author === 'merge') return 'the merge';
  return author.split(':')[0]!;
}

/**
 * Fills in the words of the rows that have none yet (inbox rows: the trigger knows only the ticket),
 * from the ticket as committed: its key and title, and the note that explains why it is in human
 * (the last question, give-up, merge or system note, or the move's own note), as the inbox shows it.
 */
export function fillPending(db: Db): void {
  const rows = db
    .prepare(`SELECT id, ticket_id, comment_id, author FROM notifications WHERE title IS NULL ORDER BY id LIMIT 200`)
    .all() as Pick<NotificationRow, 'id' | 'ticket_id' | 'comment_id' | 'author'>[];
  if (!rows.length) return;
  // the note of that stay in human: the last one up to the next move (a merge writes its note just after its move)
  const ticketOf = db.prepare(
    `SELECT t.number, t.title, p.abbreviation,
       (SELECT body FROM comments WHERE ticket_id = t.id AND type IN ('block', 'system', 'merge', 'move')
          AND (type != 'move' OR (body != '' AND from_column IS NOT NULL))
          AND id <= COALESCE((SELECT MIN(id) - 1 FROM comments WHERE ticket_id = t.id AND type = 'move' AND id > @comment), 9e18)
        ORDER BY id DESC LIMIT 1) AS note
     FROM tickets t JOIN projects p ON p.id = t.project_id WHERE t.id = @ticket`,
  );
  const set = db.prepare(`UPDATE notifications SET title = ?, body = ? WHERE id = ? AND title IS NULL`);
  db.transaction(() => {
    for (const r of rows) {
      const t = ticketOf.get({ ticket: r.ticket_id, comment: r.comment_id ?? 0 }) as
        { number: number; title: string; abbreviation: string | null; note: string | null } | undefined;
      if (!t) {
        set.run('A ticket needs you', '', r.id);
        continue;
      }
      const key = `${t.abbreviation}-${t.number}`;
      const note = (t.note ?? '').trim();
      set.run(`${key} needs you: ${t.title}`, clip(`${whoParked(r.author)}: ${note || 'moved it to human'}`), r.id);
    }
  }).immediate();
}

/** The message of a stored notification. */
export function messageOf(db: Db, row: NotificationRow): Message {
  const keyOf = db.prepare(`SELECT t.number, p.abbreviation FROM tickets t JOIN projects p ON p.id = t.project_id WHERE t.id = ?`);
  const t = row.ticket_id ? (keyOf.get(row.ticket_id) as { number: number; abbreviation: string | null } | undefined) : undefined;
  const ticket = t ? `${t.abbreviation}-${t.number}` : null;
  const p = row.project_id
    ? (db.prepare(`SELECT abbreviation FROM projects WHERE id = ?`).get(row.project_id) as { abbreviation: string | null } | undefined)
    : undefined;
  const project = p?.abbreviation ?? null;
  return {
    kind: row.kind,
    title: row.title ?? '',
    text: row.body ?? '',
    ticket,
    project,
    path: ticket ? `/tickets/${ticket}` : '/inbox',
    created_at: row.created_at,
  };
}

export function getNotification(db: Db, id: number): NotificationRow | undefined {
  return db.prepare(`SELECT * FROM notifications WHERE id = ?`).get(id) as NotificationRow | undefined;
}

// ---- quiet hours ----

const minutesOf = (clock: string) => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5));

/**
 * When the quiet hours around `now` end (ms, local time), or null when `now` is outside them or
 * none are set. A span that crosses midnight (22:00-07:00) ends on the next morning.
 */
export function quietUntil(cfg: Pick<NotificationsConfig, 'quiet_hours_start' | 'quiet_hours_end'>, now = Date.now()): number | null {
  if (!cfg.quiet_hours_start || !cfg.quiet_hours_end) return null;
  const start = minutesOf(cfg.quiet_hours_start);
  const end = minutesOf(cfg.quiet_hours_end);
  const d = new Date(now);
  const minute = d.getHours() * 60 + d.getMinutes();
  const inside = start < end ? minute >= start && minute < end : minute >= start || minute < end;
  if (!inside) return null;
  const until = new Date(now);
  until.setHours(Math.floor(end / 60), end % 60, 0, 0);
  if (until.getTime() <= now) until.setDate(until.getDate() + 1);
  return until.getTime();
}

// ---- the per-project mute ----

export function setProjectMuted(db: Db, ref: string | number, muted: boolean, now = Date.now()): Project {
  const project = getProject(db, ref);
  if (project.status === 'unregistered') throw new UserError('register the project first', 'notifications_muted');
  db.prepare(`UPDATE projects SET notifications_muted = ?, updated_at = ? WHERE id = ?`).run(muted ? 1 : 0, now, project.id);
  return getProject(db, project.id);
}

// ---- channels ----

/**
 * A webhook URL with everything but its scheme and host hidden: the path or query of ntfy and Slack
 * URLs, or a user and password, is the secret.
 */
export function maskUrl(url: string): string {
  if (!url) return '';
  try {
    const u = new URL(url);
    const rest = url.slice(url.indexOf(u.host) + u.host.length);
    const hidden = u.username || u.password || (rest && rest !== '/');
    return hidden ? `${u.protocol}//${u.host}/••••` : `${u.protocol}//${u.host}`;
  } catch {
    return '••••';
  }
}

/** An HTTP header value of any text: ntfy reads RFC 2047 encoded words, and a header must be Latin-1 without line breaks. */
function headerText(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  return /^[\x20-\x7e]*$/.test(line) ? line : `=?UTF-8?B?${Buffer.from(line, 'utf8').toString('base64')}?=`;
}

/** Slack's mrkdwn escapes only these three. */
const slackText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The request a webhook gets for a message, in the chosen format. */
export function webhookRequest(
  format: NotificationsConfig['webhook_format'],
  url: string,
  m: Message,
  baseUrl: string,
): { url: string; init: RequestInit } {
  const link = baseUrl + m.path;
  if (format === 'ntfy') {
    // ntfy's plain publish: the body is the message, the title and the link go in headers
    const headers = {
      'content-type': 'text/plain; charset=utf-8',
      title: headerText(m.title),
      click: link,
      tags: m.kind === 'paused' ? 'pause_button' : 'bell',
    };
    return { url, init: { method: 'POST', headers, body: m.text || m.title } };
  }
  if (format === 'slack') {
    const text = `*${slackText(m.title)}*${m.text ? `\n${slackText(m.text)}` : ''}\n<${link}|Open in Dispatcher>`;
    return { url, init: { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) } };
  }
  const created = new Date(m.created_at).toISOString();
  const body = { event: m.kind, title: m.title, text: m.text, ticket: m.ticket, project: m.project, url: link, created_at: created };
  return { url, init: { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } };
}

/** Posts a message to the webhook; throws with the reason unless it answers 2xx within the timeout. */
export async function sendWebhook(cfg: NotificationsConfig, m: Message, baseUrl: string): Promise<string> {
  if (!cfg.webhook_url) throw new Error('no webhook URL is set');
  const { url, init } = webhookRequest(cfg.webhook_format, cfg.webhook_url, m, baseUrl);
  let res: Response;
  try {
    res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why =
      e.name === 'TimeoutError' ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new Error(`the webhook at ${maskUrl(cfg.webhook_url)} could not be reached: ${why}`);
  }
  await res.body?.cancel().catch(() => {});
  if (!res.ok) throw new Error(`the webhook at ${maskUrl(cfg.webhook_url)} answered ${res.status} ${res.statusText}`.trim());
  return `the webhook answered ${res.status}`;
}

/** The first executable of that name on a PATH, or null. */
function onPath(name: string, pathEnv: string): string | null {
  for (const dir of pathEnv.split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The desktop notifier's command line for this platform: `notify-send` on Linux (and other Unixes
 * with it), `osascript` on macOS with the texts as arguments (never pasted into the script), or
 * null when neither is on the PATH. Always an argv array: no shell ever reads the texts.
 */
export function desktopCommand(
  title: string,
  text: string,
  platform: NodeJS.Platform = process.platform,
  pathEnv = process.env.PATH ?? '',
): { command: string; args: string[] } | null {
  if (platform === 'darwin') {
    const osascript = onPath('osascript', pathEnv);
    if (!osascript) return null;
    const script = ['on run argv', 'display notification (item 2 of argv) with title (item 1 of argv)', 'end run'];
    return { command: osascript, args: [...script.flatMap((line) => ['-e', line]), '--', title, text] };
  }
  const notifySend = onPath('notify-send', pathEnv);
  if (!notifySend) return null;
  return { command: notifySend, args: ['--app-name=Dispatcher', '--', title, text] };
}

export const NO_DESKTOP_NOTIFIER =
  'no desktop notifier here: neither notify-send (Linux, package libnotify-bin) nor osascript (macOS) is on the PATH';

/** Shows a message on the desktop; throws with the reason when the command fails or takes too long. */
export function sendDesktop(m: Message): Promise<string> {
  const cmd = desktopCommand(m.title, m.text);
  if (!cmd) return Promise.reject(new Error(NO_DESKTOP_NOTIFIER));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.command, cmd.args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: DELIVERY_TIMEOUT_MS });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-500)));
    child.on('error', (err) => reject(new Error(`${path.basename(cmd.command)} could not start: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(`${path.basename(cmd.command)} showed it`);
      const how = signal ? `stopped by ${signal}` : `exit ${code}`;
      if (code !== 0) reject(new Error(`${path.basename(cmd.command)} failed (${how})${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
    });
  });
}

export function send(channel: Channel, cfg: NotificationsConfig, m: Message, baseUrl: string): Promise<string> {
  return channel === 'webhook' ? sendWebhook(cfg, m, baseUrl) : sendDesktop(m);
}

/** The channels a notification goes out on now. */
export function activeChannels(cfg: NotificationsConfig): Channel[] {
  const channels: Channel[] = [];
  if (cfg.webhook_url) channels.push('webhook');
  if (cfg.desktop && desktopCommand('', '')) channels.push('desktop');
  return channels;
}

// ---- the browser: the pages' live stream (web/live.ts) ----

/** A notification as an open page pops it up. */
export interface BrowserNotification {
  id: number;
  kind: NotificationKind;
  title: string;
  body: string;
  /** the ticket's key, or null (a pause) */
  ticket: string | null;
  /** the page a click opens */
  url: string;
}

/** The id of the newest notification (0 for none): where a page's stream starts popping up from. */
export function notificationCursor(db: Db): number {
  return (db.prepare(`SELECT COALESCE(MAX(id), 0) AS id FROM notifications`).get() as { id: number }).id;
}

/**
 * The notifications after `after`, reading at most `limit` rows, their words filled in first: rows of
 * muted projects are read past but left out. `cursor` is the last row read, from which the next call goes on.
 */
export function notificationsAfter(
  db: Db,
  after: number,
  limit: number,
): { notifications: BrowserNotification[]; cursor: number; more: boolean } {
  fillPending(db);
  const rows = db
    .prepare(
      `SELECT n.*, COALESCE(p.notifications_muted, 0) AS muted FROM notifications n LEFT JOIN projects p ON p.id = n.project_id
       WHERE n.id > ? ORDER BY n.id LIMIT ?`,
    )
    .all(after, limit) as (NotificationRow & { muted: number })[];
  const notifications = rows
    .filter((r) => !r.muted)
    .map((r) => {
      const m = messageOf(db, r);
      return { id: r.id, kind: r.kind, title: m.title, body: m.text, ticket: m.ticket, url: m.path };
    });
  return { notifications, cursor: rows.at(-1)?.id ?? after, more: rows.length === limit };
}

/** Whether pages pop notifications up now: browser notifications on and outside the quiet hours (the count shows regardless). */
export function browserPopUps(cfg: NotificationsConfig, now = Date.now()): boolean {
  return cfg.browser && quietUntil(cfg, now) === null;
}

/** Forgets notifications older than `keepDays` that have been handed to the queue (the queue's housekeeping calls it). */
export function pruneNotifications(db: Db, keepDays: number, now = Date.now()): number {
  return db.prepare(`DELETE FROM notifications WHERE queued_at IS NOT NULL AND created_at < ?`).run(now - keepDays * 86_400_000).changes;
}

// ---- the daemon's notifier ----

/** How often the notifier looks for rows written by other processes when nothing pokes it. */
const SWEEP_MS = 3000;

export interface Notifier {
  start(): void;
  stop(): Promise<void>;
  /** Look for new notifications now (a ticket moved, a run ended). */
  poke(): void;
  lastError: string | null;
}

/**
 * Turns new rows into delivery jobs: for each, nothing when its project is muted or no channel is
 * set, else one `notify` job per channel, delayed to the end of the quiet hours when they are on
 * (held, not dropped). A row is marked queued after its jobs are in the queue; the jobs' keys are
 * per notification and channel, so a pass repeated after a crash in between adds no second job
 * while the first still waits.
 */
export function createNotifier(deps: { db: Db; queue: QueueBackend; config: ConfigStore; logger: Logger; onQueued: () => void }): Notifier {
  const { db, logger } = deps;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  async function pass(): Promise<void> {
    fillPending(db);
    const rows = db
      .prepare(
        `SELECT n.id, COALESCE(p.notifications_muted, 0) AS muted FROM notifications n LEFT JOIN projects p ON p.id = n.project_id
         WHERE n.queued_at IS NULL AND n.title IS NOT NULL ORDER BY n.id LIMIT 100`,
      )
      .all() as { id: number; muted: number }[];
    let queued = 0;
    for (const r of rows) {
      const cfg = deps.config.get().notifications;
      const channels = r.muted ? [] : activeChannels(cfg);
      const hold = quietUntil(cfg);
      for (const channel of channels) {
        const payload = { notificationId: r.id, channel };
        const delayMs = hold === null ? undefined : hold - Date.now();
        await deps.queue.enqueue('notify', payload, { key: jobKeys.notify(payload), delayMs });
        queued++;
      }
      const outcome = r.muted ? 'muted' : channels.length ? 'queued' : 'none';
      db.prepare(`UPDATE notifications SET queued_at = ?, outcome = ? WHERE id = ?`).run(Date.now(), outcome, r.id);
    }
    if (queued) deps.onQueued();
    if (rows.length === 100) again = true;
  }

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass()
      .then(() => {
        notifier.lastError = null;
      })
      .catch((err: unknown) => {
        notifier.lastError = (err as Error).message;
        logger.error('notifications could not be queued', { error: notifier.lastError });
      })
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          setImmediate(run);
        }
      });
  }

  const notifier: Notifier = {
    lastError: null,
    start() {
      if (timer) return;
      timer = setInterval(run, SWEEP_MS);
      timer.unref();
      run();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
    poke() {
      if (timer) setImmediate(run);
    },
  };
  return notifier;
}
