// `dispatch daemon start|stop|restart|status|logs`: through the OS service when it is installed
// for this home and reachable, else as a plain background process with a pid file (see
// lib/daemonControl.ts). start waits for /api/health from the pid it expects.
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { UserError } from '../../lib/errors.js';
import { api, localPaths } from './client.js';
import { budgetLines, type CostsAnswer } from './costs.js';
import { wholeNumber } from './options.js';
import { printJson, terminalSafe, waitingIndicator } from './output.js';
import type { Health } from '../../lib/daemonControl.js';

// The daemon's modules (service control, winston) load only in the handler that needs them, so
// every other command starts fast (bin/dispatch.ts).
const control = () => import('../../lib/daemonControl.js');

export function daemonCommands(y: Argv): Argv {
  return y
    .command('start', 'start the daemon in the background', {}, async () => {
      const { controlFor, startDaemon } = await control();
      const paths = localPaths();
      const service = controlFor(paths);
      const waiting = waitingIndicator('starting the daemon');
      const { pid, port } = await startDaemon(paths, service, { onWait: waiting.tick }).finally(waiting.done);
      console.log(
        `daemon started (pid ${pid}${service.managed ? `, by the ${service.managed.kind} service` : ''})\nopen http://127.0.0.1:${port}`,
      );
    })
    .command('stop', 'stop the daemon (agents keep running and are adopted on the next start)', {}, async () => {
      const { controlFor, stopDaemon } = await control();
      const pid = await stopDaemon(localPaths(), controlFor(localPaths()));
      console.log(pid ? `daemon stopped (pid ${pid})` : 'the daemon was not running');
    })
    .command('restart', 'stop, then start the daemon', {}, async () => {
      const { controlFor, restartDaemon } = await control();
      const paths = localPaths();
      const waiting = waitingIndicator('restarting the daemon');
      const { pid, port } = await restartDaemon(paths, controlFor(paths), { onWait: waiting.tick }).finally(waiting.done);
      console.log(`daemon restarted (pid ${pid})\nopen http://127.0.0.1:${port}`);
    })
    .command('status', 'is the daemon running?', {}, async (argv) => {
      const { controlFor, fetchHealth, pidFileState } = await control();
      const paths = localPaths();
      const pidFile = pidFileState(paths);
      const service = controlFor(paths);
      const h = pidFile.state === 'running' && pidFile.port ? await fetchHealth(pidFile.port) : null;
      const running = Boolean(h && h.pid === pidFile.pid);
      const budget = running
        ? await api<CostsAnswer>('GET', '/api/costs?days=1').then(
            (c) => c.budget,
            () => null,
          )
        : null;
      // the checks' results come only with the api_token, when one is set: ask again through the client, which sends it
      const checks = running
        ? (h?.health ??
          (await api<Health>('GET', '/api/health').then(
            (a) => a.health,
            () => undefined,
          )))
        : undefined;
      const status = {
        running,
        pid: pidFile.pid,
        port: pidFile.port,
        version: h?.version ?? null,
        home: paths.home,
        pid_file: pidFile.state,
        service: service.managed ? service.managed.kind : null,
        service_note: service.note || null,
        budget,
        agent_cli_paused: h?.agent_cli_paused ?? [],
        health: checks ?? null,
      };
      if (argv.json) printJson(status);
      else if (running)
        console.log(`running: pid ${status.pid}, http://127.0.0.1:${status.port}, version ${status.version}, home ${paths.home}`);
      else if (pidFile.state === 'stale')
        console.log(`not running (home ${paths.home}); stale pid file: pid ${pidFile.pid} is gone (cleared on the next start)`);
      else
        console.log(
          `not running (home ${paths.home})${pidFile.state === 'running' ? `; pid ${pidFile.pid} is alive but not answering` : ''}`,
        );
      if (!argv.json)
        console.log(
          service.managed ? `managed by the ${service.managed.kind} user service` : `managed as a plain process: ${service.note}`,
        );
      if (!argv.json && budget) for (const line of budgetLines(budget)) console.log(terminalSafe(line));
      if (!argv.json) {
        for (const p of status.agent_cli_paused) {
          const hint =
            p.until === null
              ? '; fix it, then "dispatch resume" (or change the setting)'
              : '; resumes by itself ("dispatch resume" tries at once)';
          console.log(terminalSafe(`${p.message}${hint}`));
        }
      }
      if (!argv.json && status.health) {
        if (status.health.checked_at === null) console.log('health checks: not run yet');
        else if (!status.health.problems.length) console.log('health checks: all passed');
        for (const p of status.health.problems) {
          const line = `health ${p.level === 'error' ? 'check failed' : 'warning'}: ${p.message}${p.fix ? ` (fix: ${p.fix})` : ''}`;
          console.log(terminalSafe(line, { oneLine: true }));
        }
      }
      if (!running) process.exitCode = 3;
    })
    .command(
      'logs',
      "print the daemon's log",
      (c) =>
        c
          .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing new lines (across day rollovers)' })
          .option('lines', {
            alias: 'n',
            type: 'number',
            default: 50,
            requiresArg: true,
            coerce: wholeNumber('lines'),
            describe: 'how many lines to print',
          }),
      async (argv) => {
        const { followLogs, logFiles } = await import('../../lib/logger.js');
        const paths = localPaths();
        const latest = logFiles(paths.logs).at(-1);
        if (!latest && !argv.follow) throw new UserError(`no daemon log yet in ${paths.logs}`);
        const text = latest ? fs.readFileSync(latest, 'utf8') : '';
        const complete = text.slice(0, text.lastIndexOf('\n') + 1);
        for (const line of complete.split('\n').filter(Boolean).slice(-Math.max(1, argv.lines))) console.log(formatLogLine(line));
        if (!argv.follow) return;
        followLogs(paths.logs, (line) => console.log(formatLogLine(line)), {
          from: latest ? { file: latest, offset: Buffer.byteLength(complete) } : null,
        });
        await new Promise<never>(() => {}); // until Ctrl-C
      },
    )
    .demandCommand(1, 'name a daemon command: start, stop, restart, status or logs');
}

function formatLogLine(line: string): string {
  return terminalSafe(formatLogRecord(line), { oneLine: true });
}

function formatLogRecord(line: string): string {
  try {
    const { timestamp, level, message, ...meta } = JSON.parse(line) as Record<string, unknown>;
    const extra = Object.entries(meta)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${String(timestamp)} ${String(level).padEnd(5)} ${String(message)}${extra ? ` ${extra}` : ''}`;
  } catch {
    return line;
  }
}
