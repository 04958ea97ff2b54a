// The HTML pages against the real daemon and real SQLite, driven like a browser without
// JavaScript: every page renders, every form stores what it says (checked through the API, the
// database or the file on disk, not the redirect), bad input re-renders the form with a 4xx and
// the message, user text is escaped and markdown sanitized, and forged or traversal requests fail.
import fs from 'node:fs';
import path from 'node:path';
import { fakeClaude, killAgents, waitFor, WAITING_AGENTS } from './helpers/engine.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { getPage, insertRun, openHomeDb, postForm, sampleTranscript, setRunStatus, token, writeTranscript } from './helpers/web.js';

let d: RunningDaemon;
let csrf: string;

async function registerFolder(name: string, abbreviation: string, type = 'software-dev'): Promise<void> {
  fs.mkdirSync(path.join(d.projectsRoot, name), { recursive: true });
  const r = await d.api('POST', '/api/projects', { path: path.join(d.projectsRoot, name), type, abbreviation });
  expect(r.status).toBe(201);
}

async function fileTicket(project: string, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await d.api('POST', '/api/tickets', { project, title, ...extra });
  expect(r.status).toBe(201);
  return r.body.ticket.key;
}

beforeAll(async () => {
  d = await startTestDaemon({ config: { board: { done_limit: 2 }, ...WAITING_AGENTS }, env: { DISPATCH_CLAUDE_BIN: fakeClaude } });
  csrf = await token(d);
  await registerFolder('alpha', 'al');
});
afterAll(async () => {
  await killAgents(d);
  await d.stop();
});

describe('pages render', () => {
  test('/ redirects to the inbox and every page answers 200 with its content', async () => {
    const key = await fileTicket('al', 'Render check ticket');
    const root = await getPage(d, '/');
    expect(root.status).toBe(302);
    expect(root.location).toBe('/inbox');
    const expectations: [string, string[]][] = [
      ['/inbox?tab=backlog', ['Inbox', 'Render check ticket', 'Send reply', 'No question or note attached.']],
      ['/projects', ['Registered', 'alpha', 'Next check', 'Wake']],
      ['/projects/al', ['alpha', 'Coding Agent', 'File ticket', key]],
      ['/projects/al/tickets', ['Render check ticket']],
      ['/projects/al/workflow', ['Save workflow', 'coding-agent']],
      [`/tickets/${key}`, ['Render check ticket', 'Thread', 'Reply', 'Move']],
      ['/runs', ['Runs']],
      ['/agent-types', ['Agent types', 'coding-agent', 'New agent type']],
      ['/agent-types/code-reviewer', ['Prompt', 'Allowed tools', 'Permission mode']],
      ['/project-types', ['software-dev', 'vps-maintenance', 'Edit columns']],
      ['/settings', ['agents.max_concurrent_global', 'heartbeat.base_interval_seconds', 'restart']],
    ];
    for (const [url, needles] of expectations) {
      const page = await getPage(d, url);
      expect([url, page.status]).toEqual([url, 200]);
      for (const n of needles) expect([url, page.html.includes(n)]).toEqual([url, true]);
      expect(page.html).toMatch(/<span class="count" id="inbox-count"[^>]*>\d+<\/span>/);
    }
  });

  test('unknown pages and tickets render an HTML 404, not JSON', async () => {
    for (const url of ['/nope', '/tickets/al-9999', '/projects/zz', '/runs/no-such-run', '/agent-types/no-such']) {
      const page = await getPage(d, url);
      expect(page.status).toBe(404);
      expect(page.html).toContain('<!doctype html>');
    }
  });

  test('the settings page shows a field for every config leaf', async () => {
    const { body } = await d.api('GET', '/api/config');
    const leaves: string[] = [];
    const walk = (o: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(o)) {
        const name = prefix ? `${prefix}.${k}` : k;
        if (v && typeof v === 'object' && !Array.isArray(v) && k !== 'env') walk(v as Record<string, unknown>, name);
        else leaves.push(name);
      }
    };
    walk(body.file, '');
    const html = (await getPage(d, '/settings')).html;
    for (const leaf of leaves) expect([leaf, html.includes(`name="${leaf}"`)]).toEqual([leaf, true]);
    expect(leaves.length).toBeGreaterThan(15);
  });
});

