// The daemon's logger (winston): JSON lines in daily files under `<home>/logs/` kept for
// `logs.retention_days`, and a readable line format on the console. Context (ticket, run,
// project ids) goes in the metadata object, never spliced into the message.
import path from 'node:path';
import winston from 'winston';
import DailyRotateFile from 'winston-daily-rotate-file';

export type Logger = winston.Logger;

export function createLogger(opts: { logsDir?: string; retentionDays?: number; console?: boolean; level?: string } = {}): Logger {
  const transports: winston.transport[] = [];
  if (opts.logsDir) {
    transports.push(
      new DailyRotateFile({
        dirname: opts.logsDir,
        filename: 'daemon-%DATE%.log',
        datePattern: 'YYYY-MM-DD',
        maxFiles: `${opts.retentionDays ?? 14}d`,
        format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
      }),
    );
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
  return winston.createLogger({ level: opts.level ?? 'info', transports });
}

export function logFilePattern(logsDir: string): string {
  return path.join(logsDir, 'daemon-YYYY-MM-DD.log');
}
