// `dispatch install` and `dispatch uninstall`. Install is idempotent: it prepares the home (never
// overwriting a prompt or config the user edited), rewrites the service file only when its content
// changes, and starts the daemon only when it is not already running. Where the service manager
// cannot be reached (containers, CI) the daemon runs as a plain background process instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigStore } from './config.js';
import { cliBinary } from './clis/index.js';
import { packageVersion } from './paths.js';
import {
  controlFor,
  daemonScript,
  serviceFor,
  serviceHint,
  startDaemonProcess,
  stopDaemonProcess,
  waitForHealthy,
  type ControlOptions,
} from './daemonControl.js';
import { UserError } from './errors.js';
import { findExecutable } from './health.js';
import { prepareHome } from './home.js';
import { liveDaemon } from './pidfile.js';
import { packageRoot, type Paths } from './paths.js';
import { discoverProjects, listProjects, type DiscoveryResult } from './projects.js';
import { daemonEnvironment, systemRunner, type ServiceSpec } from './service.js';

export interface InstallUi {
  say(line: string): void;
  warn(line: string): void;
  /** called while waiting for the daemon's health check, for a progress indicator */
  waiting(elapsedMs: number): void;
}

export interface InstallOptions extends ControlOptions {
  paths: Paths;
  ui: InstallUi;
  /** where PATH (agent binary), the daemon's environment (see daemonEnvironment) and DISPLAY come from @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  /** @defaultValue true */
  start?: boolean;
  /** open the URL in a browser when one is available @defaultValue true */
  open?: boolean;
  /** @defaultValue 30000 */
  timeoutMs?: number;
  /** @defaultValue process.versions.node */
  nodeVersion?: string;
  /** @defaultValue process.execPath */
  nodePath?: string;
}

export interface InstallReport {
  migrated: number[];
  promptsWritten: string[];
  configWritten: boolean;
  agentBinary: string | null;
  discovered: DiscoveryResult;
  serviceFile: string | null;
  serviceFileChanged: boolean;
  mode: 'service' | 'process' | 'not-started';
  pid: number | null;
  url: string | null;
  opened: boolean;
}

/** True when `version` satisfies a `>=X.Y[.Z]` range (the only form package.json uses). */
export function satisfiesMinimum(version: string, range: string): boolean {
  const want = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim());
  if (!want) return true;
  const have = version
    .replace(/^v/, '')
    .split('.')
    .map((n) => parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const w = Number(want[i + 1] ?? 0);
    const h = have[i] ?? 0;
    if (h !== w) return h > w;
  }
  return true;
}

