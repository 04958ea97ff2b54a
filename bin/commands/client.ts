// How the CLI finds and talks to the daemon: the home's pid file gives the live daemon's pid and
// port; every call is JSON over HTTP to 127.0.0.1. A daemon that is not running gives one clear
// sentence, never a stack trace.
import { ConfigStore } from '../../lib/config.js';
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
    const config = new ConfigStore(paths.config).get();
    port ??= config.port;
    token = config.api_token;
  } catch {
    // an invalid config does not stop us from reaching a daemon that is already up
  }
  return { paths, baseUrl: `http://127.0.0.1:${port ?? 5757}`, token };
}

export async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown, target = daemonTarget()): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  let res: Response;
  try {
    res = await fetch(target.baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new UserError(`cannot reach the daemon at ${target.baseUrl}: ${(err as Error).message}; is it running? try "dispatch daemon status"`);
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    throw new UserError(`the daemon answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const e = data as { error?: string; field?: string };
    throw new UserError(`${e.error ?? `HTTP ${res.status}`}${e.field && !(e.error ?? '').includes(e.field) ? ` (field: ${e.field})` : ''}`);
  }
  return data as T;
}
