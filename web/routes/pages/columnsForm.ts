// The workflow editor form shared by a project's workflow and the project types: one row per
// column (`c<i>_id`, `c<i>_name`, `c<i>_agent`, `c<i>_pos`, `c<i>_remove`) plus one blank row
// (`new_*`) to add a column. Rows are ordered by their position field, so reordering works
// without JavaScript; lib/projects validates the result (human first, done last, staffed middle).
import type { AgentType } from '../../../lib/agentTypes.js';
import type { Column, ColumnInput } from '../../../lib/projects.js';
import type { FormValues } from './form.js';

const MAX_ROWS = 100;

export interface ColumnRow {
  index: number;
  id: string;
  name: string;
  agent: string | null;
  position: number;
  fixed: boolean;
}

export function columnRows(columns: readonly Column[]): ColumnRow[] {
  return columns.map((c, i) => ({
    index: i,
    id: c.column_id,
    name: c.name,
    agent: c.agent_type_id,
    position: i + 1,
    fixed: c.column_id === 'human' || c.column_id === 'done',
  }));
}

export function agentOptions(agents: readonly AgentType[]): { id: string; name: string }[] {
  return agents.map((a) => ({ id: a.id, name: a.name }));
}

export function columnsFromForm(values: FormValues): ColumnInput[] {
  const rows: { pos: number; order: number; col: ColumnInput }[] = [];
  for (let i = 0; i < MAX_ROWS && values[`c${i}_id`] !== undefined; i++) {
    if (values[`c${i}_remove`] === 'on') continue;
    const id = values[`c${i}_id`]!.trim();
    rows.push({
      pos: positionOf(values[`c${i}_pos`], i),
      order: i,
      col: { column_id: id, name: values[`c${i}_name`], agent_type_id: agentOf(id, values[`c${i}_agent`]) },
    });
  }
  const newAgent = values.new_agent?.trim();
  const newId = values.new_id?.trim() || newAgent;
  if (newId)
    rows.push({
      pos: positionOf(values.new_pos, rows.length),
      order: MAX_ROWS,
      col: { column_id: newId, name: values.new_name, agent_type_id: newAgent || null },
    });
  // human and done stay at the ends whatever position was typed
  const rank = (c: ColumnInput, pos: number) => (c.column_id === 'human' ? -Infinity : c.column_id === 'done' ? Infinity : pos);
  return rows.sort((a, b) => rank(a.col, a.pos) - rank(b.col, b.pos) || a.order - b.order).map((r) => r.col);
}

function positionOf(raw: string | undefined, fallback: number): number {
  const n = Number(raw);
  return raw !== undefined && raw.trim() !== '' && Number.isFinite(n) ? n : fallback + 1;
}

function agentOf(id: string, agent: string | undefined): string | null {
  if (id === 'human' || id === 'done') return null;
  return agent?.trim() || null;
}