describe('forms store what they say', () => {
  test('registering an unregistered folder makes it an active project with that abbreviation', async () => {
    fs.mkdirSync(path.join(d.projectsRoot, 'new-site'), { recursive: true });
    expect((await postForm(d, '/projects/discover', { _csrf: csrf })).status).toBe(303);
    const list = await d.api('GET', '/api/projects?status=unregistered');
    const folder = list.body.projects.find((p: { name: string }) => p.name === 'new-site');
    expect(folder).toBeDefined();
    const res = await postForm(d, '/projects/register', {
      _csrf: csrf,
      project_id: String(folder.id),
      type: 'content',
      abbreviation: 'ns',
    });
    expect(res.status).toBe(303);
    expect(res.location).toBe('/projects/ns?done=registered');
    const shown = await d.api('GET', '/api/projects/ns');
    expect(shown.body.project).toMatchObject({ status: 'active', project_type_id: 'content', abbreviation: 'ns' });
    expect(shown.body.columns.map((c: { column_id: string }) => c.column_id)).toEqual(['human', 'writer', 'editor', 'done']);
  });

  test('a bad abbreviation re-renders the projects page with 400 and the message', async () => {
    fs.mkdirSync(path.join(d.projectsRoot, 'bad-abbr'), { recursive: true });
    await postForm(d, '/projects/discover', { _csrf: csrf });
    const folder = (await d.api('GET', '/api/projects?status=unregistered')).body.projects.find(
      (p: { name: string }) => p.name === 'bad-abbr',
    );
    const res = await postForm(d, '/projects/register', {
      _csrf: csrf,
      project_id: String(folder.id),
      type: 'content',
      abbreviation: '9Bad!',
    });
    expect(res.status).toBe(400);
    expect(res.html).toContain('abbreviation must be 1-10 lowercase letters');
    expect(res.html).toContain('Unregistered folders');
    expect((await d.api('GET', `/api/projects/${folder.id}`)).body.project.status).toBe('unregistered');
  });

  test('pause, resume and wake change the project', async () => {
    await registerFolder('pausable', 'pz');
    expect((await postForm(d, '/projects/pz/pause', { _csrf: csrf, stop_running: '0' })).location).toBe('/projects?done=paused');
    expect((await d.api('GET', '/api/projects/pz')).body.project.status).toBe('dormant');
    expect((await postForm(d, '/projects/pz/resume', { _csrf: csrf })).status).toBe(303);
    expect((await d.api('GET', '/api/projects/pz')).body.project.status).toBe('active');
    expect((await postForm(d, '/projects/nosuch/pause', { _csrf: csrf })).status).toBe(404);
    const wake = await postForm(d, '/projects/pz/wake', { _csrf: csrf });
    expect(wake.location).toBe('/projects?done=woken');
  });

  test('the board files a ticket with body, priority and starting column', async () => {
    const res = await postForm(d, '/projects/al/tickets', {
      _csrf: csrf,
      title: 'Add CSV export',
      body: 'Export **all** rows',
      priority: 'high',
      column: 'coding-agent',
    });
    expect(res.status).toBe(303);
    const list = await d.api('GET', '/api/tickets?project=al&column=coding-agent');
    const t = list.body.tickets.find((x: { title: string }) => x.title === 'Add CSV export');
    expect(t).toMatchObject({ priority: 'high', column_id: 'coding-agent', created_by: 'human' });
    expect((await d.api('GET', `/api/tickets/${t.key}`)).body.ticket.body).toBe('Export **all** rows');
    // filing into an agent column woke the project: an agent was started for the ticket
    await waitFor('an agent run', async () => (await d.api('GET', `/api/tickets/${t.key}`)).body.runs.length > 0);
  });

  test('an empty title re-renders the board with 400, the message and what was typed', async () => {
    const before = (await d.api('GET', '/api/tickets?project=al&limit=1000')).body.tickets.length;
    const res = await postForm(d, '/projects/al/tickets', { _csrf: csrf, title: '   ', body: 'keep this text', priority: 'low' });
    expect(res.status).toBe(400);
    expect(res.html).toContain('title must not be empty');
    expect(res.html).toContain('keep this text');
    expect((await d.api('GET', '/api/tickets?project=al&limit=1000')).body.tickets.length).toBe(before);
  });

  test('an inbox reply that picks a column moves the ticket with the reply as its note', async () => {
    const key = await fileTicket('al', 'Which database?');
    const res = await postForm(d, `/inbox/${key}/reply`, { _csrf: csrf, body: 'Use SQLite', column: 'coding-agent', return_to: '/inbox' });
    expect(res.status).toBe(303);
    expect(res.location).toBe('/inbox?done=moved');
    const shown = (await d.api('GET', `/api/tickets/${key}`)).body;
    expect(shown.ticket.column_id).toBe('coding-agent');
    expect(shown.comments.at(-1)).toMatchObject({
      type: 'move',
      from_column: 'human',
      to_column: 'coding-agent',
      body: 'Use SQLite',
      author: 'human',
    });
  });

  test('an inbox reply without a column adds a comment and leaves the ticket in the inbox', async () => {
    const key = await fileTicket('al', 'Just a note');
    const res = await postForm(d, `/inbox/${key}/reply`, { _csrf: csrf, body: 'Thinking about it', column: '' });
    expect(res.status).toBe(303);
    const shown = (await d.api('GET', `/api/tickets/${key}`)).body;
    expect(shown.ticket.column_id).toBe('human');
    expect(shown.comments.at(-1)).toMatchObject({ type: 'comment', body: 'Thinking about it' });
  });

  test('an empty inbox reply answers 400 with the message next to that ticket', async () => {
    const key = await fileTicket('al', 'Empty reply target');
    const res = await postForm(d, `/inbox/${key}/reply`, { _csrf: csrf, body: '', column: 'coding-agent' });
    expect(res.status).toBe(400);
    expect(res.html).toContain('reply is required');
    expect((await d.api('GET', `/api/tickets/${key}`)).body.ticket.column_id).toBe('human');
  });

  test('move buttons move; a stale move (the ticket already left) is refused with 400', async () => {
    const key = await fileTicket('al', 'Move me');
    const res = await postForm(d, `/tickets/${key}/move`, {
      _csrf: csrf,
      column: 'coding-agent',
      from: 'human',
      return_to: '/projects/al',
    });
    expect(res.location).toBe('/projects/al?done=moved');
    expect((await d.api('GET', `/api/tickets/${key}`)).body.ticket.column_id).toBe('coding-agent');
    const stale = await postForm(d, `/tickets/${key}/move`, { _csrf: csrf, column: 'done', from: 'human' });
    expect(stale.status).toBe(400);
    expect(stale.html).toContain('is in &quot;coding-agent&quot;, not &quot;human&quot;');
    expect((await d.api('GET', `/api/tickets/${key}`)).body.ticket.column_id).toBe('coding-agent');
  });

  test('a return path to another site is ignored', async () => {
    const key = await fileTicket('al', 'Open redirect target');
    const res = await postForm(d, `/tickets/${key}/move`, { _csrf: csrf, column: 'done', return_to: '//evil.example/x' });
    expect(res.location).toBe(`/tickets/${key}?done=moved`);
  });

  test('the ticket page edits title, priority and body and replies', async () => {
    const key = await fileTicket('al', 'Old title');
    expect(
      (await postForm(d, `/tickets/${key}/edit`, { _csrf: csrf, title: 'New title', priority: 'urgent', body: 'new body' })).status,
    ).toBe(303);
    expect((await d.api('GET', `/api/tickets/${key}`)).body.ticket).toMatchObject({
      title: 'New title',
      priority: 'urgent',
      body: 'new body',
    });
    const bad = await postForm(d, `/tickets/${key}/edit`, { _csrf: csrf, title: 'x', priority: 'whenever' });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('priority must be one of');
    expect((await postForm(d, `/tickets/${key}/reply`, { _csrf: csrf, body: 'Looks good' })).status).toBe(303);
    expect((await d.api('GET', `/api/tickets/${key}`)).body.comments.at(-1)).toMatchObject({ type: 'comment', body: 'Looks good' });
  });

  test('the ticket page lists findings critical first and highlights questions', async () => {
    const key = await fileTicket('al', 'Reviewed ticket');
    await d.api('POST', `/api/tickets/${key}/findings`, { severity: 'low', title: 'Nit: naming', body: 'rename x' });
    await d.api('POST', `/api/tickets/${key}/findings`, { severity: 'critical', title: 'SQL injection', body: 'in search' });
    await d.api('POST', `/api/tickets/${key}/comments`, { type: 'block', body: 'Should guests see prices?' });
    const html = (await getPage(d, `/tickets/${key}`)).html;
    const findings = html.slice(html.indexOf('id="findings-h"'), html.indexOf('id="thread-h"'));
    expect(findings.indexOf('SQL injection')).toBeLessThan(findings.indexOf('Nit: naming'));
    expect(findings).toContain('sev-critical');
    expect(html).toMatch(/class="entry entry-block"[\s\S]*Should guests see prices\?/);
  });

  test('the done column shows the newest board.done_limit cards and links to the full list', async () => {
    await registerFolder('donecol', 'dc');
    for (const n of [1, 2, 3]) await fileTicket('dc', `Finished ${n}`, { column: 'done' });
    const html = (await getPage(d, '/projects/dc')).html;
    const done = html.slice(html.indexOf('data-column="done"'));
    expect(done).toContain('Finished 3');
    expect(done).toContain('Finished 2');
    expect(done).not.toContain('Finished 1');
    expect(done).toContain('/projects/dc/tickets?column=done');
    const all = (await getPage(d, '/projects/dc/tickets?column=done')).html;
    for (const n of [1, 2, 3]) expect(all).toContain(`Finished ${n}`);
  });

  test('the workflow editor removes a column (its tickets go to human with a note) and reorders', async () => {
    await registerFolder('flow', 'fl');
    const key = await fileTicket('fl', 'In security review', { column: 'security-reviewer' });
    const cols = (await d.api('GET', '/api/projects/fl')).body.columns as {
      column_id: string;
      name: string;
      agent_type_id: string | null;
    }[];
    const fields: Record<string, string> = { _csrf: csrf };
    cols.forEach((c, i) => {
      fields[`c${i}_id`] = c.column_id;
      fields[`c${i}_name`] = c.name;
      fields[`c${i}_pos`] = String(i + 1);
      if (c.agent_type_id) fields[`c${i}_agent`] = c.agent_type_id;
    });
    // coding-agent (index 1) after code-reviewer (index 2); remove security-reviewer (index 3)
    fields.c1_pos = '5';
    fields.c3_remove = 'on';
    expect((await postForm(d, '/projects/fl/workflow', fields)).status).toBe(303);
    const after = (await d.api('GET', '/api/projects/fl')).body.columns.map((c: { column_id: string }) => c.column_id);
    expect(after).toEqual(['human', 'code-reviewer', 'coding-agent', 'done']);
    const t = (await d.api('GET', `/api/tickets/${key}`)).body;
    expect(t.ticket.column_id).toBe('human');
    expect(t.comments.at(-1).type).toBe('system');
    fields.new_agent = 'no-such-agent';
    const bad = await postForm(d, '/projects/fl/workflow', { ...fields, c3_remove: '' });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('unknown agent type');
  });

  test('project types: add a column to a type and create a new type', async () => {
    const type = (await d.api('GET', '/api/project-types/research')).body.project_type;
    const fields: Record<string, string> = { _csrf: csrf, name: type.name };
    type.columns.forEach((c: { column_id: string; name: string; agent_type_id: string | null }, i: number) => {
      fields[`c${i}_id`] = c.column_id;
      fields[`c${i}_name`] = c.name;
      fields[`c${i}_pos`] = String(i + 1);
      if (c.agent_type_id) fields[`c${i}_agent`] = c.agent_type_id;
    });
    fields.new_agent = 'editor';
    fields.new_pos = '2';
    expect((await postForm(d, '/project-types/research', fields)).status).toBe(303);
    const after = (await d.api('GET', '/api/project-types/research')).body.project_type.columns.map(
      (c: { column_id: string }) => c.column_id,
    );
    expect(after).toEqual(['human', 'researcher', 'editor', 'done']);
    expect((await postForm(d, '/project-types', { _csrf: csrf, id: 'ops', name: 'Ops' })).status).toBe(303);
    expect((await d.api('GET', '/api/project-types/ops')).body.project_type.columns).toHaveLength(2);
    const dup = await postForm(d, '/project-types', { _csrf: csrf, id: 'ops' });
    expect(dup.status).toBe(409);
    expect(dup.html).toContain('already exists');
  });

  test('agent type form saves the prompt file and settings; preview saves nothing', async () => {
    const file = path.join(d.home, 'prompts', 'writer.md');
    const base = {
      _csrf: csrf,
      name: 'Writer',
      description: 'Writes',
      model: 'haiku',
      permission_mode: 'acceptEdits',
      timeout_minutes: '45',
      max_retries: '1',
      allowed_tools: 'Read\nBash(node:*)\n',
    };
    const preview = await postForm(d, '/agent-types/writer', {
      ...base,
      intent: 'preview',
      prompt: '# Draft heading\n\n<script>x()</script>',
    });
    expect(preview.status).toBe(200);
    expect(preview.html).toContain('<h1>Draft heading</h1>');
    expect(preview.html).not.toContain('<script>x()');
    expect(fs.readFileSync(file, 'utf8')).not.toContain('Draft heading');
    const saved = await postForm(d, '/agent-types/writer', { ...base, intent: 'save', prompt: '# Writer\r\n\r\nWrite well.\r\n' });
    expect(saved.status).toBe(303);
    expect(fs.readFileSync(file, 'utf8')).toBe('# Writer\n\nWrite well.\n');
    const api = (await d.api('GET', '/api/agent-types/writer')).body.agent_type;
    expect(api).toMatchObject({ model: 'haiku', timeout_minutes: 45, max_retries: 1, allowed_tools: ['Read', 'Bash(node:*)'] });
    const bad = await postForm(d, '/agent-types/writer', { ...base, timeout_minutes: 'soon', prompt: 'should not land' });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('timeout_minutes must be a whole number');
    expect(bad.html).toContain('should not land');
    expect(fs.readFileSync(file, 'utf8')).toBe('# Writer\n\nWrite well.\n');
  });

  test('creating an agent type writes its prompt file', async () => {
    const res = await postForm(d, '/agent-types', {
      _csrf: csrf,
      id: 'translator',
      name: 'Translator',
      model: 'sonnet',
      permission_mode: 'acceptEdits',
    });
    expect(res.location).toBe('/agent-types/translator?done=created');
    expect(fs.existsSync(path.join(d.home, 'prompts', 'translator.md'))).toBe(true);
    expect((await d.api('GET', '/api/agent-types/translator')).body.agent_type.name).toBe('Translator');
    expect((await postForm(d, '/agent-types', { _csrf: csrf, id: 'Bad Id', name: 'x', model: 'sonnet' })).status).toBe(400);
  });

  test('settings save to config.json and the live config; bad values name the field and change nothing', async () => {
    const page = (await getPage(d, '/settings')).html;
    const fields: Record<string, string> = {};
    for (const m of page.matchAll(/<(?:input|textarea|select)[^>]*name="([^"]+)"[^>]*>/g)) fields[m[1]!] = '';
    const values = (await d.api('GET', '/api/config')).body.file;
    const form: Record<string, string> = { _csrf: csrf };
    const flat = (o: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(o)) {
        const name = prefix ? `${prefix}.${k}` : k;
        if (k === 'env')
          form[name] = Object.entries(v as Record<string, string>)
            .map(([a, b]) => `${a}=${b}`)
            .join('\n');
        else if (v && typeof v === 'object') flat(v as Record<string, unknown>, name);
        else if (typeof v === 'boolean') {
          if (v) form[name] = 'on';
        } else if (name !== 'ai.api_key' && name !== 'api_token') form[name] = String(v);
      }
    };
    flat(values, '');
    expect(Object.keys(fields)).toEqual(expect.arrayContaining(Object.keys(form).filter((k) => k !== '_csrf')));
    const ok = await postForm(d, '/settings', {
      ...form,
      'agents.max_concurrent_global': '7',
      'agents.parallel_coding': 'on',
      'agents.env': 'IS_SANDBOX=1\nFOO=a=b',
      api_token: '',
    });
    expect(ok.status).toBe(303);
    const file = JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8'));
    expect(file.agents).toMatchObject({ max_concurrent_global: 7, parallel_coding: true, env: { IS_SANDBOX: '1', FOO: 'a=b' } });
    expect(file.board.done_limit).toBe(2);
    expect((await d.api('GET', '/api/config')).body.config.agents.max_concurrent_global).toBe(7);
    const bad = await postForm(d, '/settings', { ...form, 'agents.max_concurrent_global': '0' });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('<span class="field-error">The global limit must be at least 1</span>');
    expect(bad.html).not.toMatch(/config: agents|Too small/);
    const badEnv = await postForm(d, '/settings', { ...form, 'agents.env': 'not a pair' });
    expect(badEnv.status).toBe(400);
    expect(badEnv.html).toContain('Line 1 of the agent environment must look like NAME=value');
    expect(JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).agents.max_concurrent_global).toBe(7);
  });

  test('secrets are never shown and are kept when left blank', async () => {
    const form = { _csrf: csrf, 'ai.auth_method': 'api_key', 'ai.api_key': 'sk-secret-123', 'board.done_limit': '2' };
    expect((await postForm(d, '/settings', form)).status).toBe(303);
    const html = (await getPage(d, '/settings')).html;
    expect(html).not.toContain('sk-secret-123');
    expect((await postForm(d, '/settings', { ...form, 'ai.api_key': '' })).status).toBe(303);
    expect(JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).ai.api_key).toBe('sk-secret-123');
    expect(
      (await postForm(d, '/settings', { _csrf: csrf, 'ai.auth_method': 'oauth', 'ai.api_key__clear': 'on', 'board.done_limit': '2' }))
        .status,
    ).toBe(303);
    expect(JSON.parse(fs.readFileSync(path.join(d.home, 'config.json'), 'utf8')).ai).toMatchObject({ auth_method: 'oauth', api_key: '' });
  });
});

