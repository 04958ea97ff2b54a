// The daemon's lifecycle. Start order matters: the pid lock MUST be taken before anything touches
// the database; recovery (inside engine.start) MUST finish before any worker takes a job; the
// HTTP server binds to 127.0.0.1, and to the `listen` address too when that is another one (which
// needs a runner token: from another machine only the runner paths answer, web/security.ts).
// stop() is idempotent and runs every cleanup step even if one throws.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigStore, isLoopbackAddress } from '../lib/config.js';
import { hasUsableRunnerToken } from '../lib/runners.js';
import { createEngine, type Engine } from './engine.js';
import { prepareHome } from '../lib/home.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { scheduleBackups } from '../lib/backups.js';
import { watchProjects } from '../lib/discovery.js';
import { acquirePidFile, releasePidFile, updatePidFile } from '../lib/pidfile.js';
import { storageError } from '../lib/db/connection.js';
import { UserError } from '../lib/errors.js';
import { packageVersion, pathsFor, type Paths } from '../lib/paths.js';
import { discoverProjects } from '../lib/projects.js';
import { ensureAllHeartbeats } from '../lib/heartbeats.js';
import { createStore, type Store } from '../lib/store.js';
import { HealthMonitor } from '../lib/health.js';
import { openQueueBackend } from '../lib/queue/index.js';
import { createApp } from '../web/app.js';

export interface DaemonOptions {
  home: string;
  /** overrides config.port (0 = any free port) */
  port?: number;
  console?: boolean;
  /** called once the HTTP server listens, before the engine starts (the CLI's start-up pipe closes there) */
  onListening?: (port: number) => void;
}

export interface Daemon {
  paths: Paths;
  port: number;
  url: string;
  store: Store;
  config: ConfigStore;
  engine: Engine;
  logger: Logger;
  stop(): Promise<void>;
}

/** Addresses that take connections on every interface, loopback included. */
const WILDCARD = new Set(['0.0.0.0', '::']);

