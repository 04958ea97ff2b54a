// The dispatch CLI's own output, through a real daemon: text from users and agents (titles, bodies,
// comments, project names, transcripts, run errors) cannot reach the terminal as escape sequences,
// control characters or bidi overrides, while --json stays exact JSON; a reader that goes away
// (`dispatch runs list | head -1`) ends a command quietly; every usage error is one line.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { dispatchBin, daemonEnv } from './helpers/daemon.js';
import { startEngineDaemon, waitFor, type EngineDaemon } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';

const ESC = '\x1b';
/**
 * Retitles the terminal (OSC 0), writes the clipboard (OSC 52), clears the screen, recolours (CSI
 * and C1 CSI), reverses text (RLO) and isolates it, rings, backspaces.
 */
const HOSTILE = `Fix ${ESC}]0;pwned\x07login ${ESC}]52;c;ZXZpbA==\x07now${ESC}[2J${ESC}[31m red\x9b32m \u202eevil\u202c\u2066x\u2069\x07\x08 end`;
/** What a terminal must never get from a human-readable command: C0 but tab and newline, DEL, C1, bidi embeddings/overrides/isolates. */
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

let d: EngineDaemon;
let plainKey: string;
let agentKey: string;
let runId: string;

beforeAll(async () => {
  d = await startEngineDaemon();
  expect((await d.api('PATCH', '/api/agent-types/researcher', { max_retries: 0 })).status).toBe(200);
  const folder = path.join(d.projectsRoot, 'lab');
  fs.mkdirSync(folder);
  const project = await d.api('POST', '/api/projects', { path: folder, type: 'research', abbreviation: 'lab', name: `Lab ${HOSTILE}` });
  expect(project.status).toBe(201);

  const body = `first line ${ESC}[2J\n\tindented line\r\nlast \u202eline`;
  const plain = await d.api('POST', '/api/tickets', { project: 'lab', title: HOSTILE, body });
  expect(plain.status).toBe(201);
  plainKey = plain.body.ticket.key;
  expect((await d.api('POST', `/api/tickets/${plainKey}/comments`, { type: 'comment', body: `see ${HOSTILE}` })).status).toBe(201);

  // an agent writes the escapes itself: a comment, then a failure whose message lands in the run's error and result
  const script = {
    researcher: [
      { do: 'comment', type: 'journal', body: `journal ${HOSTILE}` },
      { do: 'fail', message: `boom ${HOSTILE}` },
    ],
  };
  agentKey = (await d.ticket('lab', 'researcher', script, `agent ${HOSTILE}`)).key;
  const [run] = await waitFor(
    'the agent run to end',
    () => {
      const runs = d.runs(agentKey);
      return runs.length > 0 && runs.every((r) => r.ended_at !== null) && d.ticketRow(agentKey).column_id === 'human' && runs;
    },
    120_000,
  );
  expect(run.status).toBe('failed');
  expect(run.error).toContain(`${ESC}]0;pwned`);
  runId = run.id;
}, 180_000);

afterAll(async () => {
  await d?.stop();
});

test('human-readable output keeps the words and drops escape sequences, control characters and bidi overrides', () => {
  const commands: [string[], RegExp[]][] = [
    [['ticket', 'list'], [/Fix login now red evilx end/]],
    [
      ['ticket', 'show', plainKey],
      [/Fix login now red evilx end/, /first line \n\tindented line\nlast line/, /see Fix login/],
    ],
    [
      ['ticket', 'show', agentKey],
      [/journal Fix login/, /failed \(exit 1\)/],
    ],
    [['inbox'], [new RegExp(`${agentKey}\\s+Lab Fix login`)]],
    [['projects', 'list'], [/Lab Fix login now/]],
    [['runs', 'list'], [new RegExp(`${runId}\\s+${agentKey}\\s+researcher\\s+failed`)]],
    [
      ['runs', 'show', runId],
      [/error: .*boom Fix login now red evilx end/, /API Error: boom Fix login/],
    ],
    [
      ['runs', 'tail', runId],
      [/\$ ticket comment lab-2 journal 'journal Fix/, /── error after \d+ turns .*API Error: boom Fix login now/],
    ],
    [['queue', 'stats'], [/agent-run/]],
    [['daemon', 'logs', '--lines', '3'], [/./]],
  ];
  for (const [args, expected] of commands) {
    const r = d.cli(args);
    expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: '' });
    expect({ args, unsafe: UNSAFE.exec(r.stdout)?.[0] ?? null }).toEqual({ args, unsafe: null });
    for (const e of expected) expect(r.stdout).toMatch(e);
  }
  expect(d.cli(['daemon', 'logs', '--lines', '3']).stdout.trimEnd().split('\n')).toHaveLength(3);
});

