// The Nunjucks environment for the HTML pages: autoescape on, templates from `views/`, and the
// few formatting filters templates need (dates, durations, money). Filters format values; they
// never query or decide anything.
import nunjucks from 'nunjucks';
import type express from 'express';
import { viewsDir } from '../lib/paths.js';
import { formatUsd } from '../lib/costs.js';

export function setupViews(app: express.Express): nunjucks.Environment {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(viewsDir, { noCache: false }), {
    autoescape: true,
    throwOnUndefined: false,
  });
  env.addFilter('isotime', (ms: unknown) => (typeof ms === 'number' ? new Date(ms).toISOString() : ''));
  env.addFilter('datetime', (ms: unknown) => (typeof ms === 'number' ? formatDate(ms) : '—'));
  env.addFilter('ago', (ms: unknown) => (typeof ms === 'number' ? relative(ms, Date.now()) : '—'));
  env.addFilter('duration', (ms: unknown) => (typeof ms === 'number' && ms >= 0 ? formatDuration(ms) : '—'));
  env.addFilter('usd', (v: unknown) => (typeof v === 'number' ? formatUsd(v) : '—'));
  env.addFilter('int', (v: unknown) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : '—'));
  env.express(app);
  app.set('view engine', 'njk');
  return env;
}

function formatDate(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  const pair = (a: number, unitA: string, b: number, unitB: string) => (b ? `${a}${unitA} ${b}${unitB}` : `${a}${unitA}`);
  if (m < 60) return pair(m, 'm', s % 60, 's');
  const h = Math.floor(m / 60);
  if (h < 48) return pair(h, 'h', m % 60, 'm');
  return pair(Math.floor(h / 24), 'd', h % 24, 'h');
}

function relative(ms: number, now: number): string {
  const diff = ms - now;
  const text = formatDuration(Math.abs(diff)).split(' ')[0]!;
  if (Math.abs(diff) < 5000) return 'now';
  return diff < 0 ? `${text} ago` : `in ${text}`;
}
