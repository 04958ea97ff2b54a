// Seeds a temp data home directly through the built lib functions (prepareHome, registerProject)
// and plain SQL in one transaction, so a big database is ready in seconds without a daemon.
import fs from 'node:fs';
import path from 'node:path';
import { prepareHome } from '../dist/lib/home.js';
import { pathsFor } from '../dist/lib/paths.js';
import { registerProject } from '../dist/lib/projects.js';
import { createStore } from '../dist/lib/store.js';
import { prepareRoot } from './lib.js';

const AGENT_COLUMNS = ['coding-agent', 'code-reviewer', 'security-reviewer'];
const WORDS = 'add fix refactor payment invoice export login cache report search upload webhook retry timeout audit'.split(' ');

/**
 * Registers `projects` software-dev projects (abbreviations p0..p99; the first is `big`) and files
 * tickets: `bigTickets` in the first, `ticketsPerProject` in each other one. A share of each
 * project's tickets waits in human with a block note (the inbox), a few sit in agent columns,
 * most are done. `status` sets every project's status afterwards (dormant: no agent is started).
 */
export function seedHome(root, { config, projects = 100, bigTickets = 0, ticketsPerProject = 0, status = 'active' } = {}) {
  const env = prepareRoot(root, config);
  const paths = pathsFor(env.DISPATCH_HOME);
  const { db } = prepareHome(paths);
  const store = createStore(db);
  const ids = [];
  for (let i = 0; i < projects; i++) {
    const name = i === 0 && bigTickets ? 'big' : `proj${i}`;
    const dir = path.join(env.DISPATCH_PROJECTS_ROOT, name);
    fs.mkdirSync(dir, { recursive: true });
    ids.push(
      registerProject(store, { path: dir, type: 'software-dev', abbreviation: i === 0 && bigTickets ? 'big' : `p${i}` }, 300, paths.home)
        .id,
    );
  }
  const insertTicket = db.prepare(
    `INSERT INTO tickets (project_id, number, title, body, column_id, priority, tags, created_by, created_at, updated_at, column_entered_at)
     VALUES (?, ?, ?, ?, ?, ?, '[]', 'human', ?, ?, ?)`,
  );
  const insertComment = db.prepare(
    `INSERT INTO comments (ticket_id, type, author, body, from_column, to_column, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const start = Date.now() - 90 * 86400_000;
  let clock = start;
  const fill = (projectId, count) => {
    for (let n = 1; n <= count; n++) {
      clock += 60_000;
      const r = n % 100;
      const column = r < 6 ? 'human' : r < 9 ? AGENT_COLUMNS[r - 6] : 'done';
      const title = `${WORDS[n % WORDS.length]} ${WORDS[(n * 7) % WORDS.length]} for ticket ${n}`;
      const body =
        `## What\n${title}.\n\n## Why\nA realistic body of a few hundred characters, so the database has the weight of a real one. `.repeat(
          3,
        );
      const priority = ['low', 'normal', 'normal', 'high', 'urgent'][n % 5];
      const id = Number(insertTicket.run(projectId, n, title, body, column, priority, clock, clock, clock).lastInsertRowid);
      insertComment.run(id, 'move', 'human', 'created', null, 'coding-agent', clock);
      insertComment.run(id, 'journal', 'coding-agent:seed', 'implemented the change and ran the tests', null, null, clock + 1000);
      insertComment.run(id, 'move', 'coding-agent:seed', '', 'coding-agent', column, clock + 2000);
      if (column === 'human')
        insertComment.run(id, 'block', 'coding-agent:seed', 'Which currency should the export use?', null, null, clock + 3000);
    }
    db.prepare(`UPDATE projects SET next_ticket_number = ? WHERE id = ?`).run(count + 1, projectId);
  };
  db.transaction(() => {
    ids.forEach((id, i) => fill(id, i === 0 && bigTickets ? bigTickets : ticketsPerProject));
    db.prepare(`UPDATE projects SET status = ?`).run(status);
  }).immediate();
  db.close();
  return { env, paths, projectIds: ids };
}
