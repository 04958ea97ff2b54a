// `dispatch update` against a local HTTP server standing in for the npm registry, and offline.
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { compareVersions } from '../lib/update.js';
import { daemonEnv, dispatchBin, repoRoot } from './helpers/daemon.js';
import { tempDir } from './helpers/home.js';

const installed = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
let answer: { status: number; body: string } = { status: 200, body: '{}' };
const requested: string[] = [];
const registry = http.createServer((req, res) => {
  requested.push(req.url ?? '');
  res.writeHead(answer.status, { 'content-type': 'application/json' });
  res.end(answer.body);
});
let registryUrl: string;

beforeAll(async () => {
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', () => r()));
  registryUrl = `http://127.0.0.1:${(registry.address() as net.AddressInfo).port}`;
});
afterAll(() => {
  registry.close();
  registry.closeAllConnections();
});

// async: the stand-in registry runs in this process and must keep answering while the CLI waits
function update(reg: string): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [dispatchBin, 'update'], { env: { ...daemonEnv(tempDir()), npm_config_registry: reg }, encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

test('a newer version on the registry: says so and prints the upgrade command', async () => {
  answer = { status: 200, body: JSON.stringify({ name: 'projectdispatcher', version: '99.1.0' }) };
  const r = await update(registryUrl);
  expect(r.status).toBe(0);
  expect(requested.at(-1)).toBe('/projectdispatcher/latest');
  expect(r.stdout).toContain(`projectdispatcher 99.1.0 is available (installed: ${installed})`);
  expect(r.stdout).toContain(`npm install -g projectdispatcher@99.1.0 --registry ${registryUrl} && dispatch daemon restart`);
});

test('the same version: up to date', async () => {
  answer = { status: 200, body: JSON.stringify({ version: installed }) };
  const r = await update(`${registryUrl}/`);
  expect(r.status).toBe(0);
  expect(r.stdout.trim()).toBe(`projectdispatcher ${installed} is up to date (latest: ${installed})`);
});

test('offline, a registry error or a body without a version: one clear line, exit 1, no stack trace', async () => {
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const offline = await update(`http://127.0.0.1:${port}`);
  expect(offline.status).toBe(1);
  expect(offline.stderr).toBe(`dispatch: cannot reach the package registry at http://127.0.0.1:${port} (ECONNREFUSED); are you offline?\n`);

  answer = { status: 503, body: '{"error":"down"}' };
  const down = await update(registryUrl);
  expect(down.status).toBe(1);
  expect(down.stderr).toBe(`dispatch: the package registry at ${registryUrl} answered 503 for projectdispatcher\n`);

  answer = { status: 200, body: 'not json' };
  const garbage = await update(registryUrl);
  expect(garbage.status).toBe(1);
  expect(garbage.stderr).toBe(`dispatch: the package registry at ${registryUrl} gave no version for projectdispatcher\n`);
});

test('version order', () => {
  expect(compareVersions('0.10.0', '0.9.9')).toBe(1);
  expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
  expect(compareVersions('1.0.0-beta.1', '1.0.0')).toBe(-1);
  expect(compareVersions('0.1.0', '0.2.0')).toBe(-1);
});
