// Headless Chromium for end-to-end tests: Debian's chromium (installed by .ci/run), one browser per
// file and a fresh page per test. A test fails if its page logs a script error or a CSP violation.
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface BrowserPages {
  page: Page;
  browser: Browser;
  /** The running test expects console errors containing `text` (e.g. a form refused on purpose). */
  expectConsoleError(text: string): void;
  /** Runs `fn` on a page of a browser context with JavaScript off, closed afterwards. */
  withoutJs<T>(fn: (page: Page) => Promise<T>): Promise<T>;
}

/** Registers the hooks; `current.page` is the page of the running test. */
export function browserPages(): BrowserPages {
  let errors: string[] = [];
  let expected: string[] = [];
  const current = {
    expectConsoleError: (text: string) => void expected.push(text),
    async withoutJs<T>(fn: (page: Page) => Promise<T>): Promise<T> {
      const context = await current.browser.newContext({ javaScriptEnabled: false });
      try {
        return await fn(await context.newPage());
      } finally {
        await context.close();
      }
    },
  } as BrowserPages;
  beforeAll(async () => {
    current.browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  });
  afterAll(async () => {
    await current.browser?.close();
  });
  beforeEach(async () => {
    current.page = await current.browser.newPage();
    errors = [];
    expected = [];
    current.page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    current.page.on('pageerror', (e) => errors.push(e.message));
  });
  afterEach(async () => {
    await current.page.close();
    expect(errors.filter((m) => !expected.some((text) => m.includes(text)))).toEqual([]);
  });
  return current;
}
