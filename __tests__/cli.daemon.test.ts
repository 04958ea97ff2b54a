// The dispatch CLI against a real daemon process on an ephemeral port with a temp home.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { daemonEnv, dispatchBin, startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';

let d: RunningDaemon;
beforeAll(async () => {
  d = await startTestDaemon();
});
afterAll(async () => {
  expect(await d.stop()).toBe(0);
  expect(fs.existsSync(path.join(d.home, 'daemon.pid'))).toBe(false);
});

describe('dispatch CLI with a running daemon', () => {
  test('register a folder, file a ticket, show it, comment, move, list, inbox', () => {
    const folder = path.join(d.projectsRoot, 'invoices');
    fs.mkdirSync(folder);
    const discovered = d.cli(['projects', 'discover', '--json']);
    expect(discovered.status).toBe(0);
    // the daemon's folder watcher may have found it first; either way it is listed exactly once
    expect(JSON.parse(discovered.stdout).missing).toEqual([]);
    expect(d.cli(['projects', 'list']).stdout).toMatch(/invoices\s+unregistered/);

    const reg = d.cli(['projects', 'register', folder, '--type', 'software-dev', '--key', 'inv']);
    expect(reg.stderr).toBe('');
    expect(reg.stdout).toMatch(/registered invoices as inv/);

    const filed = d.cli([
      'ticket',
      'new',
      '--project',
      'inv',
      '--title',
      'Add payment collection',
      '--body',
      'to the **invoice** flow',
      '--priority',
      'high',
    ]);
    expect(filed.stdout.trim()).toBe('inv-1 filed in human: Add payment collection');

    const shown = d.cli(['ticket', 'show', 'inv-1']);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/inv-1 {2}Add payment collection/);
    expect(shown.stdout).toMatch(/priority: high/);
    expect(shown.stdout).toMatch(/to the \*\*invoice\*\* flow/);

    expect(d.cli(['ticket', 'comment', 'inv-1', 'use', 'Stripe']).status).toBe(0);
    // filed into human by the person: the backlog, not what needs them
    expect(d.cli(['inbox']).stdout).toMatch(/inbox zero/);
    expect(d.cli(['inbox', '--backlog']).stdout).toMatch(/inv-1\s+invoices\s+high\s+Add payment collection\s+human\s/);
    expect(d.cli(['ticket', 'move', 'inv-1', 'done', '-m', 'shipped']).stdout.trim()).toBe('inv-1: human → done');

    const json = JSON.parse(d.cli(['ticket', 'show', 'inv-1', '--json']).stdout);
    expect(json.comments.map((c: { type: string }) => c.type)).toEqual(['move', 'comment', 'move']);
    expect(json.comments[1].body).toBe('use Stripe');
    const listed = JSON.parse(d.cli(['ticket', 'list', '--project', 'inv', '--json']).stdout);
    expect(listed.map((t: { key: string; column_id: string }) => [t.key, t.column_id])).toEqual([['inv-1', 'done']]);
    expect(d.cli(['inbox', '--backlog']).stdout).toMatch(/no backlog/);
  });

  test('bad input gives a clear message and a non-zero exit', () => {
    const r = d.cli(['ticket', 'new', '--project', 'nope', '--title', 'x']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^dispatch: project not found: nope/);
    const missing = d.cli(['ticket', 'new', '--project', 'inv']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/Missing required argument: title/);
    expect(d.cli(['ticket', 'frobnicate']).status).toBe(1);
    expect(d.cli(['ticket', 'show', 'inv-404']).stderr).toMatch(/ticket not found: inv-404/);
  });

  test('projects register takes a discovered folder by its name; a missing or unknown --type lists the types', () => {
    fs.mkdirSync(path.join(d.projectsRoot, 'garden'));
    expect(d.cli(['projects', 'discover']).status).toBe(0);
    const noType = d.cli(['projects', 'register', 'garden']);
    expect(noType.status).toBe(1);
    expect(noType.stderr).toBe('dispatch: --type is required: one of content, personal, research, software-dev, vps-maintenance\n');
    const unknown = d.cli(['projects', 'register', 'garden', '--type', 'gardening']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/^dispatch: unknown project type: gardening; the types are .*software-dev.*\n$/);
    // the CLI runs in the repository, where no folder "garden" exists: the name finds the discovered one
    const reg = d.cli(['projects', 'register', 'garden', '--type', 'personal', '--key', 'gdn']);
    expect(reg.stderr).toBe('');
    expect(reg.stdout).toMatch(/registered garden as gdn/);
    const listed = JSON.parse(d.cli(['projects', 'list', '--json']).stdout) as { abbreviation: string }[];
    expect(listed.find((p) => p.abbreviation === 'gdn')).toMatchObject({ path: path.join(d.projectsRoot, 'garden'), status: 'active' });
    // a name nothing was discovered under is a path, refused as one
    const none = d.cli(['projects', 'register', 'no-such-folder', '--type', 'personal']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/^dispatch: folder does not exist: .*no-such-folder \(field: path\)\n$/);
  });

  test('ticket list with an unknown column fails like ticket move: one line naming the columns, exit 1', () => {
    const all = d.cli(['ticket', 'list', '--column', 'nope']);
    expect(all.status).toBe(1);
    expect(all.stderr).toMatch(/^dispatch: unknown column "nope"; the projects' columns are .*human.*\n$/);
    const one = d.cli(['ticket', 'list', '--project', 'gdn', '--column', 'nope']);
    expect(one.status).toBe(1);
    expect(one.stderr).toMatch(/^dispatch: unknown column "nope"; this project's columns are human, .*done\n$/);
    expect(d.cli(['ticket', 'list', '--project', 'gdn', '--column', 'human']).status).toBe(0);
  });

  test('status, version, and a second daemon on the same home refuses to start', () => {
    expect(d.cli(['daemon', 'status']).stdout).toMatch(new RegExp(`running: pid ${d.child.pid}, http://127.0.0.1:${d.port}`));
    const pkg = JSON.parse(fs.readFileSync(path.join(dispatchBin, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
    expect(d.cli(['--version']).stdout.trim()).toBe(pkg.version);
    const second = spawnSync(process.execPath, [path.join(dispatchBin, '..', 'daemon.js')], {
      env: d.env,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/another daemon is already running on this home \(pid \d+/);
  });
});

test('without a daemon the CLI says how to start one', () => {
  const root = tempDir();
  const r = spawnSync(process.execPath, [dispatchBin, 'ticket', 'list'], { env: daemonEnv(root), encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/the daemon is not running .*start it with "dispatch daemon start"/);
  const status = spawnSync(process.execPath, [dispatchBin, 'daemon', 'status'], { env: daemonEnv(root), encoding: 'utf8' });
  expect(status.status).toBe(3);
  expect(status.stdout).toMatch(/not running/);
});
