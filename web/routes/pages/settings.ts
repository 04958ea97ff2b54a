// /settings: every field of the config schema, read from the schema itself so a new config field
// appears here without touching this page, shown in a person's words (lib/configFields.ts: groups,
// labels, a line of help, refusals as sentences). Saved through ConfigStore.update (validated,
// written atomically, hot-reloaded); fields in RESTART_FIELDS are labelled. Secrets are never sent
// to the browser: a blank secret field keeps the stored value, and the webhook URL is shown masked
// (left as shown, it is kept). The notification channels each have a Test button. A changed
// claude_binary or projects_root that points at nothing is refused unless "save anyway" is ticked.
import { refuseListenWithoutToken } from '../../../lib/runners.js';
import { Router, type Response } from 'express';
import { z } from 'zod';
import { configSchema, parseConfig, RESTART_FIELDS, type Config } from '../../../lib/config.js';
import { configSentence, fieldText, FIELD_TEXT, inWords, SETTINGS_GROUPS } from '../../../lib/configFields.js';
import { desktopCommand, maskUrl, NO_DESKTOP_NOTIFIER, send, type Channel } from '../../../lib/notifications.js';
import { UserError } from '../../../lib/errors.js';
import { findExecutable, refuseMissingSetup } from '../../../lib/health.js';
import { allAdapters, binarySetting, cliBinary } from '../../../lib/clis/index.js';
import { formValues, submit, withNotice, type FormError, type FormValues } from './form.js';
import type { AppContext } from '../../context.js';

const SECRETS = new Set(['ai.api_key', 'api_token']);
/** Secrets shown masked: what is left visible tells the person which service it is. */
const MASKED = new Set(['notifications.webhook_url', 'queue.redis_url']);
/** The fields after which a channel's Test button comes. */
const TEST_BUTTONS: Record<string, Channel | 'browser'> = {
  'notifications.webhook_url': 'webhook',
  'notifications.desktop': 'desktop',
  'notifications.browser': 'browser',
};

type Kind = 'int' | 'number' | 'boolean' | 'text' | 'select' | 'env' | 'secret' | 'masked';

interface FieldSpec {
  name: string;
  kind: Kind;
  options: string[];
  min: number | null;
  max: number | null;
  /** may be left unset (an empty field removes it) */
  optional: boolean;
}

/** The schema's leaves, with what the form needs to show each one, in the groups and order of lib/configFields.ts. */
function fieldSpecs(): { group: string; fields: FieldSpec[] }[] {
  const specs: FieldSpec[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string) => {
    for (const [key, raw] of Object.entries(shape)) {
      const name = prefix ? `${prefix}.${key}` : key;
      const schema = unwrap(raw);
      if (schema instanceof z.ZodObject) walk(schema.shape as Record<string, z.ZodType>, name);
      else specs.push({ ...specOf(name, schema), optional: isOptional(raw) });
    }
  };
  walk(configSchema.shape as Record<string, z.ZodType>, '');
  const order = Object.keys(FIELD_TEXT);
  const rank = (name: string) => (order.includes(name) ? order.indexOf(name) : order.length);
  return SETTINGS_GROUPS.map((group) => ({
    group,
    fields: specs.filter((s) => fieldText(s.name).group === group).sort((a, b) => rank(a.name) - rank(b.name)),
  })).filter((g) => g.fields.length > 0);
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s;
}

/** Whether the field may be absent with no default (an unset CLI binary means "its usual name"). */
function isOptional(schema: z.ZodType): boolean {
  for (let s = schema; s instanceof z.ZodDefault || s instanceof z.ZodOptional; s = s.unwrap() as z.ZodType)
    if (s instanceof z.ZodOptional) return true;
  return false;
}

function specOf(name: string, schema: z.ZodType): Omit<FieldSpec, 'optional'> {
  const base = { name, options: [] as string[], min: null as number | null, max: null as number | null };
  if (SECRETS.has(name)) return { ...base, kind: 'secret' };
  if (MASKED.has(name)) return { ...base, kind: 'masked' };
  if (schema instanceof z.ZodNumber) {
    return {
      ...base,
      kind: schema.isInt ? 'int' : 'number',
      min: Number.isFinite(schema.minValue) ? schema.minValue : null,
      max: Number.isFinite(schema.maxValue) ? schema.maxValue : null,
    };
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

/** The patch for ConfigStore.update from the posted form; a field with an unreadable value is named in words. */
function patchFromForm(values: FormValues, stored: unknown): Record<string, unknown> {
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
          if (raw.trim() === '' || !Number.isFinite(n)) {
            throw new UserError(configSentence({ field: f.name, code: 'invalid_type', expected: 'number', message: '' }), f.name);
          }
          setAt(patch, f.name, n);
          break;
        }
        case 'secret':
          if (values[`${f.name}__clear`] === 'on') setAt(patch, f.name, '');
          else if (raw) setAt(patch, f.name, raw);
          break;
        case 'masked':
          // left as shown (masked), the stored value stays; emptied, it is removed
          if (raw !== undefined && raw.trim() !== maskUrl(String(valueAt(stored, f.name) ?? ''))) setAt(patch, f.name, raw.trim());
          break;
        case 'env':
          if (raw !== undefined) setAt(patch, f.name, parseEnv(raw, f.name));
          break;
        default:
          if (raw !== undefined) setAt(patch, f.name, f.optional && raw.trim() === '' ? undefined : raw.trim());
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
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new UserError(`Line ${i + 1} of ${fieldText(field).noun} must look like NAME=value`, field);
    }
    env[key] = line.slice(eq + 1);
  });
  return env;
}

