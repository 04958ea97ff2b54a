// Inputs from the hardening pass, through the real daemon: pathological markdown in append-only
// history never breaks a ticket page; bodies that are not what their Content-Encoding says and
// malformed workflow columns answer 4xx, not 500; a main branch must be a valid git branch name;
// and the filesystem root, the home folder and the data home (itself, inside it, or a folder
// containing it) cannot be registered as projects, through the API, the pages and the CLI.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFile } from 'node:child_process';
import fc from 'fast-check';
import { branchNameProblem } from '../lib/projects.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';
import { getPage, postForm, rawRequest, token } from './helpers/web.js';

let d: RunningDaemon;
let csrf: string;
beforeAll(async () => {
  d = await startTestDaemon();
  csrf = await token(d);
  fs.mkdirSync(path.join(d.projectsRoot, 'inputs'));
  const folder = path.join(d.projectsRoot, 'inputs');
  const registered = await d.api('POST', '/api/projects', { path: folder, type: 'software-dev', abbreviation: 'inp' });
  expect(registered.status).toBe(201);
}, 60_000);
afterAll(() => d.stop());

async function fileTicket(title: string, body: string): Promise<string> {
  const r = await d.api('POST', '/api/tickets', { project: 'inp', title, body });
  expect(r.status).toBe(201);
  return r.body.ticket.key;
}

describe('markdown that breaks the renderer', () => {
  const bombs: [string, string][] = [
    ['6,000 nested quotes', '>'.repeat(6000) + ' deep <b>bold?</b>'],
    ['6,000 nested list items', '- '.repeat(6000) + 'deep'],
    ['6,000 nested ordered items', '1. '.repeat(6000) + 'deep'],
    ['quotes and lists interleaved', '> * '.repeat(3000) + 'deep'],
    ['6,000 nested emphasis', '*'.repeat(6000) + 'deep' + '*'.repeat(6000)],
    ['6,000 nested links', '['.repeat(6000) + 'deep' + '](https://example.com)'.repeat(4000)],
    ['180,000 characters of unmatched emphasis', '*a _b '.repeat(30_000)],
  ];

  test('comments: the ticket page answers 200 with each one as escaped text and the rest as markdown', async () => {
    const key = await fileTicket('Pathological thread', 'The **body** renders.');
    for (const [, body] of bombs) expect((await d.api('POST', `/api/tickets/${key}/comments`, { body })).status).toBe(201);
    expect((await d.api('POST', `/api/tickets/${key}/comments`, { body: 'A *normal* reply after them.' })).status).toBe(201);
    for (let view = 0; view < 2; view++) {
      const page = await getPage(d, `/tickets/${key}`);
      expect(page.status).toBe(200);
      expect(page.html).toContain('<strong>body</strong>');
      expect(page.html).toContain('A <em>normal</em> reply after them.');
      expect(page.html).toContain(`<pre class="plain-text">${'&gt;'.repeat(6000)} deep &lt;b&gt;bold?&lt;/b&gt;</pre>`);
      expect(page.html).toContain(`<pre class="plain-text">${'- '.repeat(6000)}deep</pre>`);
      expect(page.html).toContain(`<pre class="plain-text">${'*'.repeat(6000)}deep`);
      expect(page.html).not.toContain('<b>bold?</b>');
      expect(page.html.match(/<pre class="plain-text">/g)).toHaveLength(bombs.length);
    }
    expect((await d.api('GET', '/api/health')).status).toBe(200);
  }, 180_000);

  test('a ticket body and a prompt preview: the page answers 200 with the text escaped', async () => {
    for (const [name, body] of bombs.slice(0, 5)) {
      const key = await fileTicket(name, body);
      const page = await getPage(d, `/tickets/${key}`);
      expect([name, page.status]).toEqual([name, 200]);
      expect(page.html).toContain('<pre class="plain-text">');
      const preview = await postForm(d, '/agent-types/writer/preview', { _csrf: csrf, prompt: body });
      expect([name, preview.status]).toEqual([name, 200]);
      expect(preview.html.startsWith('<pre class="plain-text">')).toBe(true);
    }
  }, 180_000);
});

