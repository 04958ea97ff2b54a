// The OS service that keeps the daemon running: a systemd user unit on Linux, a LaunchAgent on
// macOS. File contents and command lines are pure functions of a ServiceSpec; every command runs
// through one injectable Runner, so tests record exactly what would run without a real systemd.
// The service must only kill the daemon's own process on stop (KillMode=process): agents run
// detached and are adopted by the next daemon.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { UserError } from './errors.js';
/**
 * Node flags of the daemon process, however it is started. V8's memory reducer wakes an idle
 * process every 8 s to shrink its heap; for the daemon that was most of its idle CPU
 * (BENCHMARKS.md, "idle daemon").
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];

export const SERVICE_NAME = 'projectdispatcher';
export const SYSTEMD_UNIT = `${SERVICE_NAME}.service`;
export const LAUNCHD_LABEL = `com.${SERVICE_NAME}.daemon`;

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs external commands: `run` waits for the result, `launch` fires and forgets (a browser). */
export interface Runner {
  run(cmd: string, args: readonly string[]): CommandResult;
  launch(cmd: string, args: readonly string[]): void;
}

export const systemRunner: Runner = {
  run(cmd, args) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
    if (r.error) {
      const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
      return { status: -1, stdout: '', stderr: missing ? `${cmd}: command not found` : r.error.message };
    }
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  },
  launch(cmd, args) {
    try {
      const child = spawn(cmd, args, { detached: true, stdio: 'ignore' });
      child.on('error', () => {}); // no browser is not an error
      child.unref();
    } catch {
      // same: opening a browser is a courtesy
    }
  },
};

/**
 * The variables the daemon process keeps from the environment that starts it (a shell, the
 * service manager). Agents run as the same user and can read the daemon's environment
 * (`/proc/<pid>/environ`), so the daemon starts with only what it or its agents use: who and
 * where the user is (HOME, USER, LOGNAME, SHELL, PATH, TMPDIR), language and time zone (LANG,
 * LANGUAGE, LC_*, TZ), where the agent CLI keeps its login (XDG_CONFIG_HOME, CLAUDE_CONFIG_DIR)
 * and the DISPATCH_* settings the daemon reads. Dropped on purpose: cloud and API credentials
 * (ANTHROPIC_API_KEY included: agents get a key from `ai.*` in config.json), proxies, NODE_*, and
 * XDG_RUNTIME_DIR / DBUS_SESSION_BUS_ADDRESS (the daemon never calls systemctl or launchctl).
 */
const DAEMON_ENV: readonly string[] = [
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'PATH',
  'TMPDIR',
  'LANG',
  'LANGUAGE',
  'TZ',
  'XDG_CONFIG_HOME',
  'CLAUDE_CONFIG_DIR',
  'DISPATCH_PORT',
  'DISPATCH_CLAUDE_BIN',
  'DISPATCH_PROJECTS_ROOT',
];

