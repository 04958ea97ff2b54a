// A stand-in for `systemctl --user`, injected as the service Runner: it records every command line
// and really runs the unit it is given (ExecStart with the unit's Environment= on top of the
// manager's own environment, as systemd does), so an install through it ends with a real daemon
// answering /api/health. The daemon is started through `sh &` so it is not a child of the test
// process, like under systemd.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { isAlive } from '../../lib/pidfile.js';
import type { CommandResult, Runner } from '../../lib/service.js';

const ok = (stdout = ''): CommandResult => ({ status: 0, stdout, stderr: '' });

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function unquote(word: string): string {
  return word.replace(/\\(.)/g, '$1').replace(/%%/g, '%').replace(/\$\$/g, '$');
}

export class FakeSystemd implements Runner {
  readonly calls: string[][] = [];
  readonly launched: string[][] = [];
  pid: number | null = null;
  /** the user manager's own environment, handed to what it starts (a desktop session may have imported anything) */
  readonly managerEnv: NodeJS.ProcessEnv = { HOME: '', LANG: 'C.UTF-8', PD_MANAGER_SECRET: 'imported-by-a-desktop-session' };

  constructor(
    private readonly unitFile: string,
    private readonly userHome: string,
    private readonly outFile: string,
  ) {}

  run(cmd: string, args: readonly string[]): CommandResult {
    this.calls.push([cmd, ...args]);
    if (cmd !== 'systemctl' || args[0] !== '--user') return { status: 1, stdout: '', stderr: `unexpected command ${cmd}` };
    const [verb, ...rest] = args.slice(1);
    switch (verb) {
      case 'show-environment':
      case 'daemon-reload':
        return ok();
      case 'enable':
        if (rest.includes('--now') && !this.running()) this.start();
        return ok();
      case 'start':
        if (!this.running()) this.start();
        return ok();
      case 'restart':
        this.stop();
        this.start();
        return ok();
      case 'stop':
        this.stop();
        return ok();
      case 'disable':
        if (rest.includes('--now')) this.stop();
        return ok();
      case 'show':
        return ok(`${this.running() ? this.pid : 0}\n`);
      default:
        return { status: 1, stdout: '', stderr: `unknown verb ${verb}` };
    }
  }

  launch(cmd: string, args: readonly string[]): void {
    this.launched.push([cmd, ...args]);
  }

  /** The recorded command lines without the MainPID polls, as strings. */
  lines(): string[] {
    return this.calls.filter((c) => c[2] !== 'show').map((c) => c.join(' '));
  }

  running(): boolean {
    return this.pid !== null && isAlive(this.pid);
  }

  private start(): void {
    const unit = fs.readFileSync(this.unitFile, 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!;
    const argv = [...exec.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => unquote(m[1]!));
    const env: NodeJS.ProcessEnv = { ...this.managerEnv, HOME: this.userHome, PATH: process.env.PATH };
    for (const m of unit.matchAll(/^Environment="((?:[^"\\]|\\.)*)"$/gm)) {
      const assignment = m[1]!.replace(/\\(.)/g, '$1').replace(/%%/g, '%');
      const eq = assignment.indexOf('=');
      env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
    }
    fs.mkdirSync(path.dirname(this.outFile), { recursive: true });
    const r = spawnSync('sh', ['-c', 'out=$1; shift; "$@" >>"$out" 2>&1 & echo $!', 'sh', this.outFile, ...argv], {
      env,
      encoding: 'utf8',
    });
    this.pid = Number(r.stdout.trim());
  }

  private stop(): void {
    if (!this.running()) return;
    process.kill(this.pid!, 'SIGTERM');
    const deadline = Date.now() + 20_000;
    while (isAlive(this.pid!) && Date.now() < deadline) sleepSync(50);
  }
}