describe('escaping and sanitizing', () => {
  test('script-looking titles, bodies and comments render inert everywhere', async () => {
    const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    const key = await fileTicket('al', evil, {
      body: `# Body\n\n${evil}\n\n[click](javascript:alert(3)) <a href="JAVASCRIPT:alert(4)">x</a> <svg onload=alert(5)>`,
    });
    await d.api('POST', `/api/tickets/${key}/comments`, { type: 'block', body: `${evil} [y](javascript:alert(6))` });
    await d.api('POST', `/api/tickets/${key}/findings`, { severity: 'high', title: evil, body: evil });
    for (const url of ['/inbox?tab=backlog', '/projects/al', `/tickets/${key}`, '/projects/al/tickets']) {
      const html = (await getPage(d, url)).html;
      expect([url, html.includes('<script>alert')]).toEqual([url, false]);
      // an attribute named on… on any real tag (quoted attribute values are skipped over)
      expect([url, /<[a-z][\w-]*(?:\s+[\w-]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']+))?)*\s+on\w+\s*=/i.exec(html)?.[0] ?? null]).toEqual([
        url,
        null,
      ]);
      expect([url, /href\s*=\s*["']?\s*javascript:/i.test(html)]).toEqual([url, false]);
      expect([url, html.includes('&lt;script&gt;alert(1)&lt;/script&gt;')]).toEqual([url, true]);
    }
    const ticket = (await getPage(d, `/tickets/${key}`)).html;
    expect(ticket).toContain('<h1>Body</h1>');
  });

  test('responses carry a CSP that forbids inline scripts, and pages have no inline script or handler', async () => {
    const res = await fetch(`${d.url}/inbox`, { headers: { accept: 'text/html' } });
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).toContain('<script src="/static/app.js" defer></script>');
    const js = await fetch(`${d.url}/static/app.js`);
    expect(js.status).toBe(200);
    expect((await fetch(`${d.url}/static/app.css`)).status).toBe(200);
    expect((await fetch(`${d.url}/static/../package.json`)).status).toBe(404);
    expect((await fetch(`${d.url}/static/%2e%2e%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${d.url}/static/missing.css`)).status).toBe(404);
  });
});

describe('forged requests', () => {
  test('a cross-origin form post is refused and stores nothing', async () => {
    const before = (await d.api('GET', '/api/tickets?project=al&limit=1000')).body.tickets.length;
    const res = await postForm(d, '/projects/al/tickets', { _csrf: csrf, title: 'forged' }, { origin: 'http://evil.example' });
    expect(res.status).toBe(403);
    const site = await postForm(d, '/projects/al/tickets', { _csrf: csrf, title: 'forged' }, { 'sec-fetch-site': 'cross-site' });
    expect(site.status).toBe(403);
    expect((await d.api('GET', '/api/tickets?project=al&limit=1000')).body.tickets.length).toBe(before);
  });

  test('a post without the form token, or with a wrong one, is refused and stores nothing', async () => {
    const before = (await d.api('GET', '/api/tickets?project=al&limit=1000')).body.tickets.length;
    const missing = await postForm(d, '/projects/al/tickets', { title: 'no token' });
    expect(missing.status).toBe(403);
    expect(missing.html).toContain('Form token missing or stale');
    expect((await postForm(d, '/projects/al/tickets', { _csrf: 'guess', title: 'bad token' })).status).toBe(403);
    expect((await postForm(d, '/settings', { 'agents.max_concurrent_global': '99' })).status).toBe(403);
    expect((await d.api('GET', '/api/tickets?project=al&limit=1000')).body.tickets.length).toBe(before);
    expect((await d.api('GET', '/api/config')).body.config.agents.max_concurrent_global).not.toBe(99);
  });
});

describe('runs and transcripts', () => {
  test('the transcript renders as a conversation with tool calls, errors and the final result', async () => {
    const key = await fileTicket('al', 'Transcript ticket');
    const file = insertRun(d, { id: 'run-sample-1', ticketKey: key, status: 'success', costUsd: 0.105228 })!;
    writeTranscript(file, fs.readFileSync(sampleTranscript, 'utf8'));
    const html = (await getPage(d, '/runs/run-sample-1')).html;
    expect(html).toContain('I&#39;ll record progress on abc-7.');
    expect(html).toContain('<span class="tx-label">Bash <span class="tx-desc">· Comment on the ticket</span></span>');
    expect(html).toContain('<span class="tx-prompt" aria-hidden="true">$ </span>node ticket.cjs comment abc-7');
    expect(html).toMatch(/tx-result is-error[\s\S]*No such file or directory/);
    expect(html).toContain('Ticket abc-7 is done.');
    expect(html).toContain('$0.1052');
    expect(html).toContain('34,336');
    expect(html).not.toContain('data-events');
    const list = (await getPage(d, '/runs?status=success')).html;
    expect(list).toContain('run-sample-1');
    expect((await getPage(d, '/runs?status=running')).html).not.toContain('run-sample-1');
    expect((await getPage(d, '/runs?status=bogus')).status).toBe(400);
    expect((await getPage(d, `/tickets/${key}`)).html).toContain('/runs/run-sample-1');
  });

  test('transcript text is escaped', async () => {
    const key = await fileTicket('al', 'Escaped transcript');
    const file = insertRun(d, { id: 'run-escape', ticketKey: key, status: 'success' })!;
    const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    writeTranscript(
      file,
      [
        { type: 'assistant', message: { content: [{ type: 'text', text: evil }] } },
        { type: 'assistant', message: { content: [{ type: 'tool_use', id: 't1', name: '<b>Bash</b>', input: { command: evil } }] } },
        { type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: 't1', content: evil, is_error: true }] } },
      ]
        .map((l) => JSON.stringify(l))
        .join('\n') + '\nnot json <script>alert(3)</script>\n',
    );
    const html = (await getPage(d, '/runs/run-escape')).html;
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>Bash</b>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  test('a huge transcript is capped and the page says so', async () => {
    const key = await fileTicket('al', 'Huge transcript');
    const file = insertRun(d, { id: 'run-huge', ticketKey: key, status: 'success' })!;
    const line = JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text: 'x'.repeat(2000) }] } }) + '\n';
    writeTranscript(
      file,
      `${JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text: 'FIRST LINE MARKER' }] } })}\n${line.repeat(1500)}`,
    );
    const html = (await getPage(d, '/runs/run-huge')).html;
    expect(html).toContain('only the newest part is shown');
    expect(html).not.toContain('FIRST LINE MARKER');
    expect(html.length).toBeLessThan(1.5 * 1024 * 1024);
  });

  test('run ids and recorded paths cannot reach files outside the runs folder', async () => {
    const key = await fileTicket('al', 'Traversal');
    for (const id of ['..%2F..%2Fconfig.json', 'a%2F..%2F..%2Ftasks.db', '..%5C..%5Ctasks.db']) {
      const page = await getPage(d, `/runs/${id}`);
      expect([id, page.status]).toEqual([id, 404]);
      expect((await getPage(d, `/runs/${id}/events`)).status).toBe(404);
    }
    const secret = path.join(d.root, 'secret.txt');
    fs.writeFileSync(secret, JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text: 'TOP SECRET' }] } }) + '\n');
    insertRun(d, { id: 'run-outside', ticketKey: key, status: 'success', transcriptPath: secret });
    insertRun(d, {
      id: 'run-dotdot',
      ticketKey: key,
      status: 'success',
      transcriptPath: path.join(d.home, 'artifacts', 'runs', '..', '..', '..', 'secret.txt'),
    });
    fs.mkdirSync(path.join(d.home, 'artifacts', 'runs'), { recursive: true });
    fs.symlinkSync(secret, path.join(d.home, 'artifacts', 'runs', 'link.log'));
    insertRun(d, {
      id: 'run-symlink',
      ticketKey: key,
      status: 'success',
      transcriptPath: path.join(d.home, 'artifacts', 'runs', 'link.log'),
    });
    for (const id of ['run-outside', 'run-dotdot', 'run-symlink']) {
      const page = await getPage(d, `/runs/${id}`);
      expect([id, page.status]).toEqual([id, 400]);
      expect(page.html).not.toContain('TOP SECRET');
      expect(page.html).toContain('outside the runs folder');
    }
  });

  test('server-sent events tail a running transcript by byte offset and end when the run ends', async () => {
    const key = await fileTicket('al', 'Live run');
    const file = insertRun(d, { id: 'run-live', ticketKey: key, status: 'running' })!;
    const lines = fs.readFileSync(sampleTranscript, 'utf8').split('\n').filter(Boolean);
    writeTranscript(file, lines.slice(0, 2).join('\n') + '\n');
    const page = (await getPage(d, '/runs/run-live')).html;
    expect(page).toContain('data-events="/runs/run-live/events"');
    expect(page).toContain('<meta http-equiv="refresh" content="5">');
    const offset = Number(/data-offset="(\d+)"/.exec(page)![1]);
    expect(offset).toBe(fs.statSync(file).size);

    const controller = new AbortController();
    const res = await fetch(`${d.url}/runs/run-live/events?offset=${offset}`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let received = '';
    const readUntil = async (needle: string) => {
      while (!received.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) break;
        received += Buffer.from(value).toString('utf8');
      }
      return received.includes(needle);
    };
    // half a line is not sent until it is complete
    fs.appendFileSync(file, lines[2]!.slice(0, 40));
    fs.appendFileSync(file, lines[2]!.slice(40) + '\n' + lines[3] + '\n');
    expect(await readUntil('Comment on the ticket')).toBe(true);
    expect(received).toContain('ticket ok comment abc-7 started');
    expect(received).not.toContain("I'll record progress");
    fs.appendFileSync(file, lines.slice(4).join('\n') + '\n');
    setRunStatus(d, 'run-live', 'success');
    expect(await readUntil('event: end')).toBe(true);
    expect(received).toContain('Ticket abc-7 is done.');
    controller.abort();
  });

  test('the kill button asks the engine and reports when the run is not running here', async () => {
    const key = await fileTicket('al', 'Kill target');
    insertRun(d, { id: 'run-kill', ticketKey: key, status: 'running', transcriptPath: null });
    expect((await getPage(d, `/tickets/${key}`)).html).toContain('action="/runs/run-kill/kill"');
    expect((await getPage(d, '/runs?status=running')).html).toContain('action="/runs/run-kill/kill"');
    const res = await postForm(d, '/runs/run-kill/kill', { _csrf: csrf, return_to: `/tickets/${key}`, confirm: '1' });
    expect(res.status).toBe(303);
    expect(res.location).toBe(`/tickets/${key}?done=not-running`);
    expect((await getPage(d, res.location!)).html).toContain('not running here');
    expect((await postForm(d, '/runs/run-kill/kill', {})).status).toBe(403);
    setRunStatus(d, 'run-kill', 'killed');
  });

  test('the runs list paginates', async () => {
    const key = await fileTicket('al', 'Many runs');
    const db = openHomeDb(d);
    db.close();
    for (let i = 0; i < 55; i++)
      insertRun(d, {
        id: `run-page-${String(i).padStart(2, '0')}`,
        ticketKey: key,
        status: 'failed',
        transcriptPath: null,
        createdAt: 1_000_000 + i,
      });
    const first = (await getPage(d, '/runs?status=failed')).html;
    expect(first).toContain('run-page-54');
    expect(first).not.toContain('run-page-04');
    expect(first).toContain('/runs?status=failed&amp;page=2');
    const second = (await getPage(d, '/runs?status=failed&page=2')).html;
    expect(second).toContain('run-page-04');
    expect(second).not.toContain('run-page-54');
  });
});
