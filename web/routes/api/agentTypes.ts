// /api/agent-types and /api/project-types: settings, prompts and workflows.
import { Router } from 'express';
import { createAgentType, getAgentType, listAgentTypes, readPrompt, updateAgentType, writePrompt } from '../../../lib/agentTypes.js';
import { getProjectType, listProjectTypes, saveProjectType } from '../../../lib/projectTypes.js';
import { UserError } from '../../../lib/errors.js';
import type { ColumnInput } from '../../../lib/projects.js';
import { bodyObject, requiredString } from '../../http.js';
import type { AppContext } from '../../context.js';

export function agentTypesApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  const prompts = ctx.paths.prompts;

  r.get('/', (_req, res) => res.json({ agent_types: listAgentTypes(db) }));

  r.post('/', (req, res) => {
    const body = bodyObject(req);
    // a new type starts with the default timeout; from then on its own timeout is the one used
    const input = { timeout_minutes: ctx.config.get().agents.default_timeout_minutes, ...body };
    res.status(201).json({ agent_type: createAgentType(db, prompts, requiredString(body, 'id'), input) });
  });

  r.get('/:id', (req, res) => {
    const agentType = getAgentType(db, req.params.id);
    res.json({ agent_type: agentType, prompt: readPrompt(prompts, agentType.id) });
  });

  r.patch('/:id', (req, res) => {
    res.json({ agent_type: updateAgentType(db, req.params.id, bodyObject(req)) });
  });

  r.put('/:id/prompt', (req, res) => {
    const agentType = getAgentType(db, req.params.id);
    writePrompt(prompts, agentType.id, bodyObject(req).prompt);
    res.json({ ok: true, prompt: readPrompt(prompts, agentType.id) });
  });

  return r;
}

export function projectTypesApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;
  const columnsOf = (body: Record<string, unknown>): ColumnInput[] => {
    if (!Array.isArray(body.columns)) throw new UserError('columns must be a list', 'columns');
    return body.columns as ColumnInput[];
  };
  r.get('/', (_req, res) => res.json({ project_types: listProjectTypes(db) }));
  r.get('/:id', (req, res) => res.json({ project_type: getProjectType(db, req.params.id) }));
  r.post('/', (req, res) => {
    const body = bodyObject(req);
    res.status(201).json({
      project_type: saveProjectType(
        db,
        requiredString(body, 'id'),
        { name: body.name, description: body.description, columns: columnsOf(body) },
        true,
      ),
    });
  });
  r.put('/:id', (req, res) => {
    const body = bodyObject(req);
    res.json({
      project_type: saveProjectType(db, req.params.id, { name: body.name, description: body.description, columns: columnsOf(body) }, false),
    });
  });
  return r;
}
