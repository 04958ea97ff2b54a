// The daemon's logger (winston): JSON lines in daily files under `<home>/logs/` kept for
// `logs.retention_days`, and a readable line format on the console. Context (ticket, run,
// project ids) goes in the metadata object, never spliced into the message. Retention is ours,
// by the date in each file's name, so it also applies to files written before a restart and
// follows config changes; a follower of the log switches files at the day's rollover.
// Every line is written at once with a plain write(2) that never throws: on a full disk winston's
// own file and console transports buffered every line in memory or threw into the code that
// logged, so a failing loop grew the daemon by about 90 MB every 5 s and logging never came back.
// A line the disk refuses is dropped and counted, and the count is written once lines fit again.
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';

export type Logger = winston.Logger;

const LOG_FILE = /^daemon-(\d{4})-(\d{2})-(\d{2})\.log$/;
const PRUNE_EVERY_MS = 6 * 3600_000;

export interface LoggerOptions {
  logsDir?: string;
  /** days of daily files to keep; a function is re-read at every pruning pass @defaultValue 14 */
  retentionDays?: number | (() => number);
  /** @defaultValue true */
  console?: boolean;
  /** @defaultValue 'info' */
  level?: string;
}

interface WriteFailure extends NodeJS.ErrnoException {
  /** part of the text was written before the failure */
  torn?: boolean;
}

/** Where finished lines go: a plain write that reports failure instead of throwing. */
type WriteLine = (text: string) => WriteFailure | null;

/** A sink for winston's Stream transport that writes each line synchronously and drops (and counts) what cannot be written. */
class LineSink extends Writable {
  private lost = 0;
  private lostError = '';
  /** a line was cut short by the disk filling up: the next write starts on a new line */
  private torn = false;

  constructor(
    private readonly writeLine: WriteLine,
    private readonly lostLine: (count: number, error: string) => string,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    let text = chunk.toString('utf8');
    if (this.lost > 0) text = this.lostLine(this.lost, this.lostError) + text;
    if (this.torn) text = `\n${text}`;
    const err = this.writeLine(text);
    if (err) {
      this.lost += 1;
      this.lostError = err.code ?? err.message;
      if (err.torn) this.torn = true; // else an earlier torn line is still open
    } else {
      this.lost = 0;
      this.torn = false;
    }
    done(); // never an error: a logger that fails would throw into whatever was logging
  }
}

/** Writes all of `text` to `fd`; on failure says whether part of it was written (a torn line). */
function writeAll(fd: number, text: string): WriteFailure | null {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  try {
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
    return null;
  } catch (err) {
    return Object.assign(err as WriteFailure, { torn: off > 0 });
  }
}

function localDate(d = new Date()): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** Appends to `daemon-<local date>.log`, switching files at midnight; reopens after a failed write. */
function dailyFile(dir: string): { write: WriteLine; close(): void } {
  let fd: number | null = null;
  let day = '';
  const close = () => {
    if (fd !== null) fs.closeSync(fd);
    fd = null;
  };
  return {
    write(text) {
      try {
        const today = localDate();
        if (today !== day) close();
        if (fd === null) {
          fs.mkdirSync(dir, { recursive: true });
          fd = fs.openSync(path.join(dir, `daemon-${today}.log`), 'a', 0o644);
          day = today;
        }
      } catch (err) {
        close();
        return err as WriteFailure;
      }
      const err = writeAll(fd, text);
      if (err) close();
      return err;
    },
    close,
  };
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const transports: winston.transport[] = [];
  let pruner: NodeJS.Timeout | null = null;
  let file: ReturnType<typeof dailyFile> | null = null;
  if (opts.logsDir) {
    const dir = opts.logsDir;
    file = dailyFile(dir);
    const lostLine = (lost: number, error: string) =>
      `${JSON.stringify({ error, level: 'warn', lost, message: 'log lines could not be written', timestamp: new Date().toISOString() })}\n`;
    transports.push(
      new winston.transports.Stream({
        stream: new LineSink(file.write, lostLine),
        format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
      }),
    );
    const retention =
      typeof opts.retentionDays === 'function' ? opts.retentionDays : () => (opts.retentionDays as number | undefined) ?? 14;
    pruneLogs(dir, retention());
    pruner = setInterval(() => pruneLogs(dir, retention()), PRUNE_EVERY_MS);
    pruner.unref();
  }
  if (opts.console !== false) {
    const lostLine = (lost: number, error: string) =>
      `${new Date().toTimeString().slice(0, 8)} warn  ${lost} log lines could not be written (${error})\n`;
    transports.push(
      new winston.transports.Stream({
        // fd 1 written directly: process.stdout on a file throws from write() once the disk is full
        stream: new LineSink((text) => writeAll(1, text), lostLine),
        format: winston.format.combine(
          winston.format.timestamp({ format: 'HH:mm:ss' }),
          winston.format.printf(({ timestamp, level, message, ...meta }) => {
            const extra = Object.entries(meta)
              .filter(([k]) => k !== 'service')
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' ');
            return `${String(timestamp)} ${level.padEnd(5)} ${String(message)}${extra ? ` ${extra}` : ''}`;
          }),
        ),
      }),
    );
  }
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));
  const logger = winston.createLogger({ level: opts.level ?? 'info', transports });
  logger.on('finish', () => {
    if (pruner) clearInterval(pruner);
    file?.close();
  });
  return logger;
}

