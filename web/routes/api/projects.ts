// /api/projects: register, discover, list, show, pause / resume / archive, daily budget, parallel coding, notifications mute,
// check and worktree setup, workflow, wake.
import { setProjectMuted } from '../../../lib/notifications.js';
import { Router } from 'express';
import {
  discoverProjects,
  getColumns,
  getProject,
  listProjects,
  parseParallelCoding,
  PROJECT_STATUSES,
  registerProject,
  setProjectColumns,
  setProjectMergeSettings,
  setProjectRunners,
  setProjectParallelCoding,
  updateProject,
  type ColumnInput,
  type ProjectStatus,
} from '../../../lib/projects.js';
import { workspaceMode } from '../../../lib/workspace.js';
import { archiveProject, liveRunIds, pauseProject, resumeProject, type StatusChange } from '../../../lib/pausing.js';
import { getHeartbeat } from '../../../lib/heartbeats.js';
import { parseBudget, setProjectBudget } from '../../../lib/budget.js';
import { board } from '../../../lib/tickets.js';
import { UserError } from '../../../lib/errors.js';
import { bodyObject, optionalBoolean, optionalString, requiredString } from '../../http.js';
import type { AppContext } from '../../context.js';

export function projectsApi(ctx: AppContext): Router {
  const r = Router();
  const db = ctx.store.db;

  r.get('/', (req, res) => {
    const status = req.query.status;
    if (status !== undefined && !PROJECT_STATUSES.includes(status as ProjectStatus))
      throw new UserError(`status must be one of ${PROJECT_STATUSES.join(', ')}`, 'status');
    res.json({ projects: listProjects(db, { status: status as ProjectStatus | undefined }) });
  });

  r.post('/', (req, res) => {
    const body = bodyObject(req);
    const project = registerProject(
      ctx.store,
      {
        path: requiredString(body, 'path'),
        type: requiredString(body, 'type'),
        abbreviation: optionalString(body, 'abbreviation'),
        name: optionalString(body, 'name'),
        mainBranch: optionalString(body, 'main_branch'),
      },
      ctx.config.get().heartbeat.base_interval_seconds,
      ctx.paths.home,
    );
    res.status(201).json({ project });
  });

  r.post('/discover', (_req, res) => {
    const result = discoverProjects(db, ctx.config.get().projects_root, [ctx.paths.home]);
    // a project that came back active was marked due; wake it now rather than at the scheduler's next look
    for (const folder of result.returned) {
      const project = listProjects(db).find((p) => p.path === folder);
      if (project?.status === 'active') ctx.engine.wake(project.id);
    }
    res.json(result);
  });

  const mode = (project: Parameters<typeof workspaceMode>[0]) => workspaceMode(project, ctx.config.get().agents.parallel_coding);

  r.get('/:ref', async (req, res) => {
    const project = getProject(db, req.params.ref);
    const running = liveRunIds(db, project.id).length;
    const workspace = await mode(project);
    res.json({ project, columns: getColumns(db, project.id), heartbeat: getHeartbeat(db, project.id) ?? null, running, workspace });
  });

  /** The same change as POST pause / resume / archive; pausing this way leaves running agents alone. */
  r.patch('/:ref', async (req, res) => {
    const body = bodyObject(req);
    let project = getProject(db, req.params.ref);
    // checked before anything changes: a bad value leaves the project as it was
    const parallel = body.parallel_coding === undefined ? undefined : parseParallelCoding(body.parallel_coding);
    const muted = optionalBoolean(body, 'notifications_muted');
    const merging = {
      check_command: body.check_command,
      check_timeout_minutes: body.check_timeout_minutes,
      setup_command: body.setup_command,
      copy_files: body.copy_files,
    };
    // validated as a whole and written in one statement: a bad value changes nothing
    if (Object.values(merging).some((v) => v !== undefined)) project = setProjectMergeSettings(ctx.store, project.id, merging);
    // where its agents run and the remote runners share its code through (docs/RUNNERS.md), checked together
    if (body.remote_url !== undefined || body.runs_on !== undefined) {
      project = setProjectRunners(ctx.store, project.id, { remote_url: body.remote_url, runs_on: body.runs_on });
    }
    if (body.status !== undefined) {
      if (body.status !== 'active' && body.status !== 'dormant' && body.status !== 'archived')
        throw new UserError('status must be active, dormant or archived', 'status');
      project = (await changeStatus(project.id, body.status, false)).project;
    }
    if (body.name !== undefined || body.main_branch !== undefined) {
      project = updateProject(db, project.id, {
        name: optionalString(body, 'name'),
        main_branch: body.main_branch === null ? null : optionalString(body, 'main_branch'),
      });
    }
    if (body.daily_budget_usd !== undefined) {
      setProjectBudget(ctx.store, project.id, parseBudget(body.daily_budget_usd));
      project = getProject(db, project.id);
    }
    // true, false, or null (also "on", "off", "default") for the global agents.parallel_coding
    if (parallel !== undefined) project = setProjectParallelCoding(ctx.store, project.id, parallel);
    if (muted !== undefined) project = setProjectMuted(db, project.id, muted);
    res.json({ project, workspace: await mode(project) });
  });

  const changeStatus = async (id: number, status: 'active' | 'dormant' | 'archived', stopRunning: boolean): Promise<StatusChange> => {
    if (status === 'active') return resumeProject(ctx.store, id);
    if (status === 'dormant') return pauseProject(ctx.store, ctx.engine, id, { stopRunning });
    return archiveProject(ctx.store, ctx.engine, id);
  };

  // { stop_running: true } also stops the project's running agents (their tickets stay in their columns)
  r.post('/:ref/pause', async (req, res) => {
    const body = bodyObject(req);
    res.json(await changeStatus(getProject(db, req.params.ref).id, 'dormant', optionalBoolean(body, 'stop_running') ?? false));
  });

  r.post('/:ref/resume', async (req, res) => {
    res.json(await changeStatus(getProject(db, req.params.ref).id, 'active', false));
  });

  // archiving always stops the project's running agents; the CLI and the pages ask first
  r.post('/:ref/archive', async (req, res) => {
    res.json(await changeStatus(getProject(db, req.params.ref).id, 'archived', true));
  });

  r.get('/:ref/board', (req, res) => {
    res.json({ columns: board(db, req.params.ref, ctx.config.get().board.done_limit) });
  });

  r.put('/:ref/columns', (req, res) => {
    const body = bodyObject(req);
    if (!Array.isArray(body.columns)) throw new UserError('columns must be a list', 'columns');
    res.json({ columns: setProjectColumns(ctx.store, req.params.ref, body.columns as ColumnInput[]) });
  });

  r.post('/:ref/wake', (req, res) => {
    const project = getProject(db, req.params.ref);
    ctx.engine.wake(project.id);
    res.status(202).json({ ok: true, project: project.id });
  });

  return r;
}