/** Starts the daemon; a failure to start is a UserError whose message is one line that says why. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const paths = pathsFor(opts.home);
  let port: number | null = opts.port ?? null;
  let listenAddress = '127.0.0.1';
  try {
    fs.mkdirSync(paths.home, { recursive: true });
    acquirePidFile(paths.pidFile);
  } catch (err) {
    throw startupError(err, paths, port);
  }
  let cleanup: (() => Promise<void>)[] = [async () => releasePidFile(paths.pidFile)];
  let log: Logger | null = null;
  try {
    let config: ConfigStore;
    try {
      config = new ConfigStore(paths.config);
    } catch (err) {
      if (!(err instanceof UserError) || !err.message.startsWith('config: ')) throw err; // DISPATCH_PORT names itself
      const reason = err.message.slice('config: '.length);
      throw new UserError(
        reason.startsWith(paths.config) ? `the config file ${reason}` : `the config file ${paths.config} is invalid: ${reason}`,
      );
    }
    const { db } = prepareHome(paths);
    cleanup.unshift(async () => {
      db.close();
    });
    const cfg = config.get();
    // only runners may reach the daemon from another machine, and only with a token
    if (!isLoopbackAddress(cfg.listen) && !hasUsableRunnerToken(db)) {
      throw new UserError(
        `"listen" is ${cfg.listen}, which other machines reach, but no runner token exists: add one with ` +
          `"dispatch runners add <name>" while listening on 127.0.0.1, or set "listen" back to 127.0.0.1 in ${paths.config}`,
      );
    }
    const logger = createLogger({
      logsDir: paths.logs,
      retentionDays: () => config.get().logs.retention_days,
      console: opts.console ?? true,
    });
    log = logger;
    config.on('invalid', (message: string) => logger.error('config file rejected; keeping the last good config', { error: message }));
    config.on('change', () => logger.info('config reloaded'));
    config.watch();
    cleanup.unshift(async () => config.close());
    const backups = scheduleBackups({ db, dir: paths.backups, config, logger });
    cleanup.unshift(() => backups.stop());

    let engine: Engine | null = null;
    const store = createStore(db, (projectId) => engine?.wake(projectId));
    // start-up repairs: every folder known, every active project scheduled
    discoverProjects(db, cfg.projects_root, [paths.home]);
    ensureAllHeartbeats(db, cfg.heartbeat.base_interval_seconds);

    const discovery = watchProjects({ db, root: cfg.projects_root, excluded: [paths.home], logger });
    cleanup.unshift(async () => discovery.stop());

    port ??= cfg.port;
    const listenPort: number = port;
    let boundPort = listenPort;
    const queue = await openQueueBackend(db, cfg.queue);
    cleanup.unshift(() => queue.close());
    engine = createEngine({ store, config, paths, logger, queue, port: () => boundPort });
    const health = new HealthMonitor({ config, home: paths.home, logger });
    const app = createApp({ store, config, paths, engine, health, version: packageVersion(), startedAt: Date.now() });
    // `listen` other machines reach: also 127.0.0.1 (the CLI and local agents use it) unless it covers it already
    const listen = cfg.listen === 'localhost' ? '127.0.0.1' : cfg.listen;
    const addresses = listen === '127.0.0.1' || WILDCARD.has(listen) ? [listen] : [listen, '127.0.0.1'];
    for (const address of addresses) {
      const server = http.createServer(app);
      server.on('clientError', (_err, socket) => socket.destroy());
      cleanup.unshift(
        () =>
          new Promise<void>((resolve) => {
            if (!server.listening) return resolve();
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      );
      listenAddress = address;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // the first server may take any free port (0); the others share the one it got
        server.listen(address === addresses[0] ? listenPort : boundPort, address, () => resolve());
      });
      if (address === addresses[0]) boundPort = (server.address() as AddressInfo).port;
    }
    updatePidFile(paths.pidFile, boundPort);
    opts.onListening?.(boundPort);
    // in the background: a claude_binary that hangs on --version must not hold up the start
    health.start();
    cleanup.unshift(async () => health.stop());
    await engine.start();
    cleanup.unshift(() => engine!.stop());
    logger.info('daemon started', { pid: process.pid, port: boundPort, home: paths.home });

    let stopping: Promise<void> | null = null;
    const stop = () => {
      stopping ??= (async () => {
        logger.info('daemon stopping');
        await runAll(cleanup, logger);
        cleanup = [];
      })();
      return stopping;
    };
    return { paths, port: boundPort, url: `http://127.0.0.1:${boundPort}`, store, config, engine, logger, stop };
  } catch (err) {
    await runAll(cleanup, log);
    throw startupError(err, paths, port, listenAddress);
  }
}

/** Names why the daemon could not start, in one line the person can act on; an unforeseen error is returned as it is. */
function startupError(err: unknown, paths: Paths, port: number | null, address = '127.0.0.1'): unknown {
  if (err instanceof UserError) return err;
  const { code, syscall } = err as NodeJS.ErrnoException;
  const setPort = `set "port" in ${paths.config}`;
  if (code === 'EADDRINUSE') {
    return new UserError(`port ${port} on ${address} is already in use by another program: ${setPort} (or DISPATCH_PORT) to a free one`);
  }
  if (code === 'EADDRNOTAVAIL') {
    return new UserError(`cannot listen on ${address}: this machine has no such address; set "listen" in ${paths.config} to one it has`);
  }
  if (code === 'EACCES' && syscall === 'listen')
    return new UserError(`not allowed to listen on port ${port}: ${setPort} to one above 1023`);
  if (code === 'ENOSPC' || code === 'SQLITE_FULL') {
    return new UserError(`the disk holding ${paths.home} is full: free some space, then start the daemon again`);
  }
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return new UserError(`cannot write to ${paths.home} (${code}): check that folder's permissions and its disk`);
  }
  const storage = storageError(err);
  if (storage) return new UserError(storage.message.replace(/ \(nothing was saved\)$/, '').replace(/retry$/, 'start the daemon again'));
  return err;
}

/** Runs every clean-up step, each even if one before it failed; failures go to the log once it exists. */
async function runAll(steps: (() => Promise<void>)[], logger: Logger | null): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      if (logger) logger.error('shutdown step failed', { error });
      else console.error('shutdown step failed:', error);
    }
  }
}
