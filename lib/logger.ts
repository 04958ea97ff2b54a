// The daemon's logger (winston): JSON lines in daily files under `<home>/logs/` kept for
// `logs.retention_days`, and a readable line format on the console. Context (ticket, run,
// project ids) goes in the metadata object, never spliced into the message. Retention is ours,
// by the date in each file's name, so it also applies to files written before a restart and
// follows config changes; a follower of the log switches files at the day's rollover.
import fs from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import DailyRotateFile from 'winston-daily-rotate-file';

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

export function createLogger(opts: LoggerOptions = {}): Logger {
  const transports: winston.transport[] = [];
  let pruner: NodeJS.Timeout | null = null;
  if (opts.logsDir) {
    const dir = opts.logsDir;
    transports.push(
      new DailyRotateFile({
        dirname: dir,
        filename: 'daemon-%DATE%.log',
        datePattern: 'YYYY-MM-DD',
        format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
      }),
    );
    const retention = typeof opts.retentionDays === 'function' ? opts.retentionDays : () => (opts.retentionDays as number | undefined) ?? 14;
    pruneLogs(dir, retention());
    pruner = setInterval(() => pruneLogs(dir, retention()), PRUNE_EVERY_MS);
    pruner.unref();
  }
  if (opts.console !== false) {
    transports.push(
      new winston.transports.Console({
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
  logger.on('finish', () => pruner && clearInterval(pruner));
  return logger;
}

/** The daily log files, oldest first. */
export function logFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((f) => LOG_FILE.test(f)).sort().map((f) => path.join(dir, f));
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
export function followLogs(dir: string, onLine: (line: string) => void, opts: { from?: { file: string; offset: number } | null; pollMs?: number } = {}): { stop(): void } {
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
