// The contract between bin/ticket.cjs (the agents' CLI) and the daemon's lib: both follow the same
// ticket rules (key pattern, limits, comment types, severities, the wake on a move, the data home).
// Each rule is exercised through the real ticket.cjs child process and through lib, against one
// database, so a copy of a rule that drifts on either side fails here.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { addComment, addFinding, createTicket, findTicket, moveTicket } from '../lib/tickets.js';
import { getHeartbeat } from '../lib/heartbeats.js';
import { FREE_COMMENT_TYPES, LIMITS, SEVERITIES, TICKET_KEY, wakesOnMove } from '../lib/ticketRules.js';
import { makeTestHome, startRun, tempDir, type TestHome } from './helpers/home.js';
import { repoRoot, ticketBin } from './helpers/daemon.js';

const distPaths = path.join(repoRoot, 'dist', 'lib', 'paths.js');

let h: TestHome;
let secret: string;
beforeEach(() => {
  h = makeTestHome();
  h.addProject('alpha', 'software-dev', 'pd');
  createTicket(h.store, { project: 'pd', title: "the run's ticket", column: 'coding-agent', createdBy: 'human' });
  createTicket(h.store, { project: 'pd', title: "a person's ticket", column: 'human', createdBy: 'human' });
  ({ secret } = startRun(h, 'pd-1'));
});
afterEach(() => h.cleanup());

function ticket(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  const env: NodeJS.ProcessEnv = opts.env ?? { PATH: process.env.PATH, DISPATCH_DB_PATH: h.paths.db, DISPATCH_RUN_SECRET: secret };
  const r = spawnSync(process.execPath, [ticketBin, ...args], { env, encoding: 'utf8', input: opts.input, maxBuffer: 16 * 1024 * 1024 });
  return { status: r.status, stderr: r.stderr };
}

/** What lib says about an input: accepted, or its error message. */
function libSays(fn: () => unknown): 'ok' | string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  }
}

test('the comment and title limits: what lib accepts, ticket.cjs accepts, one character more both refuse', () => {
  for (const n of [LIMITS.comment, LIMITS.comment + 1]) {
    const body = 'x'.repeat(n);
    const lib = libSays(() => addComment(h.store, 'pd-2', 'comment', body, 'human'));
    const cli = ticket(['comment', 'pd-1', 'journal', '-'], { input: body });
    expect([n, lib === 'ok', cli.status === 0]).toEqual([n, n === LIMITS.comment, n === LIMITS.comment]);
  }
  for (const n of [LIMITS.title, LIMITS.title + 1]) {
    const title = 't'.repeat(n);
    const lib = libSays(() => addFinding(h.store, 'pd-2', 'low', title, 'body', 'human'));
    const cli = ticket(['finding', 'pd-1', 'low', title, 'body']);
    expect([n, lib === 'ok', cli.status === 0]).toEqual([n, n === LIMITS.title, n === LIMITS.title]);
  }
});

test('comment types and severities: ticket.cjs takes exactly the ones lib takes', () => {
  for (const type of [...FREE_COMMENT_TYPES, 'move', 'claim', 'merge', 'system', 'finding']) {
    const lib = libSays(() => addComment(h.store, 'pd-2', type, 'hello', 'human'));
    const cli = ticket(['comment', 'pd-1', type, 'hello']);
    expect([type, cli.status === 0]).toEqual([type, lib === 'ok']);
  }
  for (const severity of [...SEVERITIES, 'blocker', 'info']) {
    const lib = libSays(() => addFinding(h.store, 'pd-2', severity, 'a finding', 'body', 'human'));
    const cli = ticket(['finding', 'pd-1', severity, 'a finding', 'body']);
    expect([severity, cli.status === 0]).toEqual([severity, lib === 'ok']);
  }
});

test('the key pattern: a reference is a ticket key for ticket.cjs exactly when it is one for lib', () => {
  for (const ref of ['pd-1', 'PD-1', ' pd-1', 'pd-01', 'pd1', 'p_d-1', '1pd-1', 'abcdefghij-1', 'abcdefghijk-1', 'pd-', '-1', 'pd-1-2']) {
    const cli = ticket(['read', ref]);
    const cliSaysKey = !/not a ticket id/.test(cli.stderr);
    // lib trims what it is given; the pattern itself is what must agree
    expect([ref, cliSaysKey]).toEqual([ref, TICKET_KEY.test(ref) || /^\d+$/.test(ref)]);
    if (TICKET_KEY.test(ref)) expect([ref, cli.status === 0]).toEqual([ref, findTicket(h.db, ref) !== undefined]);
  }
});

test('the wake on a move: ticket.cjs marks the project due exactly when the shared rule says, as lib does for a person', () => {
  const projectId = findTicket(h.db, 'pd-1')!.project_id;
  const seq = () => getHeartbeat(h.db, projectId)!.wake_seq;
  // an agent run's move into the next agent column: the run still holds the claim, no wake
  let before = seq();
  expect(ticket(['move', 'pd-1', 'code-reviewer']).status).toBe(0);
  expect(seq() - before).toBe(wakesOnMove({ to: 'code-reviewer', toAgentColumn: true, byRun: true }) ? 1 : 0);
  expect(seq() - before).toBe(0);
  // a person's move into an agent column wakes the project (lib)
  before = seq();
  moveTicket(h.store, 'pd-2', 'code-reviewer', { actor: 'human' });
  expect(seq() - before).toBe(wakesOnMove({ to: 'code-reviewer', toAgentColumn: true, byRun: false }) ? 1 : 0);
  expect(seq() - before).toBe(1);
  // a run's move into done: the merge has work, the project is due
  createTicket(h.store, { project: 'pd', title: 'a second run', column: 'coding-agent', createdBy: 'human' });
  ({ secret } = startRun(h, 'pd-3'));
  before = seq();
  expect(ticket(['move', 'pd-3', 'done']).status).toBe(0);
  expect(seq() - before).toBe(1);
  expect(wakesOnMove({ to: 'done', toAgentColumn: false, byRun: true })).toBe(true);
});

test('the data home: without DISPATCH_DB_PATH ticket.cjs opens tasks.db where lib puts it', () => {
  const fakeHomeDir = tempDir('pd-rules-home-');
  // lib's answer comes from a child process too, so HOME (which os.homedir() reads) is the same for both
  const libHome = (env: NodeJS.ProcessEnv) =>
    spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `import(${JSON.stringify(distPaths)}).then((m) => process.stdout.write(m.resolveHome()))`],
      {
        env,
        encoding: 'utf8',
      },
    ).stdout;
  try {
    const cases: NodeJS.ProcessEnv[] = [
      { HOME: fakeHomeDir },
      { HOME: fakeHomeDir, DISPATCH_HOME: path.join(fakeHomeDir, 'data') },
      { HOME: fakeHomeDir, DISPATCH_HOME: `  ${path.join(fakeHomeDir, 'spaced')}  ` },
      { HOME: fakeHomeDir, DISPATCH_HOME: '   ' },
    ];
    for (const extra of cases) {
      const env = { PATH: process.env.PATH, ...extra };
      const r = ticket(['read', 'pd-1'], { env });
      // no database there: the error names the file ticket.cjs looked for
      const file = /cannot open database (.*?tasks\.db)/.exec(r.stderr)?.[1];
      expect([extra, file]).toEqual([extra, path.join(libHome(env), 'tasks.db')]);
      expect(file!.startsWith(fakeHomeDir)).toBe(true);
    }
  } finally {
    fs.rmSync(fakeHomeDir, { recursive: true, force: true });
  }
});
