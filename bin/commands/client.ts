// How the CLI finds and talks to the daemon: the home's pid file gives the live daemon's pid and
// port; every call is JSON over HTTP to 127.0.0.1. A daemon that is not running gives one clear
// sentence, never a stack trace. Kept light, since every command loads it: node:http rather than
// fetch (undici costs ~50 ms to load) and config.json read as plain JSON rather than through the
// zod schema (~100 ms): the daemon validated it, the CLI only needs the port and the API token.
import fs from 'node:fs';
import http from 'node:http';
import { UserError } from '../../lib/errors.js';
import { liveDaemon } from '../../lib/pidfile.js';
import { pathsFor, resolveHome, type Paths } from '../../lib/paths.js';

export interface Target {
  paths: Paths;
  baseUrl: string;
  token: string;
}

export function localPaths(): Paths {
  return pathsFor(resolveHome());
}

/** The running daemon, or a UserError telling the user how to start it. */
export function daemonTarget(paths = localPaths()): Target {
  const live = liveDaemon(paths.pidFile);
  if (!live) throw new UserError(`the daemon is not running (home ${paths.home}); start it with "dispatch daemon start"`);
  let port = live.port;
  let token = '';
  try {
    const config = JSON.parse(fs.readFileSync(paths.config, 'utf8')) as { port?: unknown; api_token?: unknown };
    if (typeof config.port === 'number') port ??= config.port;
    if (typeof config.api_token === 'string') token = config.api_token;
  } catch {
    // no config file, or an invalid one: neither stops us from reaching a daemon that is already up
  }
  return { paths, baseUrl: `http://127.0.0.1:${port ?? 5757}`, token };
}

export async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown, target = daemonTarget()): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  let res: { status: number; text: string };
  try {
    res = await request(target.baseUrl + path, method, headers, payload);
  } catch (err) {
    throw new UserError(
      `cannot reach the daemon at ${target.baseUrl}: ${(err as Error).message}; is it running? try "dispatch daemon status"`,
    );
  }
  let data: unknown;
  try {
    data = res.text ? JSON.parse(res.text) : {};
  } catch {
    throw new UserError(`the daemon answered ${res.status} with something that is not JSON`);
  }
  if (res.status < 200 || res.status > 299) {
    const e = data as { error?: string; field?: string };
    throw new UserError(`${e.error ?? `HTTP ${res.status}`}${e.field && !(e.error ?? '').includes(e.field) ? ` (field: ${e.field})` : ''}`);
  }
  return data as T;
}

function request(
  url: string,
  method: string,
  headers: Record<string, string>,
  payload: string | undefined,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end(payload);
  });
}