export function settingsPages(ctx: AppContext): Router {
  const r = Router();

  interface TestResult {
    channel: Channel;
    ok: boolean;
    message: string;
  }

  function render(res: Response, error: FormError | null = null, values: FormValues | null = null, test: TestResult | null = null): void {
    const file = ctx.config.fileValues();
    const live = ctx.config.get();
    res.render('settings/index.njk', {
      title: 'Settings',
      section: 'settings',
      groups: fieldSpecs().map(({ group, fields }) => ({
        group,
        id: `g-${group.toLowerCase().replace(/\W+/g, '-')}`,
        fields: fields.map((f) => {
          const stored = valueAt(file, f.name);
          const effective = valueAt(live, f.name);
          const text = fieldText(f.name);
          let value: string;
          if (f.kind === 'secret') value = '';
          else if (values && values[f.name] !== undefined) value = values[f.name]!;
          else if (f.kind === 'env') value = envText(stored);
          else if (f.kind === 'masked') value = maskUrl(String(stored ?? ''));
          else value = String(stored ?? '');
          return {
            ...f,
            label: text.label,
            help: text.help,
            id: `f-${f.name.replace(/\./g, '-')}`,
            value,
            checked: f.kind === 'boolean' ? (values ? values[f.name] === 'on' : stored === true) : false,
            secretSet: f.kind === 'secret' && Boolean(stored),
            restart: RESTART_FIELDS.includes(f.name),
            overridden:
              !['secret', 'masked', 'env'].includes(f.kind) && JSON.stringify(stored) !== JSON.stringify(effective)
                ? String(effective)
                : null,
            error: error?.field === f.name ? error.message : null,
            test: TEST_BUTTONS[f.name] ?? null,
            note: f.name === 'notifications.desktop' && !desktopCommand('', '') ? `Not available: ${NO_DESKTOP_NOTIFIER}.` : null,
          };
        }),
      })),
      clis: allAdapters().map((c) => {
        const binary = cliBinary(live, c.name);
        return { label: c.label, setting: binarySetting(c.name), binary, found: findExecutable(binary, process.env.PATH) };
      }),
      configFile: ctx.config.file,
      lastError: ctx.config.lastError,
      saveAnyway: values?.save_anyway === 'on',
      error,
      test,
    });
  }

  r.get('/settings', (_req, res) => render(res));

  r.post('/settings', async (req, res) => {
    const values = formValues(req);
    await submit(
      res,
      () => {
        const check = (n: Config, p: Config) => {
          refuseListenWithoutToken(ctx.store.db, n, p);
          if (values.save_anyway !== 'on') refuseMissingSetup(n, p, 'tick "save anyway"');
        };
        try {
          ctx.config.update(patchFromForm(values, ctx.config.fileValues()), check);
        } catch (err) {
          throw inWords(err);
        }
        return withNotice('/settings', 'saved');
      },
      (error) => render(res, error, values),
    );
  });

  // Test a channel with the notification settings as they are in the form (saved or not); nothing is saved.
  r.post('/settings/notifications/test', async (req, res) => {
    const values = formValues(req);
    const channel = values.channel;
    if (channel !== 'webhook' && channel !== 'desktop') throw new UserError('channel must be webhook or desktop', 'channel');
    const file = ctx.config.fileValues();
    let config;
    try {
      const patch = patchFromForm(values, file) as { notifications?: Record<string, unknown> };
      config = parseConfig({ ...structuredClone(file), notifications: { ...file.notifications, ...patch.notifications } });
    } catch (err) {
      const e = inWords(err);
      if (!(e instanceof UserError)) throw e;
      res.status(e.status);
      return render(res, { message: e.message, field: e.field ?? null, scope: null }, values);
    }
    const text = 'Notifications from Dispatcher reach you here.';
    const message = {
      kind: 'test' as const,
      title: 'Dispatcher test',
      text,
      ticket: null,
      project: null,
      path: '/settings',
      created_at: Date.now(),
    };
    let test: TestResult;
    try {
      const said = await send(channel, config.notifications, message, `http://127.0.0.1:${req.socket.localPort}`);
      test = { channel, ok: true, message: `Test sent: ${said}.` };
    } catch (err) {
      test = { channel, ok: false, message: `Test failed: ${(err as Error).message}.` };
    }
    render(res, null, values, test);
  });

  return r;
}
