// Health checks through the real daemon and real HTTP: a claude_binary that is missing, cannot be
// executed, fails or hangs on --version, and a projects_root that is gone show as a banner on every
// page, in /api/health and in `dispatch daemon status`; a settings save that points at something
// missing is refused unless saved anyway. The disk checks run on a small real tmpfs.
import fs from 'node:fs';
import path from 'node:path';
import { defaultConfig } from '../lib/config.js';
import { runHealthChecks, type HealthCheck, type HealthReport } from '../lib/health.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { fakeClaude, waitFor } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';
import { csrfOf, getPage, postForm } from './helpers/web.js';
import { fillDisk, mountTmpfs, tmpfsPrefix, unmountTmpfs } from './helpers/tmpfs.js';

let d: RunningDaemon | null = null;
afterEach(async () => {
  await d?.stop();
  d = null;
});

const report = async (daemon: RunningDaemon): Promise<HealthReport> => (await daemon.api('GET', '/api/health')).body.health;
const check = (r: HealthReport, id: HealthCheck['id']) => r.checks.find((c) => c.id === id)!;
/** The first report whose claude_binary check satisfies `ok` (checks run in the background). */
const reportWhere = (daemon: RunningDaemon, what: string, ok: (r: HealthReport) => boolean, timeoutMs = 60_000) =>
  waitFor(
    what,
    async () => {
      const r = await report(daemon);
      return r.checked_at !== null && ok(r) ? r : null;
    },
    timeoutMs,
  );
const PAGES = ['/inbox', '/projects', '/runs', '/costs', '/queues', '/agent-types', '/settings'];

test('a missing claude_binary: a banner on every page and in dispatch daemon status (text and --json), until the setting fixes it', async () => {
  const missing = path.join(tempDir(), 'no-such-claude');
  d = await startTestDaemon({ config: { claude_binary: missing } });
  const r = await reportWhere(d, 'the first checks', () => true);
  expect(check(r, 'claude_binary')).toEqual({
    id: 'claude_binary',
    level: 'error',
    message: `claude_binary ${missing} does not exist`,
    fix: 'install the claude CLI, or set claude_binary in Settings (or DISPATCH_CLAUDE_BIN) to its path',
  });
  expect(r.problems[0]).toEqual(check(r, 'claude_binary'));
  expect(check(r, 'projects_root')).toMatchObject({ level: 'ok', message: `projects_root ${d.projectsRoot} is readable` });
  expect(check(r, 'data_home')).toMatchObject({ level: 'ok', message: `the data home ${d.home} is writable` });
  expect(check(r, 'disk_space').message).toMatch(/ free on the disk holding /);

  for (const p of PAGES) {
    const page = await getPage(d, p);
    expect(page.status).toBe(200);
    expect(page.html).toContain('data-health-banner');
    const line = `<strong>Health check failed: claude_binary ${missing} does not exist</strong>`;
    expect(page.html).toContain(`<li data-health-check="claude_binary" data-level="error">${line}`);
    expect(page.html).toContain('Fix: install the claude CLI, or set claude_binary in Settings');
  }

  const status = d.cli(['daemon', 'status']);
  expect(status.status).toBe(0);
  expect(status.stdout).toContain(
    `health check failed: claude_binary ${missing} does not exist (fix: install the claude CLI, or set claude_binary`,
  );
  const json = JSON.parse(d.cli(['daemon', 'status', '--json']).stdout);
  expect(json.health.problems[0]).toEqual(check(r, 'claude_binary'));

  // the banner's "Check again" runs them now and goes back to the page
  const inbox = await getPage(d, '/inbox');
  const again = await postForm(d, '/health/check', { _csrf: csrfOf(inbox.html), return_to: '/projects' });
  expect(again.status).toBe(303);
  expect(again.location).toBe('/projects?done=checked');
  expect((await report(d)).checked_at).toBeGreaterThan(r.checked_at!);

  // pointing the setting at a working CLI clears it: the settings change runs the checks again
  expect((await d.api('PATCH', '/api/config', { claude_binary: fakeClaude })).status).toBe(200);
  const fixed = await reportWhere(d, 'the binary answering', (x) => check(x, 'claude_binary').level === 'ok');
  expect(check(fixed, 'claude_binary').message).toBe(`claude_binary ${fakeClaude}: 2.1.197 (Claude Code)`);
  const page = await getPage(d, '/inbox');
  expect(page.html).not.toContain('data-health-check="claude_binary"');
  expect(d.cli(['daemon', 'status']).stdout).not.toContain('claude_binary');
}, 120_000);

