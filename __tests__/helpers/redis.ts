// A real redis-server for tests, on an ephemeral port with AOF on and its files in a temp folder
// (the documented production setup). Nothing is skipped: when redis-server is not installed, start
// fails with a message saying how to install it, and the test fails.
import fs from 'node:fs';
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tempDir } from './home.js';

export interface RunningRedis {
  port: number;
  url: string;
  dir: string;
  child: ChildProcess;
  /** Empties every database (between tests). */
  flushAll(): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
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

export async function startRedis(): Promise<RunningRedis> {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) {
    throw new Error('redis-server is not installed, and these tests need a real one: install it (Debian/Ubuntu: apt-get install -y redis-server)');
  }
  const dir = tempDir('pd-redis-');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
    if (!ready) {
      child.kill('SIGKILL');
      if (attempt < 3) continue; // the port was taken between the probe and the start
      throw new Error(`redis-server did not start: ${output.slice(-2000)}`);
    }
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      dir,
      child,
      async flushAll() {
        const r = await command(port, ['FLUSHALL']);
        if (!r.startsWith('+OK')) throw new Error(`FLUSHALL answered ${r}`);
      },
      async stop() {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await exited;
        }
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

