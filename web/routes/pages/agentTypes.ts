// /agent-types: the list and a create form; /agent-types/<id>: edit the prompt (saved to its
// markdown file) and the settings (model, tools, permission mode, timeout, retries, whether it
// edits the working tree). "Preview"
// re-renders the page with the sanitized markdown of the unsaved text; the JS live preview asks
// /agent-types/<id>/preview for the same fragment.
import { Router, type Response } from 'express';
import {
  createAgentType,
  getAgentType,
  listAgentTypes,
  PERMISSION_MODES,
  readPrompt,
  updateAgentType,
  writePrompt,
} from '../../../lib/agentTypes.js';
import { renderMarkdown } from '../../../lib/markdown.js';
import { allAdapters, cliAdapter, isCliName } from '../../../lib/clis/index.js';
import { formValues, required, submit, withNotice, type FormError, type FormValues } from './form.js';
import type { AppContext } from '../../context.js';

/** The CLIs an agent type can run, with the models each offers. */
const cliChoices = () => allAdapters().map((c) => ({ name: c.name, label: c.label, models: c.models }));

export function agentTypePages(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  const prompts = ctx.paths.prompts;

  function renderList(res: Response, error: FormError | null = null, values: FormValues = {}): void {
    res.render('agent-types/index.njk', {
      title: 'Agent types',
      section: 'agent-types',
      agents: listAgentTypes(db).map((a) => ({
        id: a.id,
        name: a.name,
        description: a.description,
        cli: cliAdapter(a.cli).label,
        model: a.model,
        permissionMode: a.permission_mode,
        timeout: a.timeout_minutes,
        retries: a.max_retries,
        builtin: a.builtin,
        toolCount: a.allowed_tools.length,
      })),
      permissionModes: PERMISSION_MODES,
      clis: cliChoices(),
      error,
      values,
    });
  }

  r.get('/agent-types', (_req, res) => renderList(res));

  r.post('/agent-types', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const a = createAgentType(db, prompts, required(values, 'id').trim(), {
          name: values.name,
          description: values.description,
          cli: values.cli,
          model: values.model,
          permission_mode: values.permission_mode,
          timeout_minutes: ctx.config.get().agents.default_timeout_minutes, // from then on its own timeout is the one used
        });
        return withNotice(`/agent-types/${a.id}`, 'created');
      },
      (error) => renderList(res, error, values),
    );
  });

  function renderOne(
    res: Response,
    id: string,
    opts: { error?: FormError | null; values?: FormValues; preview?: string | null } = {},
  ): void {
    const a = getAgentType(db, id);
    const values = opts.values ?? {};
    const prompt = values.prompt ?? readPrompt(prompts, a.id);
    const cli = cliAdapter(isCliName(values.cli) ? values.cli : a.cli);
    const permissionMode = values.permission_mode ?? a.permission_mode;
    const tools =
      values.allowed_tools === undefined
        ? a.allowed_tools
        : values.allowed_tools
            .split('\n')
            .map((t) => t.trim())
            .filter(Boolean);
    res.render('agent-types/show.njk', {
      title: a.name,
      section: 'agent-types',
      agent: {
        id: a.id,
        name: values.name ?? a.name,
        description: values.description ?? a.description,
        model: values.model ?? a.model,
        cli: cli.name,
        cliLabel: cli.label,
        models: cli.models,
        modelHint: cli.modelHint,
        unmapped: cli.unmapped({ permissionMode, allowedTools: tools }),
        tools: values.allowed_tools ?? a.allowed_tools.join('\n'),
        permissionMode,
        timeout: values.timeout_minutes ?? String(a.timeout_minutes),
        retries: values.max_retries ?? String(a.max_retries),
        editsWorkingTree: values.edits_working_tree === undefined ? a.edits_working_tree : values.edits_working_tree === 'on',
        builtin: a.builtin,
      },
      prompt: prompt ?? '',
      promptMissing: prompt === null,
      promptFile: `${prompts}/${a.id}.md`,
      previewHtml: opts.preview ?? null,
      permissionModes: PERMISSION_MODES,
      clis: cliChoices(),
      error: opts.error ?? null,
    });
  }

  r.get('/agent-types/:id', (req, res) => renderOne(res, req.params.id));

  r.post('/agent-types/:id', async (req, res) => {
    const values = formValues(req);
    if (values.intent === 'preview') return renderOne(res, req.params.id, { values, preview: renderMarkdown(values.prompt ?? '') });
    await submit(
      res,
      () => {
        const a = updateAgentType(db, req.params.id, {
          name: values.name,
          description: values.description ?? '',
          cli: values.cli,
          model: values.model,
          allowed_tools: values.allowed_tools ?? '',
          permission_mode: values.permission_mode,
          timeout_minutes: values.timeout_minutes,
          max_retries: values.max_retries,
          // the form sends "off" and, when the box is ticked, "on" after it (the last value wins)
          edits_working_tree: values.edits_working_tree,
        });
        if (values.prompt !== undefined) writePrompt(prompts, a.id, values.prompt);
        return withNotice(`/agent-types/${a.id}`, 'saved');
      },
      (error) => renderOne(res, req.params.id, { error, values }),
    );
  });

  r.post('/agent-types/:id/preview', (req, res) => {
    getAgentType(db, req.params.id);
    res.type('html').send(renderMarkdown(formValues(req).prompt ?? ''));
  });

  return r;
}
