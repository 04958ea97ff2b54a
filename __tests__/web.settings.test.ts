// The Settings page for people: in headless Chromium at 390 px, fields come in the groups Agents,
// Heartbeat, Budgets, Notifications, AI login and Advanced, each with a label in words and a line of
// help; a refused value comes back as a sentence about its field, never a config path or a schema
// message, and nothing is saved. Every schema field has its words, and every kind of refusal turns
// into a sentence (lib/configFields.ts); the API keeps naming the field path.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { browserPages } from './helpers/browser.js';
import { startTestDaemon, type RunningDaemon } from './helpers/daemon.js';
import { ConfigFieldError, configSchema, parseConfig } from '../lib/config.js';
import { configSentence, FIELD_TEXT, SETTINGS_GROUPS } from '../lib/configFields.js';

const browser = browserPages();
let d: RunningDaemon;
const PHONE = { width: 390, height: 844 };

beforeAll(async () => {
  d = await startTestDaemon();
}, 60_000);
afterAll(async () => {
  await d?.stop();
});

/** The sentence the Settings page gives for a raw config. */
function sentence(raw: unknown): string {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof ConfigFieldError) return configSentence(err.issue);
    throw err;
  }
  throw new Error('accepted');
}

test('every config field has a group, a label in words and a line of help', () => {
  const leaves: string[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string) => {
    for (const [key, raw] of Object.entries(shape)) {
      let s = raw;
      while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
      const name = prefix ? `${prefix}.${key}` : key;
      if (s instanceof z.ZodObject) walk(s.shape as Record<string, z.ZodType>, name);
      else leaves.push(name);
    }
  };
  walk(configSchema.shape as Record<string, z.ZodType>, '');
  expect(leaves.filter((l) => !FIELD_TEXT[l])).toEqual([]);
  for (const [name, t] of Object.entries(FIELD_TEXT)) {
    expect([name, SETTINGS_GROUPS.includes(t.group), t.label.includes('.'), t.help.length > 20]).toEqual([name, true, false, true]);
  }
});

test('each kind of refusal is a sentence about its field', () => {
  expect(sentence({ agents: { max_concurrent_global: 0 } })).toBe('The global limit must be at least 1');
  expect(sentence({ agents: { max_concurrent_per_project: 1000 } })).toBe('The limit per project must be at most 100');
  expect(sentence({ agents: { max_concurrent_global: 2.5 } })).toBe('The global limit must be a whole number');
  expect(sentence({ budgets: { daily_usd: 'five' } })).toBe('The daily budget must be a number');
  expect(sentence({ agents: { parallel_coding: 'yes' } })).toBe('Parallel coding must be on or off');
  expect(sentence({ ai: { auth_method: 'password' } })).toBe('The login method must be one of: oauth, api_key, custom');
  expect(sentence({ heartbeat: { base_interval_seconds: 600, max_interval_seconds: 60 } })).toBe(
    'The longest interval must be at least the check interval',
  );
  expect(sentence({ notifications: { quiet_hours_start: '25:00', quiet_hours_end: '07:00' } })).toBe(
    'The start of the quiet hours must be a time like 22:00, or empty',
  );
  expect(sentence({ notifications: { quiet_hours_start: '22:00' } })).toBe(
    'Quiet hours need both a start and an end, and the two must differ',
  );
  expect(sentence({ agents: { env: { LD_PRELOAD: 'x' } } })).toBe(
    'LD_PRELOAD changes which code programs load or run, so agents cannot be given it',
  );
  expect(sentence({ nope: 1 })).toBe('There is no setting called "nope"');
});

test('at 390 px: the groups in order, words and help per field, a bad value refused in a sentence, nothing saved', async () => {
  const { page } = browser;
  await page.setViewportSize(PHONE);
  await page.goto(`${d.url}/settings`);
  expect(await page.locator('.settings-form legend').allTextContents()).toEqual([
    'Agents',
    'Heartbeat',
    'Budgets',
    'Notifications',
    'AI login',
    'Advanced',
  ]);
  const agents = page.locator('fieldset', { has: page.locator('legend', { hasText: 'Agents' }) });
  await agents.getByLabel('Global limit').waitFor();
  expect(await page.locator('.settings-form fieldset .field').count()).toBe(Object.keys(FIELD_TEXT).length);
  expect(await page.locator('.settings-form fieldset .field > .help').count()).toBe(Object.keys(FIELD_TEXT).length);
  expect(await page.locator('#f-agents-default_timeout_minutes-help').textContent()).toContain(
    "Each agent type's own timeout (on its page) is the one used: it wins over this default.",
  );
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);

  const before = fs.existsSync(path.join(d.home, 'config.json')) ? fs.readFileSync(path.join(d.home, 'config.json'), 'utf8') : null;
  await page.getByLabel('Global limit').fill('0');
  // the browser would stop the form at min="1" itself; the daemon's own answer is what is tested
  await page.locator('#f-agents-max_concurrent_global').evaluate((el) => el.removeAttribute('min'));
  await page.getByRole('button', { name: 'Save settings' }).click();
  const error = page.locator('.field-error');
  await error.waitFor();
  expect(await error.allTextContents()).toEqual(['The global limit must be at least 1']);
  expect(await page.locator('.form-error').textContent()).toBe('Not saved: The global limit must be at least 1');
  const html = await page.content();
  expect(html).not.toMatch(/config: |Too small|expected number/);
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
  expect(fs.existsSync(path.join(d.home, 'config.json')) ? fs.readFileSync(path.join(d.home, 'config.json'), 'utf8') : null).toBe(before);
  browser.expectConsoleError('status of 400');

  // the API still names the field's path
  const api = await d.api('PATCH', '/api/config', { agents: { max_concurrent_global: 0 } });
  expect([api.status, api.body.field]).toEqual([400, 'agents.max_concurrent_global']);
  expect(api.body.error).toMatch(/^config: agents\.max_concurrent_global: /);
}, 90_000);

test("an agent type's page says its timeout wins over the default", async () => {
  const { page } = browser;
  await page.goto(`${d.url}/agent-types/coding-agent`);
  expect(await page.locator('#at-timeout-help').textContent()).toMatch(/it is the one used, and wins over the default timeout in Settings/);
});