/** The daemon's whole environment, taken from `from` (sorted by name, so a service file is stable). */
export function daemonEnvironment(from: NodeJS.ProcessEnv, home: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of Object.keys(from)) {
    const value = from[name];
    if (value !== undefined && (DAEMON_ENV.includes(name) || name.startsWith('LC_'))) env[name] = value;
  }
  env.HOME ??= os.homedir();
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  env.DISPATCH_HOME = home;
  return Object.fromEntries(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * What the service runs: absolute node, the daemon script, and the daemon's whole environment
 * (from daemonEnvironment: the installing user's PATH, so the daemon finds `claude` and `git` like
 * the user's shell does, and the home). The service starts it through `env -i`, because a service
 * manager hands its own environment to what it starts, and a user manager's may hold whatever a
 * desktop session imported.
 */
export interface ServiceSpec {
  nodePath: string;
  daemonScript: string;
  home: string;
  env: Record<string, string>;
}

/** The service's command line: `env -i NAME=value … node flags daemon.js`. */
function serviceArgv(spec: ServiceSpec): string[] {
  const env = Object.entries({ ...spec.env, DISPATCH_HOME: spec.home }).sort(([a], [b]) => (a < b ? -1 : 1));
  return ['/usr/bin/env', '-i', ...env.map(([k, v]) => `${k}=${v}`), spec.nodePath, ...DAEMON_NODE_FLAGS, spec.daemonScript];
}

export type ServiceKind = 'systemd' | 'launchd';

export function serviceKindFor(platform: NodeJS.Platform): ServiceKind | null {
  if (platform === 'linux') return 'systemd';
  if (platform === 'darwin') return 'launchd';
  return null;
}

export function serviceFilePath(kind: ServiceKind, userHome: string): string {
  return kind === 'systemd'
    ? path.join(userHome, '.config', 'systemd', 'user', SYSTEMD_UNIT)
    : path.join(userHome, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
}

/** A systemd word: quoted, with C escapes, `%` specifiers and `$` expansion neutralised. */
function systemdQuote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}

export function systemdUnit(spec: ServiceSpec): string {
  return [
    '# Project Dispatcher daemon, written by `dispatch install`; `dispatch uninstall` removes it.',
    '[Unit]',
    'Description=Project Dispatcher daemon',
    'After=network.target',
    '',
    '[Service]',
    'Type=simple',
    // the daemon's whole environment is on this line (env -i): nothing from the user manager's
    `ExecStart=${serviceArgv(spec).map(systemdQuote).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=5',
    // agents are detached children: stopping the service MUST NOT kill them (adopted on restart)
    'KillMode=process',
    'TimeoutStopSec=30',
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
}

function xml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function launchAgentPlist(spec: ServiceSpec): string {
  const out = path.join(spec.home, 'logs', 'launchd.out');
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Project Dispatcher daemon, written by \`dispatch install\`; \`dispatch uninstall\` removes it. -->
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>${LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
${serviceArgv(spec)
  .map((a) => `    <string>${xml(a)}</string>`)
  .join('\n')}
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>AbandonProcessGroup</key>
  <true/>
  <key>StandardOutPath</key>
  <string>${xml(out)}</string>
  <key>StandardErrorPath</key>
  <string>${xml(out)}</string>
</dict>
</plist>
`;
}

export function renderServiceFile(kind: ServiceKind, spec: ServiceSpec): string {
  return kind === 'systemd' ? systemdUnit(spec) : launchAgentPlist(spec);
}

/**
 * The DISPATCH_HOME an installed service file points at, or null. Reads the `env -i` command line,
 * and the Environment= line / EnvironmentVariables entry of files written by earlier versions.
 */
export function homeInServiceFile(text: string): string | null {
  const unit = /^ExecStart=.*?"DISPATCH_HOME=((?:[^"\\]|\\.)*)"/m.exec(text);
  if (unit) return unit[1]!.replace(/\\(.)/g, '$1').replace(/%%/g, '%').replace(/\$\$/g, '$');
  const oldUnit = /^Environment="DISPATCH_HOME=((?:[^"\\]|\\.)*)"$/m.exec(text);
  if (oldUnit) return oldUnit[1]!.replace(/%%/g, '%').replace(/\\(.)/g, '$1');
  const plist = /<string>DISPATCH_HOME=([^<]*)<\/string>/.exec(text) ?? /<key>DISPATCH_HOME<\/key>\s*<string>([^<]*)<\/string>/.exec(text);
  if (plist)
    return plist[1]!
      .replace(/&quot;/g, '"')
      .replace(/&gt;/g, '>')
      .replace(/&lt;/g, '<')
      .replace(/&amp;/g, '&');
  return null;
}

export type ServiceAction = 'probe' | 'reload' | 'enable' | 'enableNow' | 'start' | 'stop' | 'restart' | 'disable' | 'mainPid' | 'loaded';

/**
 * The exact command line for each action; null when the action has no step on that service
 * manager (launchd needs no reload). `uid` addresses the user's launchd domain.
 */
