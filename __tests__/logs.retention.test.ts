// Daily log files: retention by the date in the file name (so it applies to files from earlier
// runs too), and a follower that keeps going across the midnight rollover without losing a line.
import fs from 'node:fs';
import path from 'node:path';
import { followLogs, pruneLogs } from '../lib/logger.js';
import { tempDir } from './helpers/home.js';

const day = (d: Date) =>
  `daemon-${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}.log`;

test('files older than the retention are deleted; today and the kept days stay; other files are untouched', () => {
  const dir = tempDir('pd-logs-');
  const now = new Date(2026, 10, 24, 12, 0, 0);
  const names = [0, 1, 2, 3, 10].map((back) => day(new Date(2026, 10, 24 - back)));
  for (const n of [...names, 'daemon.out', '.audit.json']) fs.writeFileSync(path.join(dir, n), 'x\n');
  const removed = pruneLogs(dir, 3, now).map((f) => path.basename(f));
  expect(removed.sort()).toEqual([names[3], names[4]].sort());
  expect(fs.readdirSync(dir).sort()).toEqual(['.audit.json', 'daemon.out', names[0], names[1], names[2]].sort());
  fs.rmSync(dir, { recursive: true });
});

test('--follow reads the rest of the old day, then the new day from its start', async () => {
  const dir = tempDir('pd-follow-');
  const today = path.join(dir, 'daemon-2026-11-24.log');
  fs.writeFileSync(today, '{"message":"old, already printed"}\n');
  const seen: string[] = [];
  const follower = followLogs(dir, (line) => seen.push(line), { pollMs: 50 });
  try {
    fs.appendFileSync(today, 'a1\na2');
    await new Promise((r) => setTimeout(r, 200));
    fs.appendFileSync(today, '-end\n');
    fs.appendFileSync(today, 'a3\n'); // written just before midnight, not yet read
    fs.writeFileSync(path.join(dir, 'daemon-2026-11-25.log'), 'b1\nb2\n');
    const deadline = Date.now() + 10_000;
    while (seen.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    fs.appendFileSync(path.join(dir, 'daemon-2026-11-25.log'), 'b3\n');
    while (seen.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual(['a1', 'a2-end', 'a3', 'b1', 'b2', 'b3']);
  } finally {
    follower.stop();
    fs.rmSync(dir, { recursive: true });
  }
});

test('--follow from where the tail ended: a new day that appeared in between is read from its start', async () => {
  const dir = tempDir('pd-follow-from-');
  const old = path.join(dir, 'daemon-2026-11-24.log');
  fs.writeFileSync(old, 'printed\n');
  const offset = fs.statSync(old).size;
  fs.appendFileSync(old, 'x1\n');
  fs.writeFileSync(path.join(dir, 'daemon-2026-11-25.log'), 'y1\n');
  const seen: string[] = [];
  const follower = followLogs(dir, (line) => seen.push(line), { from: { file: old, offset }, pollMs: 50 });
  try {
    const deadline = Date.now() + 10_000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual(['x1', 'y1']);
  } finally {
    follower.stop();
    fs.rmSync(dir, { recursive: true });
  }
});

test("dispatch daemon logs --follow prints the last lines, then the next day's lines as they come", async () => {
  const { spawn } = await import('node:child_process');
  const { daemonEnv, dispatchBin } = await import('./helpers/daemon.js');
  const root = tempDir('pd-follow-cli-');
  const env = daemonEnv(root);
  const logs = path.join(env.DISPATCH_HOME!, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  fs.writeFileSync(
    path.join(logs, 'daemon-2026-11-24.log'),
    '{"timestamp":"2026-11-24T23:59:58Z","level":"info","message":"late","ticket":"pd-1"}\n',
  );
  const child = spawn(process.execPath, [dispatchBin, 'daemon', 'logs', '--follow'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  try {
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 20_000;
      while (!pattern.test(out)) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} in: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor(/late ticket=pd-1/);
    // no pause here: the new day's file may appear before the follower's first poll
    fs.writeFileSync(
      path.join(logs, 'daemon-2026-11-25.log'),
      '{"timestamp":"2026-11-25T00:00:01Z","level":"info","message":"early","run":"r9"}\n',
    );
    await waitFor(/2026-11-25T00:00:01Z info {2}early run=r9/);
  } finally {
    child.kill();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
