// /projects (registered and discovered folders, heartbeat state, register, wake, pause with or
// without stopping running agents, resume, archive after a confirm step), /projects/<abbr> (the
// board, its new-ticket form, daily budget and parallel coding, and a note when the folder is not a
// git repository; an archived board is read-only), /projects/<abbr>/tickets (a
// column's full list, paginated) and /projects/<abbr>/workflow (the project's own columns).
import { setProjectMuted } from '../../../lib/notifications.js';
import { Router, type Response } from 'express';
import { listAgentTypes } from '../../../lib/agentTypes.js';
import { getHeartbeat } from '../../../lib/heartbeats.js';
import {
  discoverProjects,
  getColumns,
  getProject,
  IN_PLACE_MEANING,
  listProjects,
  parseParallelCoding,
  registerProject,
  setProjectColumns,
  setProjectMergeSettings,
  setProjectParallelCoding,
  suggestAbbreviation,
  type Project,
} from '../../../lib/projects.js';
import { formatBytes, listTicketWorktrees, workspaceMode } from '../../../lib/workspace.js';
import { lastCheckRun, mergeQueue } from '../../../lib/checks.js';
import { archiveProject, archiveQuestion, liveRunCounts, liveRunIds, pauseProject, resumeProject } from '../../../lib/pausing.js';
import { budgetMessage, parseBudget, setProjectBudget } from '../../../lib/budget.js';
import { localDayStart, nextLocalMidnight, spentBetween } from '../../../lib/costs.js';
import { listProjectTypes } from '../../../lib/projectTypes.js';
import { board, BOARD_COLUMN_LIMIT, countTickets, createTicket, listTickets, PRIORITIES } from '../../../lib/tickets.js';
import { queryString } from '../api/search.js';
import { UserError } from '../../../lib/errors.js';
import { HUMAN } from '../../../lib/columns.js';
import { agentOptions, columnRows, columnsFromForm } from './columnsForm.js';
import { formValues, optional, pageNumber, required, submit, withNotice, type FormError, type FormValues } from './form.js';
import { confirmed, renderConfirm } from './confirm.js';
import { bulkBar } from './bulk.js';
import type { AppContext } from '../../context.js';

const LIST_PAGE = 100;

