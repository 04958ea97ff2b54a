// A real redis-server for tests, on an ephemeral port with AOF on and its files in a temp folder
// (the documented production setup). Nothing is skipped: when redis-server is not installed, start
// fails with a message saying how to install it, and the test fails.
import fs from 'node:fs';
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort, tempDir } from './home.js';

export interface RunningRedis {
  port: number;
  url: string;
  dir: string;
  child: ChildProcess;
  /** Empties every database (between tests). */
  flushAll(): Promise<void>;
  /** Stops the server cleanly and starts it again on the same port and files (what it kept is what AOF kept). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** One RESP command over a plain socket (tests must not depend on the code under test to manage the server). */
function command(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = '';
    sock.setTimeout(5000, () => sock.destroy(new Error('redis did not answer in 5 s')));
    sock.on('data', (d) => {
      out += d.toString();
      if (out.endsWith('\r\n')) {
        sock.end();
        resolve(out);
      }
    });
    sock.on('error', reject);
    sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

/** Starts redis-server on `port` with its files in `dir`; resolves once it answers PING, or null when it exited. */
async function spawnRedis(port: number, dir: string, databases: number): Promise<{ child: ChildProcess; output: () => string } | null> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'yes',
    '--dir',
    dir,
    '--databases',
    String(databases),
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const ready = await new Promise<boolean>((resolve) => {
    const deadline = Date.now() + 20_000;
    const poll = () => {
      if (child.exitCode !== null) return resolve(false);
      command(port, ['PING']).then(
        (r) => (r.startsWith('+PONG') ? resolve(true) : setTimeout(poll, 100)),
        () => (Date.now() > deadline ? resolve(false) : setTimeout(poll, 100)),
      );
    };
    poll();
  });
  if (ready) return { child, output: () => output };
  child.kill('SIGKILL');
  lastOutput = output;
  return null;
}
let lastOutput = '';

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM'); // a clean shutdown: the append-only file is synced
  await exited;
}

/** `databases`: how many numbered databases the server has (redis' default is 16). */
export async function startRedis(opts: { databases?: number } = {}): Promise<RunningRedis> {
  const databases = opts.databases ?? 16;
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) {
    throw new Error(
      'redis-server is not installed, and these tests need a real one: install it (Debian/Ubuntu: apt-get install -y redis-server)',
    );
  }
  const dir = tempDir('pd-redis-');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const started = await spawnRedis(port, dir, databases);
    if (!started) {
      if (attempt < 3) continue; // the port was taken between the probe and the start
      throw new Error(`redis-server did not start: ${lastOutput.slice(-2000)}`);
    }
    const redis: RunningRedis = {
      port,
      url: `redis://127.0.0.1:${port}`,
      dir,
      child: started.child,
      async flushAll() {
        const r = await command(port, ['FLUSHALL']);
        if (!r.startsWith('+OK')) throw new Error(`FLUSHALL answered ${r}`);
      },
      async restart() {
        await stopChild(redis.child);
        const again = await spawnRedis(port, dir, databases);
        if (!again) throw new Error(`redis-server did not start again: ${lastOutput.slice(-2000)}`);
        redis.child = again.child;
      },
      async stop() {
        await stopChild(redis.child);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
    return redis;
  }
}
