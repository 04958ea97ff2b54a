// Regenerates docs/screenshots/*.png: starts the built daemon on a temp home, files some demo
// projects, tickets, findings and runs, and photographs the main pages in headless Chromium, on
// a desktop screen and on a 390 px phone (phone-*.png).
// The agents are the test suite's fake claude told (through agents.env) to start and then wait,
// so the running agents on the board and in the queue inspector are real processes; they are
// killed after the daemon stops, since agents outlive a daemon by design.
// Usage: npm run build && node scripts/screenshots.mjs [chromium path]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'docs', 'screenshots');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-shots-'));
const home = path.join(tmp, 'home');
const dev = path.join(tmp, 'Development');
for (const name of ['shop', 'blog', 'infra', 'notes']) fs.mkdirSync(path.join(dev, name), { recursive: true });
fs.mkdirSync(home, { recursive: true });
// shop is a git repository so a finished ticket can show its merged branch diff
const shopRepo = path.join(dev, 'shop');
const git = (...args) => execFileSync('git', ['-C', shopRepo, ...args], { encoding: 'utf8' }).trim();
git('init', '-q', '-b', 'main');
// the daemon's merge commits need an identity too, so it goes in the repository's own config
git('config', 'user.name', 'Demo');
git('config', 'user.email', 'demo@example.invalid');
git('config', 'commit.gpgsign', 'false');
fs.writeFileSync(
  path.join(shopRepo, 'footer.html'),
  '<footer>\n  <p>© 2026 Shop Inc. All rigths reserved.</p>\n  <a href="/privacy">Privacy</a>\n</footer>\n',
);
git('add', '-A');
git('commit', '-q', '-m', 'footer');
fs.writeFileSync(
  path.join(home, 'config.json'),
  JSON.stringify({ agents: { env: { FAKE_CLAUDE_SCRIPT: JSON.stringify({ '*': [{ do: 'hang' }] }) } } }, null, 2),
);

const fakeClaude = path.join(root, '__tests__', 'fixtures', 'fake-claude.cjs');
// a 2,000-character code line: on a phone it scrolls inside its code block, never the page
const LONG_CONFIG = `export default { ${Array.from({ length: 100 }, (_, i) => `option${i}: 'value-${i}'`).join(', ')} };`.slice(0, 2000);

/** A coding agent's session as claude -p writes it: reading, searching, editing, testing. */
function demoTranscript() {
  let n = 0;
  const use = (name, input) => ({ type: 'assistant', message: { content: [{ type: 'tool_use', id: `toolu_${++n}`, name, input }] } });
  const result = (content, isError = false) => ({
    type: 'user',
    message: { content: [{ type: 'tool_result', tool_use_id: `toolu_${n}`, content, is_error: isError }] },
  });
  const testRun = ['> shop@1.4.0 test', '> node --test', ''].concat(
    Array.from(
      { length: 26 },
      (_, i) => `ok ${i + 1} - ${['cart totals', 'coupon clamp', 'refunds', 'tax rounding'][i % 4]} case ${i + 1}`,
    ),
    ['', '# tests 26', '# pass 26', '# fail 0'],
  );
  return (
    [
      {
        type: 'system',
        subtype: 'init',
        model: 'claude-sonnet-5',
        cwd: '/home/me/Development/shop',
        permissionMode: 'acceptEdits',
        tools: ['Bash', 'Read', 'Edit', 'Grep'],
      },
      {
        type: 'assistant',
        message: { content: [{ type: 'text', text: 'I will find where coupons are applied and clamp the total at zero.' }] },
      },
      use('Grep', { pattern: 'applyCoupon', path: 'src', glob: '*.js' }),
      result('src/cart.js\nsrc/checkout.js'),
      use('Read', { file_path: '/home/me/Development/shop/src/cart.js', offset: 40, limit: 20 }),
      result(
        '40  export function applyCoupon(total, coupon) {\n41    const discount = total * coupon.percent / 100;\n42    return total - discount;\n43  }',
      ),
      use('Edit', {
        file_path: '/home/me/Development/shop/src/cart.js',
        old_string: '  const discount = total * coupon.percent / 100;\n  return total - discount;',
        new_string:
          '  const discount = total * coupon.percent / 100;\n  // a coupon above 100% must not make the total negative\n  return Math.max(0, total - discount);',
      }),
      result('The file /home/me/Development/shop/src/cart.js has been updated.'),
      use('Bash', { command: 'npm test', description: 'Run the test suite' }),
      result(testRun.join('\n')),
      use('Bash', {
        command: 'ticket comment shop-2 complete "Clamped the total at zero; tests for 99%, 100% and 120% coupons."',
        description: 'Report on the ticket',
      }),
      result('{"ok":true,"type":"complete"}'),
      {
        type: 'result',
        subtype: 'success',
        is_error: false,
        result: 'Clamped the total at zero and added boundary tests.',
        num_turns: 6,
        duration_ms: 94000,
        total_cost_usd: 0.105228,
        usage: { input_tokens: 34336, output_tokens: 148 },
      },
    ]
      .map((l) => JSON.stringify(l))
      .join('\n') + '\n'
  );
}
const env = {
  PATH: process.env.PATH,
  HOME: tmp,
  LANG: 'C.UTF-8',
  DISPATCH_HOME: home,
  DISPATCH_PROJECTS_ROOT: dev,
  DISPATCH_PORT: '0',
  DISPATCH_CLAUDE_BIN: fakeClaude,
};
const daemon = spawn(process.execPath, [path.join(root, 'dist', 'bin', 'daemon.js')], { env, stdio: 'ignore' });

