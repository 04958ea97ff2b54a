// Keeps the projects table in step with the folders under the projects root while the daemon
// runs: a debounced fs.watch on the root, plus a slow periodic re-scan because fs.watch can miss
// events (and cannot watch a root that does not exist yet). Every pass is the same idempotent
// reconciliation, `discoverProjects`, so a missed or doubled event never changes the outcome.
import fs from 'node:fs';
import type { Db } from './db/connection.js';
import type { Logger } from './logger.js';
import { discoverProjects, type DiscoveryResult } from './projects.js';

export interface DiscoveryOptions {
  db: Db;
  root: string;
  /** folders never to list as projects (the data home) */
  excluded: string[];
  logger: Logger;
  /** @defaultValue 500 */
  debounceMs?: number;
  /** @defaultValue 60000 */
  rescanMs?: number;
  /** called after a pass that changed something (e.g. to wake returning projects) */
  onChange?: (result: DiscoveryResult) => void;
}

export interface DiscoveryWatcher {
  /** runs one reconciliation now */
  scan(): DiscoveryResult;
  stop(): void;
}

/** Watches until stop(). The caller runs the first pass (the daemon does, in its start-up repairs). */
export function watchProjects(opts: DiscoveryOptions): DiscoveryWatcher {
  const { db, root, excluded, logger } = opts;
  let watcher: fs.FSWatcher | null = null;
  let debounce: NodeJS.Timeout | null = null;
  let stopped = false;

  const scan = (): DiscoveryResult => {
    const result = discoverProjects(db, root, excluded);
    if (result.added.length || result.missing.length || result.returned.length) {
      logger.info('projects discovered', { root, added: result.added, missing: result.missing, returned: result.returned });
      opts.onChange?.(result);
    }
    return result;
  };
  const safeScan = () => {
    if (!fs.existsSync(root)) closeWatcher(); // a watch on a deleted folder never fires again
    try {
      scan();
    } catch (err) {
      logger.error('project discovery failed', { root, error: err instanceof Error ? err.message : String(err) });
    }
  };
  const closeWatcher = () => {
    watcher?.close();
    watcher = null;
  };
  const ensureWatcher = () => {
    if (watcher || stopped) return;
    try {
      watcher = fs.watch(root, () => {
        if (debounce) clearTimeout(debounce);
        debounce = setTimeout(safeScan, opts.debounceMs ?? 500);
        debounce.unref();
      });
      // the root itself vanished or became unreadable: the re-scan re-creates the watcher later
      watcher.on('error', closeWatcher);
      watcher.unref();
    } catch {
      watcher = null; // no root yet; the periodic re-scan keeps trying
    }
  };

  ensureWatcher();
  const rescan = setInterval(() => {
    safeScan();
    ensureWatcher();
  }, opts.rescanMs ?? 60_000);
  rescan.unref();

  return {
    scan,
    stop() {
      stopped = true;
      clearInterval(rescan);
      if (debounce) clearTimeout(debounce);
      closeWatcher();
    },
  };
}
