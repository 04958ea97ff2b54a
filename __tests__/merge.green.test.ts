// Main stays green: twenty tickets through the real daemon's merge queue, a third of them breaking
// the project's check on their first try. Afterwards the check is run again, by the test, on every
// commit main's first-parent line received: each one passes, and each landed tree is one a check
// run passed.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { commitFile, head, initRepo, sh } from './helpers/git.js';
import { startEngineDaemon, waitFor } from './helpers/engine.js';
import { tempDir } from './helpers/home.js';

const CHECK = `for f in *.txt; do [ -f "$f" ] || continue; if grep -q BROKEN "$f"; then echo "$f is broken"; exit 1; fi; done\n`;

test('20 tickets, a third break the check: main never receives a commit whose check fails', async () => {
  const d = await startEngineDaemon({ config: { agents: { max_concurrent_per_project: 4, max_concurrent_global: 4 } } });
  try {
    const repo = path.join(d.projectsRoot, 'shop');
    initRepo(repo);
    commitFile(repo, 'check.sh', CHECK, 'the check');
    const base = head(repo);
    await d.project('shop', 'software-dev', 'sh');
    const columns = [{ column_id: 'human' }, { column_id: 'coding-agent' }, { column_id: 'done' }];
    expect((await d.api('PUT', '/api/projects/sh/columns', { columns })).status).toBe(200);
    expect((await d.api('PATCH', '/api/projects/sh', { check_command: 'sh check.sh' })).status).toBe(200);

    const write = (file: string, content: string) => [
      { do: 'write', file, content },
      { do: 'commit', message: `${file}: ${content.trim()}` },
      { do: 'move', to: 'done' },
    ];
    const keys: string[] = [];
    const breakers: string[] = [];
    for (let i = 0; i < 20; i++) {
      const file = `t${i}.txt`;
      const breaks = i % 3 === 0;
      const script = breaks
        ? { 'coding-agent': [write(file, 'BROKEN\n'), write(file, `ok ${i}\n`)] }
        : { 'coding-agent': write(file, `ok ${i}\n`) };
      const t = await d.ticket('sh', 'coding-agent', script, `ticket ${i}`);
      keys.push(t.key);
      if (breaks) breakers.push(t.key);
    }
    expect(breakers).toHaveLength(7);
    await waitFor('all 20 merged', () => keys.every((k) => d.ticketRow(k).merged_at), 600_000, 500);

    const runs = d.db().prepare(`SELECT c.*, t.number FROM check_runs c JOIN tickets t ON t.id = c.ticket_id`).all() as any[];
    const failedKeys = new Set(runs.filter((r) => r.status === 'fail').map((r) => `sh-${r.number}`));
    expect([...failedKeys].sort()).toEqual([...breakers].sort());
    const passedTrees = new Set(
      runs.filter((r) => r.status === 'pass').map((r) => sh(repo, ['rev-parse', `${r.tested_commit}^{tree}`]).trim()),
    );

    // every commit main received: the check passes on it, and its tree is one a check run passed
    const landed = sh(repo, ['rev-list', '--first-parent', `${base}..main`])
      .trim()
      .split('\n');
    expect(landed).toHaveLength(20);
    for (const commit of landed) {
      expect(passedTrees.has(sh(repo, ['rev-parse', `${commit}^{tree}`]).trim())).toBe(true);
      const dir = tempDir('pd-green-');
      execFileSync('sh', ['-c', `git -C '${repo}' archive ${commit} | tar -x -C '${dir}'`]);
      const r = spawnSync('sh', ['check.sh'], { cwd: dir, encoding: 'utf8' });
      expect({ commit, status: r.status, out: r.stdout }).toEqual({ commit, status: 0, out: '' });
      fs.rmSync(dir, { recursive: true, force: true });
    }
    for (let i = 0; i < 20; i++) expect(fs.readFileSync(path.join(repo, `t${i}.txt`), 'utf8')).toBe(`ok ${i}\n`);
  } finally {
    await d.stop();
  }
}, 700_000);