async function waitForPort() {
  for (let i = 0; i < 200; i++) {
    try {
      const info = JSON.parse(fs.readFileSync(path.join(home, 'daemon.pid'), 'utf8'));
      if (info.port && (await fetch(`http://127.0.0.1:${info.port}/api/health`)).ok) return info.port;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('daemon did not start');
}

try {
  const url = `http://127.0.0.1:${await waitForPort()}`;
  const api = async (method, p, body) => {
    const res = await fetch(url + p, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  await api('POST', '/api/projects', { path: path.join(dev, 'shop'), type: 'software-dev', abbreviation: 'shop' });
  await api('POST', '/api/projects', { path: path.join(dev, 'blog'), type: 'content', abbreviation: 'blog' });
  await api('POST', '/api/projects', { path: path.join(dev, 'infra'), type: 'vps-maintenance', abbreviation: 'ops' });
  const ticket = (project, title, column, priority = 'normal', body = '') =>
    api('POST', '/api/tickets', { project, title, column, priority, body });
  await ticket('shop', 'Add CSV export to the orders page', 'human', 'high', '');
  await ticket(
    'shop',
    'Checkout fails for coupons over 100%',
    'coding-agent',
    'urgent',
    'Coupons above 100% make the total negative.\n\n1. Add a coupon with `percent: 120`\n2. Open the cart\n\n**Expected:** the total stops at zero.',
  );
  await ticket('shop', 'Rate-limit the login endpoint', 'code-reviewer', 'high');
  await ticket('shop', 'Dark mode for the admin', 'security-reviewer');
  await ticket('shop', 'Upgrade to Node 22', 'coding-agent', 'low');
  for (const t of ['Fix typo in footer', 'Cache product images', 'Paginate search results']) await ticket('shop', t, 'done');
  const codeTicket = (
    await ticket(
      'shop',
      'Config loader fails on long lines',
      'human',
      'normal',
      `Loading this one-line config crashes the parser:\n\n\`\`\`js\n${LONG_CONFIG}\n\`\`\`\n\nShorter files load fine.`,
    )
  ).ticket.key;
  await ticket('blog', 'Launch post for v2', 'human', 'normal');
  await api('POST', '/api/tickets/blog-1/comments', {
    type: 'block',
    author: 'writer:run-7',
    body: 'Should the launch post be formal or casual? The old posts mix both.',
  });
  await ticket('ops', 'Renew TLS certificates', 'sysadmin', 'high');
  await ticket('ops', 'Disk usage alert on db-1', 'human', 'urgent');
  await api('POST', '/api/tickets/ops-2/comments', {
    type: 'block',
    author: 'sysadmin:run-3',
    body: 'Deleting old WAL archives frees 40 GB. OK to delete archives older than 30 days?',
  });
  await api('POST', '/api/tickets/shop-2/findings', {
    severity: 'critical',
    title: 'Negative totals reach the payment provider',
    body: '`applyCoupon` never clamps the discount.',
    author: 'security-reviewer:run-2',
  });
  await api('POST', '/api/tickets/shop-2/findings', {
    severity: 'medium',
    title: 'No test for 100% coupons',
    body: 'Add a boundary test.',
    author: 'code-reviewer:run-1',
  });
  await api('POST', '/api/tickets/shop-2/findings', {
    severity: 'low',
    title: 'Variable name `x`',
    body: 'Rename to `discount`.',
    author: 'code-reviewer:run-1',
  });
  await api('POST', '/api/tickets/shop-2/comments', {
    type: 'comment',
    author: 'coding-agent:run-4',
    body: 'Clamped the total at zero and added tests for 99%, 100% and 120% coupons.',
  });

  git('checkout', '-q', '-b', 'ticket/shop-6');
  fs.writeFileSync(
    path.join(shopRepo, 'footer.html'),
    '<footer>\n  <p>© 2026 Shop Inc. All rights reserved.</p>\n  <a href="/privacy">Privacy</a>\n  <a href="/terms">Terms</a>\n</footer>\n',
  );
  fs.writeFileSync(
    path.join(shopRepo, 'footer.test.js'),
    "test('footer spells rights', () => {\n  expect(render()).toContain('All rights reserved');\n});\n",
  );
  git('add', '-A');
  git('commit', '-q', '-m', 'Fix typo in footer; link the terms');
  git('checkout', '-q', 'main');

  const db = new Database(path.join(home, 'tasks.db'));
  // as if an agent had worked on shop-6's branch: the merge worker merges it for real once woken
  db.prepare(
    `UPDATE tickets SET branch = 'ticket/shop-6' WHERE id = (SELECT t.id FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = 'shop' AND t.number = 6)`,
  ).run();
  // as if the agents that asked their questions on blog-1 and ops-2 had parked them: the inbox's "needs you"
  const park = db.prepare(
    `UPDATE tickets SET parked_by = ? WHERE id = (SELECT t.id FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = ? AND t.number = ?)`,
  );
  park.run('writer:run-7', 'blog', 1);
  park.run('sysadmin:run-3', 'ops', 2);
  await api('PATCH', '/api/config', {
    notifications: {
      webhook_url: 'https://ntfy.sh/dispatch-demo-7f3a',
      webhook_format: 'ntfy',
      quiet_hours_start: '22:00',
      quiet_hours_end: '07:00',
    },
  });
  await api('POST', '/api/projects/shop/wake');
  const runsDir = path.join(home, 'artifacts', 'runs');
  fs.mkdirSync(runsDir, { recursive: true });
  const sample = fs.readFileSync(path.join(root, '__tests__', 'fixtures', 'claude-stream-sample.jsonl'), 'utf8');
  const addRun = (id, key, agent, status, minutesAgo, cost) => {
    const [abbr, n] = key.split('-');
    const t = db
      .prepare(
        `SELECT t.id, t.project_id, t.column_id FROM tickets t JOIN projects p ON p.id = t.project_id WHERE p.abbreviation = ? AND t.number = ?`,
      )
      .get(abbr, Number(n));
    const start = Date.now() - minutesAgo * 60_000;
    const file = path.join(runsDir, `${id}.log`);
    fs.writeFileSync(file, id === 'r-shop2-a' ? demoTranscript() : sample);
    db.prepare(
      `INSERT INTO runs (id, ticket_id, project_id, agent_type_id, model, column_id, status, transcript_path, tokens_in, tokens_out, cost_usd, created_at, started_at, ended_at)
       VALUES (?, ?, ?, ?, 'sonnet', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      id,
      t.id,
      t.project_id,
      agent,
      t.column_id,
      status,
      file,
      status === 'running' ? null : 34336,
      status === 'running' ? null : 148,
      cost,
      start,
      start,
      status === 'running' ? null : start + 94_000,
    );
    if (status === 'running') db.prepare(`UPDATE tickets SET claimed_by_run = ?, claimed_at = ? WHERE id = ?`).run(id, start, t.id);
  };
  addRun('r-shop2-a', 'shop-2', 'coding-agent', 'success', 50, 0.105228);
  addRun('r-shop2-b', 'shop-2', 'code-reviewer', 'failed', 35, 0.0412);
  addRun('r-ops1-a', 'ops-1', 'sysadmin', 'success', 20, 0.0133);
  // queue inspector: a scan of a project that does not exist fails for real; a merge waits its turn
  const job = (queue, payload, availableAt) =>
    db
      .prepare(
        `INSERT INTO tasks (queue, payload, createdAt, status, allocationId, numRunsLeft, maxNumRuns, availableAt) VALUES (?, ?, ?, 'pending', 'demo', 1, 1, ?)`,
      )
      .run(queue, JSON.stringify(payload), Math.floor(Date.now() / 1000), availableAt).lastInsertRowid;
  const failing = job('scan', { projectId: 42, wakeSeq: 0 }, Date.now());
  job('merge', { ticketId: 7 }, Date.now() + 10 * 60_000);
  const until = async (what, fn) => {
    for (let i = 0; i < 300 && !fn(); i++) await new Promise((r) => setTimeout(r, 100));
    if (!fn()) throw new Error(`timed out waiting for ${what}`);
  };
  await until(
    'four running agents',
    () => db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status = 'running' AND pid IS NOT NULL`).get().n >= 4,
  );
  await until('the merge of shop-6', () => db.prepare(`SELECT merged_at FROM tickets WHERE branch = 'ticket/shop-6'`).get()?.merged_at);
  await until('the failing scan', () => db.prepare(`SELECT status FROM tasks WHERE id = ?`).get(failing)?.status === 'failed');
  db.close();

  const browser = await chromium.launch({
    executablePath: process.argv[2] ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const shots = [
    ['inbox', '/inbox', 'light'],
    ['board', '/projects/shop', 'light'],
    ['board-dark', '/projects/shop', 'dark'],
    ['ticket', '/tickets/shop-2', 'light'],
    ['transcript', '/runs/r-shop2-a', 'light'],
    ['settings', '/settings', 'light'],
    ['agent-type', '/agent-types/code-reviewer', 'light'],
    ['projects', '/projects', 'light'],
    ['queues', '/queues', 'light'],
    ['ticket-diff', '/tickets/shop-6#diff-h', 'light'],
    ['search', '/search?q=coupon*', 'light'],
    ['costs', '/costs', 'light'],
    ['settings-notifications', '/settings#g-notifications', 'light'],
    // a 390 px phone
    ['phone-inbox', '/inbox', 'light', 'phone'],
    ['phone-board', '/projects/shop', 'light', 'phone'],
    ['phone-ticket', `/tickets/${codeTicket}`, 'light', 'phone'],
    ['phone-ticket-diff', '/tickets/shop-6#diff-h', 'light', 'phone'],
    ['phone-transcript', '/runs/r-shop2-a', 'light', 'phone'],
    ['phone-search', '/search?q=coupon*', 'dark', 'phone'],
  ];
  for (const [name, p, scheme, device] of shots) {
    const viewport = device === 'phone' ? { width: 390, height: 844 } : { width: 1360, height: name === 'queues' ? 1200 : 860 };
    const page = await browser.newPage({ viewport, colorScheme: scheme });
    await page.goto(url + p);
    if (name === 'phone-transcript') await page.locator('.tx-call-edit').scrollIntoViewIfNeeded();
    if (name === 'agent-type') await page.locator('#prompt-preview h1, #prompt-preview h2').first().waitFor();
    await page.screenshot({ path: path.join(out, `${name}.png`) });
    await page.close();
  }
  await browser.close();
  console.log(`screenshots written to ${out}`);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  // with the daemon gone nothing starts another agent; each hanging one is its own process group
  if (fs.existsSync(path.join(home, 'tasks.db'))) {
    const db = new Database(path.join(home, 'tasks.db'), { readonly: true });
    for (const { pid } of db.prepare(`SELECT pid FROM runs WHERE status = 'running' AND pid IS NOT NULL`).all()) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    db.close();
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}