/** The command that opens a URL in the user's browser, or null when there is no browser to open. */
export function browserOpener(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string | null {
  if (platform === 'darwin') return 'open';
  if (platform === 'linux' && (env.DISPLAY || env.WAYLAND_DISPLAY)) return findExecutable('xdg-open', env.PATH) ? 'xdg-open' : null;
  return null;
}

function requiredNode(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { engines?: { node?: string } };
  return pkg.engines?.node ?? '>=20';
}

export async function install(opts: InstallOptions): Promise<InstallReport> {
  const { paths, ui } = opts;
  const env = opts.env ?? process.env;
  const platform = opts.platform ?? process.platform;
  const nodeVersion = opts.nodeVersion ?? process.versions.node;
  const range = requiredNode();
  if (!satisfiesMinimum(nodeVersion, range))
    throw new UserError(`Node.js ${nodeVersion} is too old: Project Dispatcher needs Node.js ${range}`);
  ui.say(`Project Dispatcher ${packageVersion()} (Node.js ${nodeVersion})`);

  const prepared = prepareHome(paths);
  let discovered: DiscoveryResult;
  let config;
  try {
    config = new ConfigStore(paths.config, env).get();
    discovered = discoverProjects(prepared.db, config.projects_root, [paths.home]);
    ui.say(
      `data home ${paths.home}: database ${prepared.migrated.length ? `migrated to version ${prepared.migrated.at(-1)}` : 'up to date'}, ` +
        `${prepared.promptsWritten.length} default prompt(s) added, config ${prepared.configWritten ? 'written' : 'kept'}`,
    );
    const folders = listProjects(prepared.db).filter((p) => p.status !== 'missing' && p.status !== 'archived').length;
    ui.say(
      fs.existsSync(config.projects_root)
        ? `projects root ${config.projects_root}: ${folders} project folder(s), ${discovered.added.length} new`
        : `projects root ${config.projects_root} does not exist yet; folders created there will show up as projects`,
    );
  } finally {
    prepared.db.close();
  }

  const claudeBinary = cliBinary(config, 'claude');
  const agentBinary = findExecutable(claudeBinary, env.PATH);
  if (!agentBinary) {
    ui.warn(
      `the agent CLI "${claudeBinary}" is not on PATH: the daemon works, but agents cannot run until it is installed ` +
        `(or "claude_binary" in ${paths.config} points at it)`,
    );
  }

  const report: InstallReport = {
    migrated: prepared.migrated,
    promptsWritten: prepared.promptsWritten,
    configWritten: prepared.configWritten,
    agentBinary,
    discovered,
    serviceFile: null,
    serviceFileChanged: false,
    mode: 'not-started',
    pid: null,
    url: null,
    opened: false,
  };

  const service = serviceFor(opts);
  if (service) {
    const spec: ServiceSpec = {
      nodePath: opts.nodePath ?? process.execPath,
      daemonScript,
      home: paths.home,
      env: daemonEnvironment(env, paths.home),
    };
    report.serviceFile = service.file;
    const previousHome = service.installedHome();
    if (previousHome !== null && path.resolve(previousHome) !== path.resolve(paths.home))
      ui.warn(`the service served ${previousHome}; it now serves ${paths.home} (one service per user)`);
    report.serviceFileChanged = service.writeFile(spec);
    ui.say(
      `${service.kind === 'systemd' ? 'systemd user unit' : 'LaunchAgent'} ${service.file} ${report.serviceFileChanged ? 'written' : 'up to date'}`,
    );
    if (packageRoot.includes(`${path.sep}_npx${path.sep}`)) {
      ui.warn(
        'this copy runs from npx\'s cache, which npm may clean: install it for good ("npm link" in a checkout, or "npm install -g" of a tarball made by "npm pack"), then run "dispatch install" again',
      );
    }
  }

  if (opts.start === false) {
    ui.say('not starting the daemon (--no-start); start it with "dispatch daemon start"');
    return report;
  }

  const waitOpts = { timeoutMs: opts.timeoutMs ?? 30_000, onWait: ui.waiting };
  const control = controlFor(paths, opts);
  let running: { pid: number; port: number };
  if (control.managed) {
    const service = control.managed;
    const plain = liveDaemon(paths.pidFile);
    if (plain && plain.pid !== service.mainPid()) {
      ui.say(`stopping the daemon started by hand (pid ${plain.pid}) so the service can run it`);
      await stopDaemonProcess(paths);
    }
    service.enableAndStart(report.serviceFileChanged);
    running = await waitForHealthy(paths, { ...waitOpts, expectedPid: () => service.mainPid(), hint: serviceHint(service) });
    report.mode = 'service';
    ui.say(`the service is running the daemon (pid ${running.pid}); it restarts on a crash and at login`);
  } else {
    if (service)
      ui.say(
        `${control.note}: running the daemon as a plain background process instead (no restart on crash or at login); manage it with "dispatch daemon start|stop|status"`,
      );
    const live = liveDaemon(paths.pidFile);
    if (live) {
      running = await waitForHealthy(paths, waitOpts);
      ui.say(`the daemon is already running (pid ${running.pid})`);
    } else {
      running = await startDaemonProcess(paths, { ...waitOpts, env });
      ui.say(`daemon started (pid ${running.pid})`);
    }
    report.mode = 'process';
  }
  report.pid = running.pid;
  report.url = `http://127.0.0.1:${running.port}`;
  ui.say(`Project Dispatcher is ready at ${report.url}`);

  const opener = opts.open === false ? null : browserOpener(platform, env);
  if (opener) {
    (opts.runner ?? systemRunner).launch(opener, [report.url]);
    report.opened = true;
    ui.say('opened it in your browser');
  }
  return report;
}

export interface UninstallOptions extends ControlOptions {
  paths: Paths;
  ui: Pick<InstallUi, 'say' | 'warn'>;
  deleteData: boolean;
}

/** Refuses to delete anything that does not look like a data home of ours. */
export function assertDeletableHome(paths: Paths, userHome: string, projectsRoot: string | null): void {
  const home = path.resolve(paths.home);
  const guarded = [path.parse(home).root, path.resolve(userHome), ...(projectsRoot ? [path.resolve(projectsRoot)] : [])];
  if (guarded.some((g) => g === home || g.startsWith(home + path.sep)))
    throw new UserError(`refusing to delete ${home}: it holds your home folder or projects, not only Project Dispatcher's data`);
  if (!fs.existsSync(paths.db) && !fs.existsSync(paths.config))
    throw new UserError(`refusing to delete ${home}: it has no tasks.db or config.json, so it is not a Project Dispatcher data home`);
}

export async function uninstall(
  opts: UninstallOptions,
): Promise<{ serviceRemoved: boolean; stoppedPid: number | null; dataDeleted: boolean }> {
  const { paths, ui } = opts;
  let projectsRoot: string | null = null;
  try {
    projectsRoot = new ConfigStore(paths.config).get().projects_root;
  } catch {
    projectsRoot = null;
  }
  const userHome = opts.userHome ?? os.homedir();
  if (opts.deleteData && fs.existsSync(paths.home)) assertDeletableHome(paths, userHome, projectsRoot);

  let serviceRemoved = false;
  const before = liveDaemon(paths.pidFile);
  const service = serviceFor(opts);
  const servedHome = service?.installedHome() ?? null;
  if (service && servedHome !== null && path.resolve(servedHome) !== path.resolve(paths.home)) {
    ui.say(`the installed service ${service.file} serves another home (${servedHome}); left in place`);
  } else if (service && fs.existsSync(service.file)) {
    const reachable = service.available();
    service.remove(reachable.ok);
    if (!reachable.ok) ui.say(`${service.kind} is not reachable (${reachable.reason}); removed the service file only`);
    ui.say(`removed ${service.file}`);
    serviceRemoved = true;
  }
  await stopDaemonProcess(paths); // whatever still runs: a plain daemon, or one the service manager could not stop
  const stoppedPid = before?.pid ?? null;
  ui.say(stoppedPid ? `daemon stopped (pid ${stoppedPid})` : 'the daemon was not running');

  let dataDeleted = false;
  if (opts.deleteData && fs.existsSync(paths.home)) {
    fs.rmSync(paths.home, { recursive: true, force: true });
    dataDeleted = true;
    ui.say(`deleted ${paths.home}`);
  } else if (fs.existsSync(paths.home)) {
    ui.say(`kept your data in ${paths.home}`);
  }
  ui.say('to remove the dispatch command itself: npm uninstall -g projectdispatcher');
  return { serviceRemoved, stoppedPid, dataDeleted };
}