export function serviceCommand(kind: ServiceKind, action: ServiceAction, opts: { uid: number; file: string }): string[] | null {
  if (kind === 'systemd') {
    const sc = (...args: string[]) => ['systemctl', '--user', ...args];
    switch (action) {
      case 'probe':
        return sc('show-environment');
      case 'reload':
        return sc('daemon-reload');
      case 'enable':
        return sc('enable', SYSTEMD_UNIT);
      case 'enableNow':
        return sc('enable', '--now', SYSTEMD_UNIT);
      case 'start':
        return sc('start', SYSTEMD_UNIT);
      case 'stop':
        return sc('stop', SYSTEMD_UNIT);
      case 'restart':
        return sc('restart', SYSTEMD_UNIT);
      case 'disable':
        return sc('disable', '--now', SYSTEMD_UNIT);
      case 'mainPid':
        return sc('show', '--property', 'MainPID', '--value', SYSTEMD_UNIT);
      case 'loaded':
        return sc('is-enabled', SYSTEMD_UNIT);
    }
  }
  const domain = `gui/${opts.uid}`;
  const target = `${domain}/${LAUNCHD_LABEL}`;
  switch (action) {
    case 'probe':
      return ['launchctl', 'print', domain];
    case 'reload':
      return null;
    case 'enable':
    case 'enableNow':
      return ['launchctl', 'bootstrap', domain, opts.file];
    case 'start':
      return ['launchctl', 'kickstart', target];
    case 'stop':
      return ['launchctl', 'kill', 'SIGTERM', target];
    case 'restart':
      return ['launchctl', 'kickstart', '-k', target];
    case 'disable':
      return ['launchctl', 'bootout', target];
    case 'mainPid':
    case 'loaded':
      return ['launchctl', 'print', target];
  }
}

export interface ServiceOptions {
  kind: ServiceKind;
  userHome: string;
  uid: number;
  runner: Runner;
}

/** One installed (or installable) service, driven through the runner. */
export class Service {
  readonly kind: ServiceKind;
  readonly file: string;
  private readonly runner: Runner;
  private readonly uid: number;

  constructor(opts: ServiceOptions) {
    this.kind = opts.kind;
    this.file = serviceFilePath(opts.kind, opts.userHome);
    this.runner = opts.runner;
    this.uid = opts.uid;
  }

  private command(action: ServiceAction): string[] | null {
    return serviceCommand(this.kind, action, { uid: this.uid, file: this.file });
  }

  private exec(action: ServiceAction): CommandResult {
    const line = this.command(action);
    if (!line) return { status: 0, stdout: '', stderr: '' };
    return this.runner.run(line[0]!, line.slice(1));
  }

  private must(action: ServiceAction): void {
    const r = this.exec(action);
    if (r.status !== 0) {
      const line = this.command(action)!.join(' ');
      throw new UserError(`"${line}" failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`);
    }
  }

  /** Whether the service manager can be reached; the reason when not (no user bus in containers). */
  available(): { ok: true } | { ok: false; reason: string } {
    const r = this.exec('probe');
    if (r.status === 0) return { ok: true };
    return { ok: false, reason: (r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.status}` };
  }

  /** The home the installed file serves, or null when no file is installed. */
  installedHome(): string | null {
    try {
      return homeInServiceFile(fs.readFileSync(this.file, 'utf8'));
    } catch {
      return null;
    }
  }

  /** Writes the file only when its content differs, so a second install leaves it untouched. */
  writeFile(spec: ServiceSpec): boolean {
    const text = renderServiceFile(this.kind, spec);
    let current: string | null = null;
    try {
      current = fs.readFileSync(this.file, 'utf8');
    } catch {
      // not installed yet
    }
    if (current === text) return false;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, text, { mode: 0o644 });
    fs.renameSync(tmp, this.file);
    return true;
  }

  /** Enables the service and makes sure it runs the current file. */
  enableAndStart(fileChanged: boolean): void {
    if (this.kind === 'systemd') {
      if (fileChanged) {
        this.must('reload');
        this.must('enable');
        this.must('restart');
      } else {
        this.must('enableNow');
      }
      return;
    }
    const loaded = this.exec('loaded').status === 0;
    if (loaded && !fileChanged) return this.must('start');
    if (loaded) this.exec('disable'); // launchd reads a plist only when it is bootstrapped
    this.must('enable');
  }

  start(): void {
    this.must('start');
  }

  stop(): void {
    this.must('stop');
  }

  restart(): void {
    this.must('restart');
  }

  /** The pid the service manager runs, or null when it runs none. */
  mainPid(): number | null {
    const r = this.exec('mainPid');
    if (r.status !== 0) return null;
    const text = this.kind === 'systemd' ? r.stdout.trim() : (/\bpid = (\d+)/.exec(r.stdout)?.[1] ?? '');
    const pid = Number(text);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  }

  /** Stops and disables the service (when reachable) and deletes its file. */
  remove(reachable: boolean): void {
    if (reachable) {
      this.exec('disable'); // already disabled or unloaded is fine
    }
    fs.rmSync(this.file, { force: true });
    if (reachable) this.exec('reload');
  }
}