test('--json output stays exact JSON: the same strings back, with C1 and bidi characters escaped', () => {
  const shown = d.cli(['ticket', 'show', plainKey, '--json']);
  expect(shown.status).toBe(0);
  expect(UNSAFE.test(shown.stdout)).toBe(false);
  const data = JSON.parse(shown.stdout);
  expect(data.ticket.title).toBe(HOSTILE);
  expect(data.comments.at(-1).body).toBe(`see ${HOSTILE}`);

  const run = JSON.parse(d.cli(['runs', 'show', runId, '--json']).stdout);
  expect(run.error).toContain(`boom ${HOSTILE}`);
  const tail = d.cli(['runs', 'tail', runId, '--json']);
  expect(tail.status).toBe(0);
  expect(UNSAFE.test(tail.stdout)).toBe(false);
  const lines = tail.stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(lines.some((l) => JSON.stringify(l).includes(JSON.stringify(`journal ${HOSTILE}`).slice(1, -1)))).toBe(true);
});

test('a reader that goes away ends the command quietly: exit 0, nothing on stderr', async () => {
  const commands = [
    ['runs', 'list'],
    ['ticket', 'list'],
    ['ticket', 'show', plainKey],
    ['projects', 'list'],
    ['inbox'],
    ['queue', 'stats'],
    ['runs', 'tail', runId],
    ['--help'],
  ];
  for (const args of commands) {
    const child = spawn(process.execPath, [dispatchBin, ...args], { env: d.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the command prints a byte: its first write gets EPIPE
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect({ args, code, stderr }).toEqual({ args, code: 0, stderr: '' });
  }
});

test('every usage error is one line and exit 1; --help still works', () => {
  const env = daemonEnv(tempDir());
  const bad = [
    [],
    ['bogus'],
    ['tickt'],
    ['ticket'],
    ['ticket', 'show'],
    ['ticket', 'new', '--project', 'lab'],
    ['ticket', 'new', '-p', 'lab', '-t', 'x', '--priority', 'whenever'],
    ['daemon', 'logs', '--lines', '-5'],
    ['daemon', 'logs', '--lines', 'abc'],
    ['daemon', 'logs', '--lines'],
    ['daemon', 'logs', '--lines', '2.5'],
    ['ticket', 'list', '--limit', '0'],
    ['runs', 'list', '--limit', 'many'],
    ['install', '--timeout', '-1'],
  ];
  for (const args of bad) {
    const r = spawnSync(process.execPath, [dispatchBin, ...args], { env, encoding: 'utf8', timeout: 30_000 });
    expect({ args, status: r.status, stdout: r.stdout }).toEqual({ args, status: 1, stdout: '' });
    expect({ args, stderr: r.stderr }).toEqual({ args, stderr: expect.stringMatching(/^dispatch: [^\n]+\n$/) });
  }
  const lines = spawnSync(process.execPath, [dispatchBin, 'daemon', 'logs', '--lines', '-5'], { env, encoding: 'utf8' });
  expect(lines.stderr).toBe('dispatch: --lines takes a whole number of 1 or more, not -5 (see "dispatch --help")\n');
  const help = spawnSync(process.execPath, [dispatchBin, 'ticket', 'list', '--help'], { env, encoding: 'utf8' });
  expect(help.status).toBe(0);
  expect(help.stdout).toMatch(/--limit/);
});
