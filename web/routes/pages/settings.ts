// /settings: every field of the config schema, grouped by section, read from the schema itself so
// a new config field appears here without touching this page. Saved through ConfigStore.update
// (validated, written atomically, hot-reloaded); fields in RESTART_FIELDS are labelled. Secrets
// are never sent to the browser: a blank secret field keeps the stored value.
import { Router, type Response } from 'express';
import { z } from 'zod';
import { configSchema, RESTART_FIELDS } from '../../../lib/config.js';
import { UserError } from '../../../lib/errors.js';
import { formValues, submit, withNotice, type FormError, type FormValues } from './form.js';
import type { AppContext } from '../../context.js';

const SECRETS = new Set(['ai.api_key', 'api_token']);

type Kind = 'int' | 'number' | 'boolean' | 'text' | 'select' | 'env' | 'secret';

interface FieldSpec {
  name: string;
  kind: Kind;
  options: string[];
  min: number | null;
  max: number | null;
}

/** The schema's leaves, with what the form needs to show each one. */
function fieldSpecs(): { group: string; fields: FieldSpec[] }[] {
  const groups = new Map<string, FieldSpec[]>();
  const add = (group: string, spec: FieldSpec) => groups.set(group, [...(groups.get(group) ?? []), spec]);
  const walk = (shape: Record<string, z.ZodType>, prefix: string) => {
    for (const [key, raw] of Object.entries(shape)) {
      const name = prefix ? `${prefix}.${key}` : key;
      const schema = unwrap(raw);
      if (schema instanceof z.ZodObject) walk(schema.shape as Record<string, z.ZodType>, name);
      else add(prefix || 'general', specOf(name, schema));
    }
  };
  walk(configSchema.shape as Record<string, z.ZodType>, '');
  return [...groups].map(([group, fields]) => ({ group, fields }));
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s;
}

function specOf(name: string, schema: z.ZodType): FieldSpec {
  const base = { name, options: [] as string[], min: null as number | null, max: null as number | null };
  if (SECRETS.has(name)) return { ...base, kind: 'secret' };
  if (schema instanceof z.ZodNumber) {
    return { ...base, kind: schema.isInt ? 'int' : 'number', min: Number.isFinite(schema.minValue) ? schema.minValue : null, max: Number.isFinite(schema.maxValue) ? schema.maxValue : null };
  }
  if (schema instanceof z.ZodBoolean) return { ...base, kind: 'boolean' };
  if (schema instanceof z.ZodEnum) return { ...base, kind: 'select', options: schema.options.map(String) };
  if (schema instanceof z.ZodRecord) return { ...base, kind: 'env' };
  return { ...base, kind: 'text' };
}

function valueAt(config: unknown, name: string): unknown {
  return name.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), config);
}

function setAt(target: Record<string, unknown>, name: string, value: unknown): void {
  const keys = name.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
  node[keys[keys.length - 1]!] = value;
}

function envText(env: unknown): string {
  return Object.entries((env ?? {}) as Record<string, string>)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
}

/** The patch for ConfigStore.update from the posted form; a field with an unreadable value is named. */
function patchFromForm(values: FormValues): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const { fields } of fieldSpecs()) {
    for (const f of fields) {
      const raw = values[f.name];
      switch (f.kind) {
        case 'boolean':
          setAt(patch, f.name, raw === 'on' || raw === 'true');
          break;
        case 'int':
        case 'number': {
          if (raw === undefined) break;
          const n = Number(raw.trim());
          if (raw.trim() === '' || !Number.isFinite(n)) throw new UserError(`config: ${f.name}: must be a number`, f.name);
          setAt(patch, f.name, n);
          break;
        }
        case 'secret':
          if (values[`${f.name}__clear`] === 'on') setAt(patch, f.name, '');
          else if (raw) setAt(patch, f.name, raw);
          break;
        case 'env':
          if (raw !== undefined) setAt(patch, f.name, parseEnv(raw, f.name));
          break;
        default:
          if (raw !== undefined) setAt(patch, f.name, raw.trim());
      }
    }
  }
  return patch;
}

function parseEnv(text: string, field: string): Record<string, string> {
  const env: Record<string, string> = {};
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq === -1 ? '' : line.slice(0, eq).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UserError(`config: ${field}: line ${i + 1} must look like NAME=value`, field);
    env[key] = line.slice(eq + 1);
  });
  return env;
}

export function settingsPages(ctx: AppContext): Router {
  const r = Router();

  function render(res: Response, error: FormError | null = null, values: FormValues | null = null): void {
    const file = ctx.config.fileValues();
    const live = ctx.config.get();
    res.render('settings/index.njk', {
      title: 'Settings',
      section: 'settings',
      groups: fieldSpecs().map(({ group, fields }) => ({
        group,
        fields: fields.map((f) => {
          const stored = valueAt(file, f.name);
          const effective = valueAt(live, f.name);
          let value: string;
          if (f.kind === 'secret') value = '';
          else if (values && values[f.name] !== undefined) value = values[f.name]!;
          else if (f.kind === 'env') value = envText(stored);
          else value = String(stored ?? '');
          return {
            ...f,
            id: `f-${f.name.replace(/\./g, '-')}`,
            value,
            checked: f.kind === 'boolean' ? (values ? values[f.name] === 'on' : stored === true) : false,
            secretSet: f.kind === 'secret' && Boolean(stored),
            restart: RESTART_FIELDS.includes(f.name),
            overridden: f.kind !== 'secret' && f.kind !== 'env' && JSON.stringify(stored) !== JSON.stringify(effective) ? String(effective) : null,
            error: error?.field === f.name ? error.message : null,
          };
        }),
      })),
      configFile: ctx.config.file,
      lastError: ctx.config.lastError,
      error,
    });
  }

  r.get('/settings', (_req, res) => render(res));

  r.post('/settings', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        ctx.config.update(patchFromForm(values));
        return withNotice('/settings', 'saved');
      },
      (error) => render(res, error, values),
    );
  });

  return r;
}