test('a body that is not what its Content-Encoding says answers 400; a real gzip body works', async () => {
  const json = JSON.stringify({ board: { done_limit: 40 } });
  for (const encoding of ['gzip', 'deflate', 'br']) {
    const r = await rawRequest(d, 'PATCH', '/api/config', { 'content-type': 'application/json', 'content-encoding': encoding }, json);
    expect([encoding, r.status]).toEqual([encoding, 400]);
    expect(JSON.parse(r.text).error).toMatch(/^request body could not be decoded as its Content-Encoding says: /);
  }
  const formHeaders = { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip', accept: 'text/html' };
  const page = await rawRequest(d, 'POST', '/settings', formHeaders, `_csrf=${csrf}&board.done_limit=40`);
  expect(page.status).toBe(400);
  expect(page.text).toContain('request body could not be decoded');
  expect((await d.api('GET', '/api/config')).body.file.board.done_limit).toBe(50);
  const gzipped = { 'content-type': 'application/json', 'content-encoding': 'gzip' };
  const real = await rawRequest(d, 'PATCH', '/api/config', gzipped, zlib.gzipSync(json));
  expect(real.status).toBe(200);
  expect((await d.api('GET', '/api/config')).body.file.board.done_limit).toBe(40);
});

test('malformed workflow columns answer 400 naming the entry, and change nothing', async () => {
  const valid = [{ column_id: 'human' }, { column_id: 'coding-agent' }, { column_id: 'done' }];
  const cases: [unknown[], string][] = [
    [[null, ...valid], 'columns[0]'],
    [[valid[0], null, valid[2]], 'columns[1]'],
    [['human', 'done'], 'columns[0]'],
    [[[], ...valid], 'columns[0]'],
    [[{ column_id: 7 }, valid[2]], 'columns[0].column_id'],
    [[{ column_id: 'human', name: 5 }, valid[2]], 'columns[0].name'],
    [[valid[0], { column_id: 'coding-agent', name: ['x'] }, valid[2]], 'columns[1].name'],
    [[valid[0], { column_id: 'coding-agent', agent_type_id: { a: 1 } }, valid[2]], 'columns[1].agent_type_id'],
    [[valid[0], { column_id: 'coding-agent', agent_type_id: 7 }, valid[2]], 'columns[1].agent_type_id'],
  ];
  const projectBefore = (await d.api('GET', '/api/projects/inp')).body.columns;
  const typeBefore = (await d.api('GET', '/api/project-types/personal')).body.project_type;
  for (const [columns, field] of cases) {
    for (const [method, url] of [
      ['PUT', '/api/projects/inp/columns'],
      ['PUT', '/api/project-types/personal'],
    ] as const) {
      const r = await d.api(method, url, { columns });
      expect([url, JSON.stringify(columns), r.status, r.body.field]).toEqual([url, JSON.stringify(columns), 400, field]);
      expect(r.body.error).toMatch(/must be (an object with a column_id|a string)/);
    }
    const created = await d.api('POST', '/api/project-types', { id: 'broken-type', name: 'Broken', columns });
    expect(created.status).toBe(400);
  }
  expect((await d.api('GET', '/api/projects/inp')).body.columns).toEqual(projectBefore);
  expect((await d.api('GET', '/api/project-types/personal')).body.project_type).toEqual(typeBefore);
  expect((await d.api('GET', '/api/project-types/broken-type')).status).toBe(404);
});

const BAD_BRANCHES = ['../../etc/passwd', '-rf', 'a b', 'main.lock', '.hidden', 'feature/', 'a//b', 'x@{1}', 'HEAD', 'a~1', 'a:b', 'a\\b'];
BAD_BRANCHES.push('ends.');

describe('main branch', () => {
  test('must be a valid git branch name, through the API, the page and the CLI', async () => {
    for (const branch of BAD_BRANCHES) {
      const dir = path.join(d.projectsRoot, 'branchy');
      fs.mkdirSync(dir, { recursive: true });
      const r = await d.api('POST', '/api/projects', { path: dir, type: 'personal', main_branch: branch });
      expect([branch, r.status, r.body.field]).toEqual([branch, 400, 'main_branch']);
      expect(r.body.error).toMatch(new RegExp(`^main branch ".*" is not a valid git branch name: it `));
      const patch = await d.api('PATCH', '/api/projects/inp', { main_branch: branch });
      expect([branch, patch.status, patch.body.field]).toEqual([branch, 400, 'main_branch']);
      const page = await postForm(d, '/projects/register', { _csrf: csrf, path: dir, type: 'personal', main_branch: branch });
      expect([branch, page.status]).toEqual([branch, 400]);
      expect(page.html).toContain('is not a valid git branch name');
    }
    const branchy = path.join(d.projectsRoot, 'branchy');
    const cli = d.cli(['projects', 'register', branchy, '--type', 'personal', '--main-branch', '../../etc/passwd']);
    expect(cli.status).toBe(1);
    expect(cli.stderr).toMatch(/^dispatch: main branch "\.\.\/\.\.\/etc\/passwd" is not a valid git branch name: it cannot contain "\.\."/);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    expect((await d.api('GET', '/api/projects/branchy')).body.project?.status).not.toBe('active');
    expect((await d.api('GET', '/api/projects/inp')).body.project.main_branch).toBeNull();
    // valid names are kept
    expect((await d.api('PATCH', '/api/projects/inp', { main_branch: 'release/2.0' })).body.project.main_branch).toBe('release/2.0');
    const fields = { _csrf: csrf, path: branchy, type: 'personal', abbreviation: 'br', main_branch: 'trunk' };
    const ok = await postForm(d, '/projects/register', fields);
    expect(ok.status).toBe(303);
    expect((await d.api('GET', '/api/projects/br')).body.project.main_branch).toBe('trunk');
  });

  test('the check agrees with git check-ref-format --branch', async () => {
    const cwd = tempDir('pd-refs-');
    const gitSays = (name: string) =>
      new Promise<boolean>((resolve) => execFile('git', ['check-ref-format', '--branch', name], { cwd }, (err) => resolve(!err)));
    const chosen = [
      ...['main', 'master', 'feature/x', 'release/2.0', 'a.b', 'a-b_c', 'über', 'a@b', 'x/y/z', 'foo.lock.bar', '@x', 'v1.2.3'],
      ...['', '@', '@{-1}', 'a/.b', 'a..b', 'a?', 'a*', 'a[', '/a', 'a/b.lock', 'tab\there', 'del\u007f', ...BAD_BRANCHES],
    ];
    const alphabet = fc.constantFrom(
      'a',
      'b',
      '1',
      '.',
      '/',
      '-',
      '_',
      '@',
      '{',
      '}',
      '~',
      '^',
      ':',
      '?',
      '*',
      '[',
      '\\',
      ' ',
      'lock',
      'é',
    );
    const arbitraryName = fc.array(alphabet, { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''));
    const random = fc.sample(arbitraryName, { numRuns: 300, seed: 20261201 });
    const names = [...chosen, ...random];
    const verdicts: boolean[] = [];
    for (let i = 0; i < names.length; i += 16) verdicts.push(...(await Promise.all(names.slice(i, i + 16).map(gitSays))));
    const disagreements = names.filter((name, i) => (branchNameProblem(name) === null) !== verdicts[i]);
    // one on purpose: "@" passes check-ref-format --branch, but every other git command reads it as HEAD
    expect(new Set(disagreements)).toEqual(new Set(['@']));
    expect(branchNameProblem('@')).toBe('"@" names no branch');
    fs.rmSync(cwd, { recursive: true, force: true });
  }, 120_000);
});

test('the filesystem root, the home folder and the data home (itself, inside it, containing it) cannot be projects', async () => {
  fs.symlinkSync(d.home, path.join(d.projectsRoot, 'home-link'));
  fs.symlinkSync('/', path.join(d.projectsRoot, 'root-link'));
  const targets: [string, RegExp][] = [
    ['/', /the filesystem root cannot be a project/],
    [path.join(d.projectsRoot, 'root-link'), /the filesystem root cannot be a project/],
    [d.env.HOME!, /your home folder cannot be a project/],
    [d.home, / is the dispatcher(?:'|&#39;)s data home .* or inside it/],
    [path.join(d.home, 'prompts'), / is the dispatcher(?:'|&#39;)s data home .* or inside it/],
    [path.join(d.home, 'artifacts', 'runs'), / is the dispatcher(?:'|&#39;)s data home .* or inside it/],
    [path.join(d.projectsRoot, 'home-link'), / is the dispatcher(?:'|&#39;)s data home .* or inside it/],
    [d.root, / contains the dispatcher(?:'|&#39;)s data home/],
    [path.dirname(d.root), / contains the dispatcher(?:'|&#39;)s data home/],
  ];
  const before = (await d.api('GET', '/api/projects')).body.projects.length;
  for (const [folder, message] of targets) {
    const r = await d.api('POST', '/api/projects', { path: folder, type: 'personal' });
    expect([folder, r.status, r.body.field]).toEqual([folder, 400, 'path']);
    expect(r.body.error).toMatch(message);
    const page = await postForm(d, '/projects/register', { _csrf: csrf, path: folder, type: 'personal' });
    expect([folder, page.status]).toEqual([folder, 400]);
    expect(page.html).toMatch(message);
    const cli = d.cli(['projects', 'register', folder, '--type', 'personal']);
    expect([folder, cli.status]).toEqual([folder, 1]);
    expect(cli.stderr).toMatch(message);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
  }
  expect((await d.api('GET', '/api/projects')).body.projects.length).toBe(before);
  // a folder next to the data home is fine
  const sibling = path.join(d.projectsRoot, 'sibling');
  fs.mkdirSync(sibling);
  expect((await d.api('POST', '/api/projects', { path: sibling, type: 'personal', abbreviation: 'sib' })).status).toBe(201);
});
