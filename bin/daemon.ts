// The daemon process: `node dist/bin/daemon.js`. First SIGTERM/SIGINT stops gracefully (agents
// keep running detached and are adopted on the next start); a second signal forces exit.
// Started by `dispatch daemon start`, it reports on the pipe named by DISPATCH_STATUS_FD: one
// `error: <reason>` line when it cannot start (the CLI prints it; a full disk could not take it),
// or the pipe closed once it listens, before any agent starts (so no agent inherits it).
import fs from 'node:fs';
import { startDaemon, type Daemon } from '../daemon/daemon.js';
import { UserError } from '../lib/errors.js';
import { resolveHome } from '../lib/paths.js';

const statusFd = /^\d+$/.test(process.env.DISPATCH_STATUS_FD ?? '') ? Number(process.env.DISPATCH_STATUS_FD) : null;
delete process.env.DISPATCH_STATUS_FD;
let statusOpen = statusFd !== null;

function report(line: string | null): void {
  if (!statusOpen) return;
  statusOpen = false;
  try {
    if (line !== null) fs.writeSync(statusFd!, `${line}\n`);
  } catch {
    // the CLI that started us is gone
  }
  try {
    fs.closeSync(statusFd!);
  } catch {
    // already closed
  }
}

async function main(): Promise<void> {
  // the handlers come first: the HTTP server answers before the engine has started, and a SIGTERM
  // in that window must still stop the daemon cleanly (once it is up), not kill it mid-start
  let daemon: Daemon | null = null;
  let stopAsked = false;
  let signals = 0;
  const stop = () => {
    const deadline = setTimeout(() => {
      console.error('shutdown took too long: exiting');
      process.exit(1);
    }, 15_000);
    deadline.unref();
    void daemon!.stop().then(() => process.exit(0));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      console.error(`second ${signal}: exiting now`);
      process.exit(1);
    }
    if (daemon) stop();
    else stopAsked = true;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  daemon = await startDaemon({ home: resolveHome(), onListening: () => report(null) });
  console.log(`Project Dispatcher listening on ${daemon.url} (home ${daemon.paths.home})`);
  const logger = daemon.logger;
  process.on('uncaughtException', (err) => logger.error('uncaught exception', { error: err.stack ?? String(err) }));
  process.on('unhandledRejection', (err) => logger.error('unhandled rejection', { error: err instanceof Error ? err.stack : String(err) }));
  if (stopAsked) stop();
}

main().catch((err: unknown) => {
  const reason = err instanceof UserError ? err.message : (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
  report(`error: ${reason}`);
  try {
    console.error(err instanceof UserError ? `dispatch daemon: ${err.message}` : err);
  } catch {
    // stderr on a full disk
  }
  process.exit(1);
});
