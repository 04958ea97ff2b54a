// The daemon process: `node dist/bin/daemon.js`. First SIGTERM/SIGINT stops gracefully (agents
// keep running detached and are adopted on the next start); a second signal forces exit.
import { startDaemon } from '../lib/daemon.js';
import { UserError } from '../lib/errors.js';
import { resolveHome } from '../lib/paths.js';

async function main(): Promise<void> {
  const daemon = await startDaemon({ home: resolveHome() });
  console.log(`Project Dispatcher listening on ${daemon.url} (home ${daemon.paths.home})`);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      console.error(`second ${signal}: exiting now`);
      process.exit(1);
    }
    const deadline = setTimeout(() => {
      console.error('shutdown took too long: exiting');
      process.exit(1);
    }, 15_000);
    deadline.unref();
    void daemon.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', (err) => daemon.logger.error('uncaught exception', { error: err.stack ?? String(err) }));
  process.on('unhandledRejection', (err) => daemon.logger.error('unhandled rejection', { error: err instanceof Error ? err.stack : String(err) }));
}

main().catch((err: unknown) => {
  console.error(err instanceof UserError ? `dispatch daemon: ${err.message}` : err);
  process.exit(1);
});