/**
 * Logs a failure that repeats (on a full disk every attempt fails the same way) once when it
 * starts, then only counts it: one line with the count when it ends or changes, and one every
 * `everyMs` while it lasts, so a retrying loop can neither flood the log nor grow the daemon.
 */
export class RepeatedFailure {
  private error: string | null = null;
  private count = 0;
  private firstAt = 0;
  private reportedAt = 0;

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly everyMs = 600_000,
  ) {}

  /** Records one failure; returns how many times in a row this error has happened. */
  fail(err: unknown, meta: Record<string, unknown> = {}): number {
    const text = err instanceof Error ? err.message : String(err);
    const now = Date.now();
    if (text === this.error) {
      this.count += 1;
      if (now - this.reportedAt >= this.everyMs) {
        this.reportedAt = now;
        this.logger.error(this.message, { ...this.summary(), ongoing: true, ...meta });
      }
      return this.count;
    }
    this.end();
    this.error = text;
    this.count = 1;
    this.firstAt = this.reportedAt = now;
    this.logger.error(this.message, { error: err instanceof Error ? (err.stack ?? text) : text, ...meta });
    return 1;
  }

  /** The operation worked: logs the count of the failure that just ended, if it repeated. */
  ok(): void {
    this.end();
  }

  private summary(): Record<string, unknown> {
    return { error: this.error, repeated: this.count, since: new Date(this.firstAt).toISOString() };
  }

  private end(): void {
    if (this.error !== null && this.count > 1) this.logger.error(this.message, this.summary());
    this.error = null;
    this.count = 0;
  }
}

/** The daily log files, oldest first. */
export function logFiles(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir)
      .filter((f) => LOG_FILE.test(f))
      .sort()
      .map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}

/** Deletes daily files older than `retentionDays` days (today counts as one); returns them. */
export function pruneLogs(dir: string, retentionDays: number, now = new Date()): string[] {
  const cutoff = new Date(now.getFullYear(), now.getMonth(), now.getDate() - (retentionDays - 1)).getTime();
  const removed: string[] = [];
  for (const file of logFiles(dir)) {
    const [, y, m, d] = LOG_FILE.exec(path.basename(file))!.map(Number);
    if (new Date(y!, m! - 1, d!).getTime() < cutoff) {
      fs.rmSync(file, { force: true });
      removed.push(file);
    }
  }
  return removed;
}

/**
 * Calls `onLine` for every complete line appended to the newest daily file, from its end (or from
 * `from`) onwards.
 * When a newer day's file appears, the rest of the old one is read first, then the new one from
 * its start, so no line is lost at midnight.
 */
export function followLogs(
  dir: string,
  onLine: (line: string) => void,
  opts: { from?: { file: string; offset: number } | null; pollMs?: number } = {},
): { stop(): void } {
  // the caller's starting point (where its own read ended) MUST be used when given: a new day's
  // file created between that read and this call would otherwise be skipped
  const start = opts.from === undefined ? (logFiles(dir).at(-1) ?? null) : (opts.from?.file ?? null);
  let file = start;
  let offset = opts.from ? opts.from.offset : start ? fs.statSync(start).size : 0;
  let partial = '';
  const drain = () => {
    if (!file) return;
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      return; // pruned or renamed under us
    }
    if (size < offset) offset = 0; // truncated: start over
    if (size === offset) return;
    const fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(size - offset);
    try {
      fs.readSync(fd, buf, 0, buf.length, offset);
    } finally {
      fs.closeSync(fd);
    }
    offset = size;
    const lines = (partial + buf.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line) onLine(line);
  };
  const timer = setInterval(() => {
    drain();
    const newest = logFiles(dir).at(-1) ?? null;
    if (newest && newest !== file) {
      if (partial) onLine(partial);
      partial = '';
      file = newest;
      offset = 0;
      drain();
    }
  }, opts.pollMs ?? 500);
  return { stop: () => clearInterval(timer) };
}
