// What every page route shares: reading urlencoded form fields, the Post/Redirect/Get step with
// the form re-rendered (4xx, message inline) when lib/ refuses the input, and safe return paths.
import type { Request, Response } from 'express';
import { UserError } from '../../../lib/errors.js';

export interface FormError {
  message: string;
  field: string | null;
  /** which form on the page failed, when a page has several (e.g. one reply box per inbox item) */
  scope: string | null;
}

export type FormValues = Record<string, string>;

/**
 * The posted fields as strings (a repeated field keeps its last value). Browsers send textarea
 * line breaks as CRLF; they are stored as LF like text from the API and the CLI.
 */
export function formValues(req: Request): FormValues {
  const body = (req.body ?? {}) as Record<string, unknown>;
  const out: FormValues = {};
  for (const [k, v] of Object.entries(body)) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (typeof last === 'string') out[k] = last.replace(/\r\n?/g, '\n');
  }
  return out;
}

/** Every value of a repeated field, in order. */
export function formList(req: Request, name: string): string[] {
  const v = ((req.body ?? {}) as Record<string, unknown>)[name];
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

export function optional(values: FormValues, name: string): string | undefined {
  const v = values[name];
  return v === undefined || v.trim() === '' ? undefined : v;
}

export function required(values: FormValues, name: string, label = name): string {
  const v = optional(values, name);
  if (v === undefined) throw new UserError(`${label} is required`, name);
  return v;
}

/** A same-site path to go back to after a POST; anything else falls back. */
export function returnPath(values: FormValues, fallback: string): string {
  const to = values.return_to;
  return to && /^\/(?![/\\])[^\s\\]*$/.test(to) ? to : fallback;
}

/**
 * Runs a form action: on success redirect (303) to the path it returns; when lib/ refuses the
 * input, answer with its status and the page re-rendered with the message. Other errors propagate.
 */
export async function submit(
  res: Response,
  action: () => string | Promise<string>,
  rerender: (error: FormError) => void | Promise<void>,
  scope: string | null = null,
): Promise<void> {
  let to: string;
  try {
    to = await action();
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    res.status(err.status);
    await rerender({ message: err.message, field: err.field ?? null, scope });
    return;
  }
  res.redirect(303, to);
}

/** One-word outcomes shown after a redirect (`?done=saved`); free text is never reflected. */
export const NOTICES: Record<string, string> = {
  saved: 'Saved.',
  filed: 'Ticket filed.',
  moved: 'Ticket moved.',
  closed: 'Ticket closed: it left the board and the lists; Reopen brings it back.',
  reopened: 'Ticket reopened.',
  'bulk-moved': 'The selected tickets were moved.',
  'bulk-priority': 'The selected tickets have their new priority.',
  'bulk-closed': "The selected tickets were closed; each one's page can reopen it.",
  replied: 'Reply added.',
  registered: 'Project registered.',
  woken: 'Project woken: it will be scanned now.',
  paused: 'Project paused: no new agent starts; running agents finish their work.',
  'paused-stopped': 'Project paused and its running agents stopped; their tickets stay in their columns.',
  resumed: 'Project resumed.',
  restored: 'Project restored.',
  archived: 'Project archived; its running agents were stopped.',
  'agents-paused': 'All agents paused: no new agent starts; running agents finish their work.',
  'agents-stopped': 'All agents paused and running agents stopped; their tickets stay in their columns.',
  'agents-resumed': 'Agents resumed: waiting tickets start now.',
  checked: 'Health checks run again.',
  discovered: 'Projects folder scanned.',
  killed: 'Run stopped.',
  'not-running': 'That run is not running here; nothing to stop.',
  created: 'Created.',
  retried: 'Job queued again.',
  deleted: 'Job deleted.',
  muted: "Notifications muted: this project's tickets send none (the inbox still lists them).",
  unmuted: 'Notifications on for this project.',
};

export function withNotice(path: string, notice: keyof typeof NOTICES): string {
  const [base, hash] = path.split('#', 2) as [string, string | undefined];
  return `${base}${base.includes('?') ? '&' : '?'}done=${notice}${hash === undefined ? '' : `#${hash}`}`;
}

/** Page number from `?page=`, 1-based and bounded. */
export function pageNumber(value: unknown): number {
  const n = Number(value ?? 1);
  return Number.isInteger(n) && n >= 1 && n <= 100_000 ? n : 1;
}
