// /project-types: the built-in and user project types with their columns, each editable with the
// same column form as a project's workflow; a new type starts as human → done. Editing a type
// changes projects registered afterwards, never existing boards (lib/projectTypes).
import { Router, type Response } from 'express';
import { listAgentTypes } from '../../../lib/agentTypes.js';
import { listProjectTypes, saveProjectType } from '../../../lib/projectTypes.js';
import { agentOptions, columnRows, columnsFromForm } from './columnsForm.js';
import { formValues, required, submit, withNotice, type FormError, type FormValues } from './form.js';
import type { AppContext } from '../../context.js';

export function projectTypePages(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;

  function render(res: Response, error: FormError | null = null, values: FormValues = {}): void {
    res.render('project-types/index.njk', {
      title: 'Project types',
      section: 'project-types',
      types: listProjectTypes(db).map((t) => ({
        id: t.id,
        name: t.name,
        description: t.description,
        builtin: t.builtin,
        rows: columnRows(t.columns),
        error: error?.scope === t.id ? error : null,
      })),
      agents: agentOptions(listAgentTypes(db)),
      error: error?.scope === 'new' ? error : null,
      values: error?.scope === 'new' ? values : {},
    });
  }

  r.get('/project-types', (_req, res) => render(res));

  r.post('/project-types', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const t = saveProjectType(
          db,
          required(values, 'id').trim(),
          { name: values.name || undefined, description: values.description, columns: [{ column_id: 'human' }, { column_id: 'done' }] },
          true,
        );
        return withNotice(`/project-types#type-${t.id}`, 'created');
      },
      (error) => render(res, error, values),
      'new',
    );
  });

  r.post('/project-types/:id', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const t = saveProjectType(
          db,
          req.params.id,
          { name: values.name, description: values.description, columns: columnsFromForm(values) },
          false,
        );
        return withNotice(`/project-types#type-${t.id}`, 'saved');
      },
      (error) => render(res, error, values),
      req.params.id,
    );
  });

  return r;
}
