// Project types: named, ordered column lists shared by projects. Registering a project copies
// its type's columns, so editing a type changes projects registered afterwards, never existing boards.
import { ConflictError, NotFoundError, UserError } from './errors.js';
import { normaliseColumns, type Column, type ColumnInput } from './projects.js';
import type { Db } from './db/connection.js';

export interface ProjectType {
  id: string;
  name: string;
  description: string;
  builtin: boolean;
  columns: Column[];
}

const TYPE_ID = /^[a-z][a-z0-9-]{0,39}$/;

export function listProjectTypes(db: Db): ProjectType[] {
  const types = db.prepare(`SELECT id, name, description, builtin FROM project_types ORDER BY builtin DESC, id`).all() as {
    id: string;
    name: string;
    description: string;
    builtin: number;
  }[];
  const cols = db.prepare(
    `SELECT column_id, name, position, agent_type_id FROM project_type_columns WHERE project_type_id = ? ORDER BY position`,
  );
  return types.map((t) => ({ ...t, builtin: t.builtin === 1, columns: cols.all(t.id) as Column[] }));
}

export function getProjectType(db: Db, id: string): ProjectType {
  const t = listProjectTypes(db).find((x) => x.id === id);
  if (!t) throw new NotFoundError('project type', id);
  return t;
}

/** Creates or replaces a project type's columns (validated like a project's workflow). */
export function saveProjectType(
  db: Db,
  id: string,
  input: { name?: unknown; description?: unknown; columns: ColumnInput[] },
  create: boolean,
): ProjectType {
  if (!TYPE_ID.test(id)) throw new UserError('project type id must be lowercase letters, digits and dashes', 'id');
  const exists = db.prepare(`SELECT 1 FROM project_types WHERE id = ?`).get(id);
  if (create && exists) throw new ConflictError(`project type "${id}" already exists`, 'id');
  if (!create && !exists) throw new NotFoundError('project type', id);
  if (input.name !== undefined && (typeof input.name !== 'string' || !input.name.trim()))
    throw new UserError('name must be a non-empty string', 'name');
  const columns = normaliseColumns(db, input.columns);
  db.transaction(() => {
    if (create) {
      db.prepare(`INSERT INTO project_types (id, name, description, builtin, created_at) VALUES (?, ?, ?, 0, ?)`).run(
        id,
        (input.name as string | undefined)?.trim() ?? id,
        typeof input.description === 'string' ? input.description : '',
        Date.now(),
      );
    } else if (input.name !== undefined || input.description !== undefined) {
      db.prepare(`UPDATE project_types SET name = COALESCE(?, name), description = COALESCE(?, description) WHERE id = ?`).run(
        typeof input.name === 'string' ? input.name.trim() : null,
        typeof input.description === 'string' ? input.description : null,
        id,
      );
    }
    db.prepare(`DELETE FROM project_type_columns WHERE project_type_id = ?`).run(id);
    const insert = db.prepare(
      `INSERT INTO project_type_columns (project_type_id, column_id, name, position, agent_type_id) VALUES (?, ?, ?, ?, ?)`,
    );
    for (const c of columns) insert.run(id, c.column_id, c.name, c.position, c.agent_type_id);
  }).immediate();
  return getProjectType(db, id);
}
