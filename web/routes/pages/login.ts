// /login and /logout, for a daemon with `api_token` set (exposed through a tunnel): the person
// pastes the token once and gets an HttpOnly, SameSite=Strict cookie the pages and their scripts
// carry from then on. Without a token there is nothing to log in to, and /login goes to the inbox.
import crypto from 'node:crypto';
import { Router, type Response } from 'express';
import { sessionCookieName, sessionValue } from '../../security.js';
import { formValues, returnPath } from './form.js';
import type { AppContext } from '../../context.js';

const SESSION_DAYS = 30;

export function loginPages(ctx: AppContext, csrfToken: string): Router {
  const r = Router();
  const token = () => ctx.config.get().api_token;

  function render(res: Response, next: string, error: string | null = null): void {
    res.render('login.njk', { title: 'Log in', bare: true, csrf: csrfToken, next, error: error ? { message: error } : null });
  }

  r.get('/login', (req, res) => {
    const next = returnPath({ return_to: typeof req.query.next === 'string' ? req.query.next : '' }, '/inbox');
    if (!token() || res.locals.session) return res.redirect(303, next);
    render(res, next);
  });

  r.post('/login', (req, res) => {
    const values = formValues(req);
    const next = returnPath({ return_to: values.next ?? '' }, '/inbox');
    if (!token()) return res.redirect(303, next);
    const given = crypto
      .createHash('sha256')
      .update(values.token?.trim() ?? '')
      .digest();
    if (!crypto.timingSafeEqual(given, crypto.createHash('sha256').update(token()).digest())) {
      res.status(401);
      return render(res, next, 'That is not the api_token of this daemon.');
    }
    const maxAge = SESSION_DAYS * 86_400_000;
    res.cookie(sessionCookieName(req), sessionValue(token()), { httpOnly: true, sameSite: 'strict', path: '/', maxAge });
    res.redirect(303, next);
  });

  r.post('/logout', (req, res) => {
    res.clearCookie(sessionCookieName(req), { httpOnly: true, sameSite: 'strict', path: '/' });
    res.redirect(303, token() ? '/login' : '/inbox');
  });

  return r;
}
