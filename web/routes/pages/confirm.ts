// The confirm step of a destructive page action (archive a project, kill a run). The action's
// button posts without `confirm=1` and gets this page back, which posts the same form again with
// it: the step works without JavaScript. With JavaScript, app.js asks in a dialog instead (the
// form's data-confirm text) and adds `confirm=1` itself. The form token is on both posts.
import type { Response } from 'express';
import type { FormValues } from './form.js';

export interface ConfirmStep {
  question: string;
  details: string[];
  /** where the confirmed form posts */
  action: string;
  /** hidden fields posted again with the confirmation */
  fields: Record<string, string>;
  confirmLabel: string;
  /** where Cancel leads */
  cancel: string;
  section: string;
}

export function confirmed(values: FormValues): boolean {
  return values.confirm === '1';
}

export function renderConfirm(res: Response, step: ConfirmStep): void {
  res.render('confirm.njk', { title: step.question, ...step });
}
