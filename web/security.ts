// Request guards for a server that every web page the user opens can reach: only loopback Host
// names (DNS rebinding), no state change from another origin (CSRF), and JSON-only API writes so a
// cross-site "simple" form or fetch can never reach a handler. Optional `api_token` for tunnels:
// when set it guards every route, the API by bearer and the pages by a login cookie.
// The runner paths (/api/runner/, /api/agent/) check their own tokens instead, and are all a peer
// on another machine may reach when `listen` names an address other than loopback.
// Express matches routes case-insensitively (`/API/config` reaches the API), so every path test
// here is case-insensitive too, and the token guard lists what stays open rather than what is shut.
import type { NextFunction, Request, Response } from 'express';
import crypto from 'node:crypto';
import { isLoopbackAddress } from '../lib/config.js';

/** True for a path the API router answers: `/api`, `/api/…`, in any letter case. */
export function isApiPath(p: string): boolean {
  return /^\/api(\/|$)/i.test(p);
}

/**
 * The paths runners and their agents call (docs/RUNNERS.md): every request there carries a runner
 * token or a run secret, checked by its route, so they need no loopback Host and no api_token, and
 * they are the only paths a peer on another machine may reach.
 */
export function isRunnerApiPath(p: string): boolean {
  return /^\/api\/(runner|agent)(\/|$)/i.test(p);
}

/** A peer that is not this machine (the daemon listens on another address too) reaches the runner paths only. */
export function peerGuard(req: Request, res: Response, next: NextFunction): void {
  if (isRunnerApiPath(req.path) || isLoopbackAddress(req.socket.remoteAddress ?? '')) return next();
  res.status(403).json({ error: 'only the runner API (/api/runner/, /api/agent/) answers other machines' });
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function hostname(hostHeader: string | undefined): string | null {
  if (!hostHeader) return null;
  const m = /^(\[[0-9a-f:.]+\]|[^:]+)(?::(\d+))?$/i.exec(hostHeader.trim());
  return m ? m[1]!.toLowerCase() : null;
}

export function isAllowedHost(hostHeader: string | undefined): boolean {
  const name = hostname(hostHeader);
  return name !== null && LOOPBACK_HOSTS.has(name);
}

function isSameOrigin(origin: string, hostHeader: string | undefined): boolean {
  try {
    const url = new URL(origin);
    return (
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      LOOPBACK_HOSTS.has(url.hostname.toLowerCase()) &&
      url.host.toLowerCase() === (hostHeader ?? '').toLowerCase()
    );
  } catch {
    return false;
  }
}

function refuse(req: Request, res: Response, status: number, message: string): void {
  if (isApiPath(req.path) || !req.accepts('html')) {
    res.status(status).json({ error: message });
  } else {
    res.status(status).type('text/plain').send(message);
  }
}

export function hostGuard(req: Request, res: Response, next: NextFunction): void {
  if (isRunnerApiPath(req.path)) return next();
  if (!isAllowedHost(req.headers.host))
    return refuse(req, res, 421, 'Host not allowed: this server answers only to localhost, 127.0.0.1 and [::1]');
  next();
}

export function originGuard(req: Request, res: Response, next: NextFunction): void {
  if (SAFE_METHODS.has(req.method)) return next();
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if (origin !== undefined && (origin === 'null' || !isSameOrigin(origin, req.headers.host))) {
    return refuse(req, res, 403, 'Cross-origin request refused');
  }
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return refuse(req, res, 403, 'Cross-site request refused');
  if (isApiPath(req.path)) {
    const length = Number(req.headers['content-length'] ?? 0);
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if ((length > 0 || chunked) && !req.is('application/json'))
      return refuse(req, res, 415, 'API requests must send Content-Type: application/json');
  }
  next();
}

/** Equal strings, compared in constant time. */
function sameSecret(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/** Open even with a token: the health check (`dispatch daemon status`), logging in and out, and the static assets the login page needs. */
function isOpen(req: Request): boolean {
  const read = req.method === 'GET' || req.method === 'HEAD';
  if (/^\/api\/health\/?$/i.test(req.path)) return read;
  if (/^\/login\/?$/i.test(req.path)) return read || req.method === 'POST';
  if (/^\/logout\/?$/i.test(req.path)) return req.method === 'POST';
  return read && /^\/static\//i.test(req.path);
}

/** The login cookie's name, one per port so two daemons on localhost never overwrite each other's. */
export function sessionCookieName(req: Request): string {
  const port = /:(\d+)$/.exec(req.headers.host ?? '')?.[1] ?? '80';
  return `dispatch_session_${port}`;
}

/** The login cookie's value: derived from the token, so changing `api_token` logs every browser out. */
export function sessionValue(token: string): string {
  return crypto.createHmac('sha256', token).update('dispatch web session').digest('base64url');
}

function cookie(req: Request, name: string): string {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return '';
}

/** True when the request carries the login cookie of the current token. */
export function hasSession(req: Request, token: string): boolean {
  return Boolean(token) && sameSecret(cookie(req, sessionCookieName(req)), sessionValue(token));
}

/**
 * When `api_token` is set, every route needs it, except the few isOpen() lets through: the API as
 * `Authorization: Bearer <token>`, the pages as the login cookie (set by /login, HttpOnly and
 * SameSite=Strict, so the page's own scripts carry it and no other site's requests do). A page
 * opened without it redirects to the login page; anything else is refused with 401.
 */
export function tokenGuard(getToken: () => string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const token = getToken();
    if (!token) return next();
    const session = hasSession(req, token);
    const bearer = sameSecret(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '', token);
    res.locals.session = session;
    // an open route answers less to a caller without the token (see /api/health)
    res.locals.authorized = session || bearer;
    if (isOpen(req) || isRunnerApiPath(req.path)) return next();
    if (isApiPath(req.path)) return bearer ? next() : refuse(req, res, 401, 'Missing or wrong API token');
    if (session) return next();
    if ((req.method === 'GET' || req.method === 'HEAD') && req.accepts('html')) {
      return res.redirect(303, `/login?next=${encodeURIComponent(req.originalUrl)}`);
    }
    refuse(req, res, 401, 'Log in first: this daemon has an api_token (open /login)');
  };
}

export function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  );
  next();
}

/**
 * Page forms carry a per-daemon token in `_csrf`; every non-API POST must echo it. This is the
 * second defence after `originGuard`, for browsers that send neither Origin nor Sec-Fetch-Site.
 */
export function csrfGuard(token: string) {
  const expected = crypto.createHash('sha256').update(token).digest();
  return (req: Request, res: Response, next: NextFunction): void => {
    if (SAFE_METHODS.has(req.method) || isApiPath(req.path)) return next();
    const body = req.body as Record<string, unknown> | undefined;
    const given = typeof body?._csrf === 'string' ? body._csrf : '';
    const digest = crypto.createHash('sha256').update(given).digest();
    if (!crypto.timingSafeEqual(digest, expected)) {
      const message = 'Form token missing or stale: reload the page and submit again.';
      if (!req.accepts('html')) return refuse(req, res, 403, message);
      res.status(403).render('error.njk', { title: 'Form refused', status: 403, message });
      return;
    }
    next();
  };
}
