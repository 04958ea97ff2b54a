// The daemon's lifecycle. Start order matters: the pid lock MUST be taken before anything touches
// the database; recovery (inside engine.start) MUST finish before any worker takes a job; the
// HTTP server binds to 127.0.0.1 only. stop() is idempotent and runs every cleanup step even if
// one throws.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigStore } from './config.js';
import { createEngine, type Engine } from './engine.js';
import { prepareHome } from './home.js';
import { createLogger, type Logger } from './logger.js';
import { scheduleBackups } from './backups.js';
import { watchProjects } from './discovery.js';
import { acquirePidFile, releasePidFile, updatePidFile } from './pidfile.js';
import { packageVersion, pathsFor, type Paths } from './paths.js';
import { discoverProjects } from './projects.js';
import { ensureAllHeartbeats } from './heartbeats.js';
import { createStore, type Store } from './store.js';
import { createApp } from '../web/app.js';

export interface DaemonOptions {
  home: string;
  /** overrides config.port (0 = any free port) */
  port?: number;
  console?: boolean;
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

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const paths = pathsFor(opts.home);
  fs.mkdirSync(paths.home, { recursive: true });
  acquirePidFile(paths.pidFile);
  let cleanup: (() => Promise<void>)[] = [async () => releasePidFile(paths.pidFile)];
  try {
    const config = new ConfigStore(paths.config);
    const { db } = prepareHome(paths);
    cleanup.unshift(async () => {
      db.close();
    });
    const cfg = config.get();
    const logger = createLogger({ logsDir: paths.logs, retentionDays: () => config.get().logs.retention_days, console: opts.console ?? true });
    config.on('invalid', (message: string) => logger.error('config file rejected; keeping the last good config', { error: message }));
    config.on('change', () => logger.info('config reloaded'));
    config.watch();
    cleanup.unshift(async () => config.close());
    const backups = scheduleBackups({ db, dir: paths.backups, config, logger });
    cleanup.unshift(() => backups.stop());

    let engine: Engine | null = null;
    const store = createStore(db, (projectId) => engine?.wake(projectId));
    // start-up repairs: every folder known, every active project scheduled (lessons 6)
    discoverProjects(db, cfg.projects_root, [paths.home]);
    ensureAllHeartbeats(db, cfg.heartbeat.base_interval_seconds);

    const discovery = watchProjects({ db, root: cfg.projects_root, excluded: [paths.home], logger });
    cleanup.unshift(async () => discovery.stop());

    let port = opts.port ?? cfg.port;
    engine = createEngine({ store, config, paths, logger, port: () => port });
    const app = createApp({ store, config, paths, engine, version: packageVersion(), startedAt: Date.now() });
    const server = http.createServer(app);
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    port = (server.address() as AddressInfo).port;
    updatePidFile(paths.pidFile, port);
    cleanup.unshift(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    await engine.start();
    cleanup.unshift(() => engine!.stop());
    logger.info('daemon started', { pid: process.pid, port, home: paths.home });

    let stopping: Promise<void> | null = null;
    const stop = () => {
      stopping ??= (async () => {
        logger.info('daemon stopping');
        await runAll(cleanup);
        cleanup = [];
      })();
      return stopping;
    };
    return { paths, port, url: `http://127.0.0.1:${port}`, store, config, engine, logger, stop };
  } catch (err) {
    await runAll(cleanup);
    throw err;
  }
}

async function runAll(steps: (() => Promise<void>)[]): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      console.error('shutdown step failed:', err);
    }
  }
}
