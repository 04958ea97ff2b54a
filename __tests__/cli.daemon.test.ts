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

    const filed = d.cli(['ticket', 'new', '--project', 'inv', '--title', 'Add payment collection', '--body', 'to the **invoice** flow', '--priority', 'high']);
    expect(filed.stdout.trim()).toBe('inv-1 filed in human: Add payment collection');

    const shown = d.cli(['ticket', 'show', 'inv-1']);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/inv-1 {2}Add payment collection/);
    expect(shown.stdout).toMatch(/priority: high/);
    expect(shown.stdout).toMatch(/to the \*\*invoice\*\* flow/);

    expect(d.cli(['ticket', 'comment', 'inv-1', 'use', 'Stripe']).status).toBe(0);
    expect(d.cli(['inbox']).stdout).toMatch(/inv-1\s+invoices\s+Add payment collection/);
    expect(d.cli(['ticket', 'move', 'inv-1', 'done', '-m', 'shipped']).stdout.trim()).toBe('inv-1: human → done');

    const json = JSON.parse(d.cli(['ticket', 'show', 'inv-1', '--json']).stdout);
    expect(json.comments.map((c: { type: string }) => c.type)).toEqual(['move', 'comment', 'move']);
    expect(json.comments[1].body).toBe('use Stripe');
    const listed = JSON.parse(d.cli(['ticket', 'list', '--project', 'inv', '--json']).stdout);
    expect(listed.map((t: { key: string; column_id: string }) => [t.key, t.column_id])).toEqual([['inv-1', 'done']]);
    expect(d.cli(['inbox']).stdout).toMatch(/inbox zero/);
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

  test('status, version, and a second daemon on the same home refuses to start', () => {
    expect(d.cli(['daemon', 'status']).stdout).toMatch(new RegExp(`running: pid ${d.child.pid}, http://127.0.0.1:${d.port}`));
    const pkg = JSON.parse(fs.readFileSync(path.join(dispatchBin, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
    expect(d.cli(['--version']).stdout.trim()).toBe(pkg.version);
    const second = spawnSync(process.execPath, [path.join(dispatchBin, '..', 'daemon.js')], { env: d.env, encoding: 'utf8', timeout: 20_000 });
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