test('a claude_binary that cannot be executed, exits non-zero or hangs on --version is reported; the hang within the timeout', async () => {
  const dir = tempDir();
  const plain = path.join(dir, 'plain');
  fs.writeFileSync(plain, '#!/bin/sh\necho "2.1.197 (Claude Code)"\n', { mode: 0o644 });
  const failing = path.join(dir, 'failing');
  fs.writeFileSync(failing, '#!/bin/sh\necho "no configuration found" >&2\nexit 3\n', { mode: 0o755 });
  const pidFile = path.join(dir, 'hang.pid');
  const hanging = path.join(dir, 'hanging');
  fs.writeFileSync(hanging, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 600\n`, { mode: 0o755 });
  d = await startTestDaemon({ config: { claude_binary: fakeClaude } });
  const first = await reportWhere(d, 'the first checks', () => true);
  expect(check(first, 'claude_binary')).toMatchObject({ level: 'ok', message: `claude_binary ${fakeClaude}: 2.1.197 (Claude Code)` });

  // a file that may not be executed is refused by a save, unless saved anyway
  const refused = await d.api('PATCH', '/api/config', { claude_binary: plain });
  expect(refused).toEqual({
    status: 400,
    body: {
      error: `claude_binary: ${plain} is not executable; not saved (send "save_anyway": true to save it all the same)`,
      field: 'claude_binary',
    },
  });
  expect((await d.api('PATCH', '/api/config', { claude_binary: plain, save_anyway: true })).status).toBe(200);
  const notExecutable = (await d.api('POST', '/api/health/check')).body as HealthReport;
  expect(check(notExecutable, 'claude_binary')).toMatchObject({ level: 'error', message: `claude_binary ${plain} is not executable` });

  expect((await d.api('PATCH', '/api/config', { claude_binary: failing })).status).toBe(200);
  const failed = (await d.api('POST', '/api/health/check')).body as HealthReport;
  expect(check(failed, 'claude_binary')).toEqual({
    id: 'claude_binary',
    level: 'error',
    message: `claude_binary ${failing} exited with code 3 on --version: no configuration found`,
    fix: `check that ${failing} is the claude CLI and that "${failing} --version" works in a terminal`,
  });

  // a binary that never answers: reported after the 10 s timeout, its process killed, the daemon answering meanwhile
  expect((await d.api('PATCH', '/api/config', { claude_binary: hanging })).status).toBe(200);
  await waitFor('the hanging binary started', () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '');
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  expect((await d.api('GET', '/api/health')).status).toBe(200);
  expect((await getPage(d, '/inbox')).status).toBe(200);
  const hung = await reportWhere(d, 'the hang reported', (x) => check(x, 'claude_binary').message.includes(hanging));
  expect(check(hung, 'claude_binary')).toMatchObject({
    level: 'error',
    message: `claude_binary ${hanging} did not answer --version within 10 s`,
  });
  await waitFor('the hanging process killed', () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  expect(d.cli(['daemon', 'status']).stdout).toContain(
    `health check failed: claude_binary ${hanging} did not answer --version within 10 s`,
  );
}, 120_000);

test('the settings page and the API refuse a claude_binary or projects_root that points at nothing, unless saved anyway', async () => {
  d = await startTestDaemon({ config: { claude_binary: fakeClaude } });
  const file = path.join(d.home, 'config.json');
  const missing = path.join(tempDir(), 'gone', 'claude');
  const page = await getPage(d, '/settings');
  expect(page.html).toContain('<input type="checkbox" name="save_anyway" id="f-save_anyway"> Save anyway</label>');
  const fields = { _csrf: csrfOf(page.html), claude_binary: missing, 'agents.max_concurrent_global': '7' };
  const before = fs.readFileSync(file, 'utf8');

  const refused = await postForm(d, '/settings', fields);
  expect(refused.status).toBe(400);
  expect(refused.html).toContain(
    `<span class="field-error">claude_binary: ${missing} does not exist; not saved (tick &quot;save anyway&quot; to save it all the same)</span>`,
  );
  expect(fs.readFileSync(file, 'utf8')).toBe(before);

  const saved = await postForm(d, '/settings', { ...fields, save_anyway: 'on' });
  expect(saved.status).toBe(303);
  expect(saved.location).toBe('/settings?done=saved');
  expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ claude_binary: missing, agents: { max_concurrent_global: 7 } });
  // saved anyway, so reported: the save ran the checks again
  await reportWhere(
    d,
    'the missing binary reported',
    (x) => check(x, 'claude_binary').message === `claude_binary ${missing} does not exist`,
  );
  expect((await getPage(d, '/projects')).html).toContain(`Health check failed: claude_binary ${missing} does not exist`);
  // an unchanged value is not checked again: other fields still save
  expect((await d.api('PATCH', '/api/config', { claude_binary: missing, board: { done_limit: 40 } })).status).toBe(200);

  const gone = path.join(tempDir(), 'no-projects-here');
  const api = await d.api('PATCH', '/api/config', { projects_root: gone });
  expect(api).toEqual({
    status: 400,
    body: {
      error: `projects_root: ${gone} does not exist; not saved (send "save_anyway": true to save it all the same)`,
      field: 'projects_root',
    },
  });
  expect((await d.api('PATCH', '/api/config', { projects_root: file })).body).toEqual({
    error: `projects_root: ${file} is not a folder; not saved (send "save_anyway": true to save it all the same)`,
    field: 'projects_root',
  });
  expect((await d.api('PATCH', '/api/config', { projects_root: gone, save_anyway: 'yes' })).body).toEqual({
    error: 'save_anyway must be true or false',
    field: 'save_anyway',
  });
  expect(JSON.parse(fs.readFileSync(file, 'utf8')).projects_root).not.toBe(gone);
  expect((await d.api('PATCH', '/api/config', { projects_root: gone, save_anyway: true })).status).toBe(200);
  expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ projects_root: gone, board: { done_limit: 40 } });
  expect(JSON.parse(fs.readFileSync(file, 'utf8'))).not.toHaveProperty('save_anyway');
}, 120_000);

test('a projects_root that disappears is reported on the pages and by dispatch daemon status, and clears when it is back', async () => {
  d = await startTestDaemon({ env: { DISPATCH_CLAUDE_BIN: fakeClaude } });
  await reportWhere(d, 'the first checks', () => true);
  fs.rmSync(d.projectsRoot, { recursive: true, force: true });
  const r = (await d.api('POST', '/api/health/check')).body as HealthReport;
  expect(r.problems).toContainEqual({
    id: 'projects_root',
    level: 'error',
    message: `projects_root ${d.projectsRoot} does not exist`,
    fix: 'create it, or set projects_root in Settings (or DISPATCH_PROJECTS_ROOT) to the folder holding your projects',
  });
  expect((await getPage(d, '/projects')).html).toContain(`Health check failed: projects_root ${d.projectsRoot} does not exist`);
  expect(d.cli(['daemon', 'status']).stdout).toContain(
    `health check failed: projects_root ${d.projectsRoot} does not exist (fix: create it`,
  );

  fs.mkdirSync(d.projectsRoot);
  const back = (await d.api('POST', '/api/health/check')).body as HealthReport;
  expect(check(back, 'projects_root').level).toBe('ok');
  expect((await getPage(d, '/projects')).html).not.toContain('data-health-check="projects_root"');
}, 120_000);

test('the periodic round asks an unchanged binary that answered well no second time; a changed or failing one again', async () => {
  const dir = tempDir();
  const calls = path.join(dir, 'calls');
  const binary = path.join(dir, 'claude');
  const script = (version: string, code = 0) => `#!/bin/sh\necho x >> '${calls}'\necho "${version} (Claude Code)"\nexit ${code}\n`;
  fs.writeFileSync(binary, script('2.1.197'), { mode: 0o755 });
  const config = { ...defaultConfig(), claude_binary: binary, projects_root: dir };
  const asked = () => fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean).length;

  const first = await runHealthChecks({ config, home: dir });
  expect(first.checks[0]).toMatchObject({ id: 'claude_binary', level: 'ok', message: `claude_binary ${binary}: 2.1.197 (Claude Code)` });
  const again = await runHealthChecks({ config, home: dir, known: first.version });
  expect(again.version).toEqual(first.version);
  expect(asked()).toBe(1);

  // a new file (an upgrade) is asked again
  fs.writeFileSync(binary + '.new', script('2.1.328', 2), { mode: 0o755 });
  fs.renameSync(binary + '.new', binary);
  const changed = await runHealthChecks({ config, home: dir, known: again.version });
  expect(asked()).toBe(2);
  expect(changed.checks[0]).toMatchObject({
    level: 'error',
    message: `claude_binary ${binary} exited with code 2 on --version: 2.1.328 (Claude Code)`,
  });
  // and one whose last answer was bad is asked every time
  await runHealthChecks({ config, home: dir, known: changed.version });
  expect(asked()).toBe(3);
}, 60_000);

(tmpfsPrefix ? test : test.skip)(
  'a small disk under the data home is a warning; a full one, an error: nothing can be saved',
  async () => {
    const root = tempDir();
    const home = path.join(root, 'home');
    mountTmpfs(home, '16m');
    try {
      const config = { ...defaultConfig(), claude_binary: fakeClaude, projects_root: root };
      const byId = (checks: HealthCheck[]) => Object.fromEntries(checks.map((c) => [c.id, c]));
      const small = byId((await runHealthChecks({ config, home })).checks);
      expect(small.disk_space!.level).toBe('warn');
      expect(small.disk_space!.message).toMatch(new RegExp(`^only 1[56] MB free on the disk holding ${home}$`));
      expect(small.disk_space!.fix).toBe('free some space (at least 1.0 GB): the database, logs and transcripts live there');
      expect(small.data_home!.level).toBe('ok');
      expect(small.claude_binary!.level).toBe('ok');

      fillDisk(path.join(home, 'filler'));
      const full = byId((await runHealthChecks({ config, home })).checks);
      expect(full.data_home).toEqual({
        id: 'data_home',
        level: 'error',
        message: `the data home ${home} cannot be written (ENOSPC): nothing can be saved`,
        fix: 'free some space on its disk',
      });
      expect(full.disk_space).toMatchObject({ level: 'warn', message: `only 0 KB free on the disk holding ${home}` });
      expect(fs.readdirSync(home)).toEqual(['filler']);
    } finally {
      unmountTmpfs(home);
    }
  },
  60_000,
);