export function projectPages(ctx: AppContext): Router {
  const r = Router();
  const { store } = ctx;
  const db = store.db;

  function renderList(res: Response, error: FormError | null = null, values: FormValues = {}): void {
    const types = listProjectTypes(db).map((t) => ({ id: t.id, name: t.name }));
    const all = listProjects(db);
    const running = liveRunCounts(db);
    const row = (p: Project) => {
      const hb = getHeartbeat(db, p.id);
      return {
        running: running.get(p.id) ?? 0,
        archiveQuestion: archiveQuestion(p.name, running.get(p.id) ?? 0),
        id: p.id,
        name: p.name,
        path: p.path,
        abbreviation: p.abbreviation,
        type: p.project_type_id,
        status: p.status,
        nextCheck: hb && p.status === 'active' ? hb.next_check_at : null,
        lastCheck: hb?.last_check_at ?? null,
        intervalSeconds: hb?.interval_seconds ?? null,
        emptyStreak: hb?.empty_streak ?? null,
        suggested: p.status === 'unregistered' ? suggestAbbreviation(db, p.name) : null,
        error: error?.scope === `p${p.id}` ? error : null,
        values: error?.scope === `p${p.id}` ? values : {},
      };
    };
    res.render('projects/index.njk', {
      title: 'Projects',
      section: 'projects',
      registered: all.filter((p) => p.status !== 'unregistered').map(row),
      unregistered: all.filter((p) => p.status === 'unregistered').map(row),
      types,
      projectsRoot: ctx.config.get().projects_root,
      error: error && (error.scope === 'path' || error.scope === null) ? error : null,
      values: error?.scope === 'path' ? values : {},
    });
  }

  r.get('/projects', (_req, res) => renderList(res));

  r.post('/projects/register', async (req, res) => {
    const values = formValues(req);
    const scope = values.project_id ? `p${values.project_id}` : 'path';
    await submit(
      res,
      () => {
        const folder = values.project_id ? getProject(db, Number(values.project_id)).path : required(values, 'path', 'folder');
        const project = registerProject(
          store,
          {
            path: folder,
            type: required(values, 'type', 'project type'),
            abbreviation: optional(values, 'abbreviation')?.trim().toLowerCase(),
            name: optional(values, 'name'),
            mainBranch: optional(values, 'main_branch')?.trim(),
          },
          ctx.config.get().heartbeat.base_interval_seconds,
          ctx.paths.home,
        );
        return withNotice(`/projects/${project.abbreviation}`, 'registered');
      },
      (error) => renderList(res, error, values),
      scope,
    );
  });

  r.post('/projects/discover', (_req, res) => {
    discoverProjects(db, ctx.config.get().projects_root, [ctx.paths.home]);
    res.redirect(303, withNotice('/projects', 'discovered'));
  });

  r.post('/projects/:abbr/wake', (req, res) => {
    const project = getProject(db, req.params.abbr);
    ctx.engine.wake(project.id);
    res.redirect(303, withNotice('/projects', 'woken'));
  });

  // stop_running=1 also stops the project's running agents; their tickets stay in their columns
  r.post('/projects/:abbr/pause', async (req, res) => {
    const values = formValues(req);
    const project = getProject(db, req.params.abbr);
    const stopRunning = values.stop_running === '1';
    await submit(
      res,
      async () => {
        await pauseProject(store, ctx.engine, project.id, { stopRunning });
        return withNotice('/projects', stopRunning ? 'paused-stopped' : 'paused');
      },
      (error) => renderList(res, error, values),
      `p${project.id}`,
    );
  });

  r.post('/projects/:abbr/resume', async (req, res) => {
    const values = formValues(req);
    const project = getProject(db, req.params.abbr);
    await submit(
      res,
      () => {
        resumeProject(store, project.id);
        return withNotice('/projects', project.status === 'archived' ? 'restored' : 'resumed');
      },
      (error) => renderList(res, error, values),
      `p${project.id}`,
    );
  });

  // archiving stops the project's running agents, so it asks first (confirm=1 is the answer)
  r.post('/projects/:abbr/archive', async (req, res) => {
    const values = formValues(req);
    const project = getProject(db, req.params.abbr);
    if (!confirmed(values)) {
      renderConfirm(res, {
        question: archiveQuestion(project.name, liveRunIds(db, project.id).length),
        details: ['Its board becomes read-only: no new tickets, moves, comments or edits, and no agent starts, until you restore it.'],
        action: `/projects/${project.abbreviation}/archive`,
        fields: {},
        confirmLabel: `Archive ${project.name}`,
        cancel: '/projects',
        section: 'projects',
      });
      return;
    }
    await submit(
      res,
      async () => {
        await archiveProject(store, ctx.engine, project.id);
        return withNotice('/projects', 'archived');
      },
      (error) => renderList(res, error, values),
      `p${project.id}`,
    );
  });

  async function renderBoard(
    res: Response,
    ref: string,
    error: FormError | null = null,
    values: FormValues = {},
    filter = '',
  ): Promise<void> {
    const project = getProject(db, ref);
    if (project.status === 'unregistered') throw new UserError(`${project.name} is not registered yet; register it on the projects page`);
    const columns = board(db, project.id, ctx.config.get().board.done_limit, BOARD_COLUMN_LIMIT, filter);
    const order = columns.map((c) => c.column_id);
    // a card shows a running marker only while its run is live
    const live = new Set(liveRunIds(db, project.id));
    const readOnly = project.status === 'archived';
    const workspace = await workspaceMode(project, ctx.config.get().agents.parallel_coding);
    res.render('projects/board.njk', {
      readOnly,
      title: `${project.name} board`,
      section: 'projects',
      project: { name: project.name, abbreviation: project.abbreviation, status: project.status, path: project.path },
      columns: columns.map((c, i) => ({
        id: c.column_id,
        name: c.name,
        agent: c.agent_type_id,
        count: c.count,
        truncated: c.truncated,
        shown: c.tickets.length,
        cards: c.tickets.map((t) => ({
          key: t.key,
          title: t.title,
          priority: t.priority,
          claimed: t.claimed_by_run && live.has(t.claimed_by_run) ? t.claimed_by_run : null,
          prev: i > 0 && !readOnly ? { id: order[i - 1], name: columns[i - 1]!.name } : null,
          next: i < order.length - 1 && !readOnly ? { id: order[i + 1], name: columns[i + 1]!.name } : null,
        })),
      })),
      priorities: PRIORITIES,
      bulk: bulkBar(db, [project.id], `/projects/${project.abbreviation}${filter ? `?${new URLSearchParams({ filter })}` : ''}`),
      error: error?.scope === 'budget' || error?.scope === 'parallel' || error?.scope === 'merging' ? null : error,
      values,
      filter,
      matching: filter ? columns.reduce((n, c) => n + c.count, 0) : null,
      self: `/projects/${project.abbreviation}${filter ? `?${new URLSearchParams({ filter })}` : ''}`,
      budget: projectBudgetView(project, error?.scope === 'budget' ? error : null, values),
      parallel: {
        ...workspace,
        setting: project.parallel_coding === null ? 'default' : project.parallel_coding === 1 ? 'on' : 'off',
        globalDefault: ctx.config.get().agents.parallel_coding,
        inPlaceMeaning: IN_PLACE_MEANING,
        error: error?.scope === 'parallel' ? error : null,
      },
      muted: project.notifications_muted === 1,
      merging: await mergingView(project, error?.scope === 'merging' ? error : null, values),
    });
  }

  /** The board's merge queue and worktree settings: the check, its last result, setup, and the worktrees' disk use. */
  async function mergingView(project: Project, error: FormError | null, values: FormValues) {
    const last = lastCheckRun(db, project.id);
    const worktrees = await listTicketWorktrees(store, ctx.paths, project.id);
    const files = JSON.parse(project.copy_files) as string[];
    return {
      check: project.check_command,
      lastCheck: last
        ? { key: last.key, status: last.status, at: last.ended_at ?? last.started_at, landed: last.merge_commit, note: last.note }
        : null,
      queue: mergeQueue(db, project.id).map((q) => q.key),
      worktrees: worktrees.length,
      worktreeBytes: worktrees.reduce((n, w) => n + (w.bytes ?? 0), 0),
      worktreeSize: formatBytes(worktrees.reduce((n, w) => n + (w.bytes ?? 0), 0)),
      values: error
        ? values
        : {
            check_command: project.check_command ?? '',
            check_timeout_minutes: String(project.check_timeout_minutes),
            setup_command: project.setup_command ?? '',
            copy_files: files.join(', '),
          },
      error,
    };
  }

  /** The board's daily budget form: the project's budget and today's spend (lib/budget.ts). */
  function projectBudgetView(project: Project, error: FormError | null, values: FormValues) {
    const now = Date.now();
    const spent = spentBetween(db, localDayStart(now), nextLocalMidnight(now), project.id);
    const limit = project.daily_budget_usd;
    return {
      limit,
      spent,
      message: limit !== null && spent >= limit ? budgetMessage({ scope: 'project', project, limit_usd: limit, spent_usd: spent }) : null,
      value: error ? (values.daily_budget_usd ?? '') : project.daily_budget_usd === null ? '' : String(project.daily_budget_usd),
      error,
    };
  }

  r.get('/projects/:abbr', async (req, res) =>
    renderBoard(res, req.params.abbr, null, {}, (queryString(req.query.filter, 'filter') ?? '').slice(0, 200)),
  );

  r.post('/projects/:abbr/parallel-coding', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const project = setProjectParallelCoding(store, req.params.abbr, parseParallelCoding(values.parallel_coding ?? ''));
        return withNotice(`/projects/${project.abbreviation}#parallel`, 'saved');
      },
      (error) => renderBoard(res, req.params.abbr, error, values),
      'parallel',
    );
  });

  // the per-project mute: its tickets send no notification (the inbox still counts them)
  r.post('/projects/:abbr/notifications', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const project = setProjectMuted(db, req.params.abbr, values.muted === '1');
        return withNotice(`/projects/${project.abbreviation}#notifications`, project.notifications_muted ? 'muted' : 'unmuted');
      },
      (error) => renderBoard(res, req.params.abbr, error, values),
    );
  });

  r.post('/projects/:abbr/merging', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const project = setProjectMergeSettings(store, req.params.abbr, {
          check_command: values.check_command ?? '',
          check_timeout_minutes: values.check_timeout_minutes ?? '',
          setup_command: values.setup_command ?? '',
          copy_files: values.copy_files ?? '',
        });
        return withNotice(`/projects/${project.abbreviation}#merging`, 'saved');
      },
      (error) => renderBoard(res, req.params.abbr, error, values),
      'merging',
    );
  });

  r.post('/projects/:abbr/budget', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const project = getProject(db, req.params.abbr);
        setProjectBudget(store, project.id, parseBudget(values.daily_budget_usd ?? ''));
        return withNotice(`/projects/${project.abbreviation}#budget`, 'saved');
      },
      (error) => renderBoard(res, req.params.abbr, error, values),
      'budget',
    );
  });

  r.post('/projects/:abbr/tickets', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const ticket = createTicket(store, {
          project: req.params.abbr,
          title: values.title ?? '',
          body: values.body,
          priority: optional(values, 'priority'),
          column: optional(values, 'column') ?? HUMAN,
          createdBy: HUMAN,
        });
        return withNotice(`/projects/${ticket.abbreviation}`, 'filed');
      },
      (error) => renderBoard(res, req.params.abbr, error, values),
      'new',
    );
  });

  r.get('/projects/:abbr/tickets', (req, res) => {
    const project = getProject(db, req.params.abbr);
    const columns = getColumns(db, project.id);
    const column = typeof req.query.column === 'string' && req.query.column ? req.query.column : undefined;
    if (column && !columns.some((c) => c.column_id === column)) throw new UserError(`unknown column "${column}"`, 'column');
    const page = pageNumber(req.query.page);
    const rows = listTickets(db, { project: project.id, column, limit: LIST_PAGE + 1, offset: (page - 1) * LIST_PAGE });
    const total = countTickets(db, { project: project.id, column });
    const base = `/projects/${project.abbreviation}/tickets?${column ? `column=${encodeURIComponent(column)}&` : ''}`;
    const names = new Map(columns.map((c) => [c.column_id, c.name]));
    res.render('projects/tickets.njk', {
      title: `${project.name} tickets`,
      section: 'projects',
      project: { name: project.name, abbreviation: project.abbreviation },
      column: column ? { id: column, name: names.get(column) } : null,
      columns: columns.map((c) => ({ id: c.column_id, name: c.name })),
      bulk: project.status === 'archived' ? null : bulkBar(db, [project.id], `${base}page=${page}`),
      tickets: rows.slice(0, LIST_PAGE).map((t) => ({
        key: t.key,
        title: t.title,
        priority: t.priority,
        column: names.get(t.column_id) ?? t.column_id,
        updatedAt: t.updated_at,
      })),
      total,
      first: (page - 1) * LIST_PAGE + 1,
      last: Math.min(page * LIST_PAGE, total),
      page,
      prev: page > 1 ? `${base}page=${page - 1}` : null,
      next: rows.length > LIST_PAGE ? `${base}page=${page + 1}` : null,
    });
  });

  function renderWorkflow(res: Response, ref: string, error: FormError | null = null): void {
    const project = getProject(db, ref);
    res.render('projects/workflow.njk', {
      title: `${project.name} workflow`,
      section: 'projects',
      project: { name: project.name, abbreviation: project.abbreviation, type: project.project_type_id },
      rows: columnRows(getColumns(db, project.id)),
      agents: agentOptions(listAgentTypes(db)),
      action: `/projects/${project.abbreviation}/workflow`,
      error,
    });
  }

  r.get('/projects/:abbr/workflow', (req, res) => renderWorkflow(res, req.params.abbr));

  r.post('/projects/:abbr/workflow', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const project = getProject(db, req.params.abbr);
        setProjectColumns(store, project.id, columnsFromForm(values));
        return withNotice(`/projects/${project.abbreviation}/workflow`, 'saved');
      },
      (error) => renderWorkflow(res, req.params.abbr, error),
    );
  });

  return r;
}
