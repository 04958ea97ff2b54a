// Every default prompt must teach only what its agent can do: the `ticket` spelling
// its allowed tools permit, and column ids, comment types and severities that ticket.cjs accepts.
// Each concrete `ticket …` command a prompt shows is run for real, as a run of that agent on its
// own ticket, against a project whose workflow includes that agent.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BUILTIN_AGENT_TYPES, BUILTIN_PROJECT_TYPES, TICKET_TOOL_PATTERN } from '../lib/seed.js';
import { createTicket, moveTicket, requireTicket } from '../lib/tickets.js';
import { setProjectColumns } from '../lib/projects.js';
import { finalizeRun } from '../lib/runs.js';
import { defaultPromptsDir } from '../lib/paths.js';
import { makeTestHome, startRun } from './helpers/home.js';
import { repoRoot } from './helpers/daemon.js';

/** Splits a shell command line the way a POSIX shell would for plain words and single/double quotes. */
function shellWords(line: string): string[] | null {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return null;
      current += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (ch === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) return null;
      current += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else if (/[|;&<>`$()]/.test(ch)) {
      return null; // shell syntax outside quotes: the permission matcher would refuse it
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}

function ticketCommands(markdown: string): string[] {
  const found = new Set<string>();
  for (const m of markdown.matchAll(/`(ticket [^`\n]+)`/g)) found.add(m[1]!.trim());
  for (const block of markdown.matchAll(/```[a-z]*\n([\s\S]*?)```/g)) {
    for (const line of block[1]!.split('\n')) if (/^\s*ticket /.test(line)) found.add(line.trim());
  }
  return [...found];
}

const columnsFor = (agent: string) => {
  const types = BUILTIN_PROJECT_TYPES.filter((t) => t.agents.includes(agent));
  return types.length ? ['human', ...types[0]!.agents, 'done'] : ['human', agent, 'done'];
};

describe.each(BUILTIN_AGENT_TYPES.map((a) => [a.id, a] as const))('prompt %s', (id, agent) => {
  const file = path.join(defaultPromptsDir, `${id}.md`);

  test('exists, and the agent type may run the ticket tool as the prompt spells it', () => {
    expect(fs.existsSync(file)).toBe(true);
    expect(agent.allowed_tools).toContain(TICKET_TOOL_PATTERN);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toMatch(/node\s+\S*ticket\.cjs/);
    expect(text).not.toMatch(/ticket (claim|release)/); // only the daemon claims
    expect(ticketCommands(text).length).toBeGreaterThan(2);
  });

  test('every concrete ticket command it shows is accepted by ticket.cjs', () => {
    const text = fs.readFileSync(file, 'utf8');
    const commands = ticketCommands(text).filter((c) => !/<[a-z-]+>/.test(c) && !/\.\.\./.test(c));
    const h = makeTestHome();
    try {
      h.addProject('sample', 'personal', 'pd');
      const columns = columnsFor(id);
      setProjectColumns(
        h.store,
        'pd',
        columns.map((c) => ({ column_id: c })),
      );
      for (let i = 0; i < 42; i++) createTicket(h.store, { project: 'pd', title: `t${i}`, createdBy: 'test' });
      const env = { PATH: `${path.join(repoRoot, 'bin', 'agent-path')}:${process.env.PATH}`, DISPATCH_DB_PATH: h.paths.db };
      const failures: string[] = [];
      let runId: string | null = null;
      for (const command of commands) {
        const words = shellWords(command);
        if (!words) {
          failures.push(`${command}: uses shell syntax the permission matcher refuses`);
          continue;
        }
        const [, sub, ref] = words;
        if (words.length < 3) continue; // prose naming a command
        const key = ref && /^[a-z]+-\d+$/.test(ref) ? 'pd-42' : ref;
        // each command from a fresh run of this agent on pd-42 in its column (a move ends a run's rights)
        if (runId)
          finalizeRun(h.store, runId, { status: 'success', exitCode: 0, error: null }, { circuitBreakerMaxRuns: 1000, maxRetries: 0 });
        if (requireTicket(h.db, 'pd-42').column_id !== id) moveTicket(h.store, 'pd-42', id, { actor: 'test' });
        const run = startRun(h, 'pd-42');
        runId = run.run.id;
        const r = spawnSync('ticket', [sub!, key!, ...words.slice(3)], {
          env: { ...env, DISPATCH_RUN_SECRET: run.secret },
          encoding: 'utf8',
        });
        if (r.status !== 0) failures.push(`${command}: ${r.stderr.trim()}`);
      }
      expect(failures).toEqual([]);
    } finally {
      h.cleanup();
    }
  });
});
