// `dispatch runs list|show|tail|kill` and `dispatch queue stats`.
import type { Argv } from 'yargs';
import type { RunListItem, Run } from '../../lib/runs.js';
import type { QueueCounts } from '../../lib/queue/index.js';
import { describeTranscriptLine as describeLine } from '../../lib/transcript.js';
import { api } from './client.js';
import { wholeNumber } from './options.js';
import { jsonSafe, printJson, printTable, say, when } from './output.js';

const enc = encodeURIComponent;
const isJson = (line: string) => {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
};
const duration = (r: Run) => (r.started_at ? `${Math.round(((r.ended_at ?? Date.now()) - r.started_at) / 100) / 10} s` : '');

export function runCommands(y: Argv): Argv {
  return y
    .command(
      'list',
      'recent agent runs, newest first',
      (c) =>
        c
          .option('ticket', { alias: 't', type: 'string', describe: 'only the runs of this ticket (pd-42)' })
          .option('status', { type: 'string', describe: 'queued, running, success, failed, timeout, crashed or killed' })
          .option('cause', { type: 'string', describe: 'why runs failed: usage_limit, rate_limited, auth, config or agent' })
          .option('limit', { type: 'number', default: 30, requiresArg: true, coerce: wholeNumber('limit') }),
      async (argv) => {
        const q = new URLSearchParams({ limit: String(argv.limit) });
        if (argv.ticket) q.set('ticket', argv.ticket);
        if (argv.status) q.set('status', argv.status);
        if (argv.cause) q.set('cause', argv.cause);
        const data = await api<{ runs: RunListItem[] }>('GET', `/api/runs?${q}`);
        if (argv.json) return printJson(data);
        printTable(
          data.runs.map((r) => ({
            run: r.id,
            ticket: r.ticket_key,
            agent: r.agent_type_id,
            status: r.status,
            cause: r.cause ?? '',
            started: when(r.started_at ?? r.created_at),
            took: duration(r),
            cost: r.cost_usd != null ? `$${r.cost_usd.toFixed(4)}` : '',
          })),
          ['run', 'ticket', 'agent', 'status', 'cause', 'started', 'took', 'cost'],
        );
      },
    )
    .command(
      'show <run>',
      'one run: status, exit, tokens, cost, result',
      (c) => c.positional('run', { type: 'string', demandOption: true }),
      async (argv) => {
        const { run } = await api<{ run: Run }>('GET', `/api/runs/${enc(argv.run)}`);
        if (argv.json) return printJson(run);
        say(`${run.id}  ${run.agent_type_id} (${run.model}) in ${run.column_id}, attempt ${run.attempt}`);
        say(
          `status: ${run.status}${run.cause ? ` (${run.cause})` : ''}${run.exit_code != null ? `   exit code: ${run.exit_code}` : ''}${run.pid ? `   pid: ${run.pid}` : ''}`,
        );
        say(`started: ${when(run.started_at)}   ended: ${when(run.ended_at)}   took: ${duration(run)}`);
        if (run.tokens_in != null) say(`tokens: ${run.tokens_in} in, ${run.tokens_out} out   cost: $${(run.cost_usd ?? 0).toFixed(4)}`);
        if (run.cwd) say(`working directory: ${run.cwd}`);
        if (run.transcript_path) say(`transcript: ${run.transcript_path}`);
        if (run.error) say(`error: ${run.error}`);
        if (run.result_text) say(`\n${run.result_text}`);
      },
    )
    .command(
      'tail <run>',
      "print a run's transcript, following it while the run is live",
      (c) => c.positional('run', { type: 'string', demandOption: true }).option('follow', { alias: 'f', type: 'boolean', default: true }),
      async (argv) => {
        let offset = 0;
        for (;;) {
          const chunk = await api<{ cli?: string; text: string; next_offset: number; done: boolean }>(
            'GET',
            `/api/runs/${enc(argv.run)}/transcript?offset=${offset}`,
          );
          for (const line of chunk.text.split('\n')) {
            if (!line) continue;
            // --json passes the transcript's lines through; one that is not JSON (an agent's noise) is printed as a JSON string
            if (argv.json) process.stdout.write(`${jsonSafe(isJson(line) ? line : JSON.stringify(line))}\n`);
            else for (const shown of describeLine(line, chunk.cli)) say(shown);
          }
          const more = chunk.next_offset > offset;
          offset = chunk.next_offset;
          if (!more && (chunk.done || !argv.follow)) return;
          if (!more) await new Promise((r) => setTimeout(r, 500));
        }
      },
    )
    .command(
      'kill <run>',
      'stop a live run and its process tree (the ticket waits in human, so it is not started again)',
      (c) => c.positional('run', { type: 'string', demandOption: true }),
      async (argv) => {
        const res = await api<{ ok: boolean; run: Run }>('POST', `/api/runs/${enc(argv.run)}/kill`, {});
        if (argv.json) return printJson(res);
        say(`killed ${res.run.id} (${res.run.agent_type_id}): ${res.run.status}`);
      },
    )
    .demandCommand(1, 'name a runs command: list, show, tail or kill');
}

export function queueCommands(y: Argv): Argv {
  return y
    .command('stats', 'jobs per queue and state', {}, async (argv) => {
      const data = await api<{ queues: QueueCounts[]; engine: { pools: { name: string; active: number; last_error: string | null }[] } }>(
        'GET',
        '/api/queues',
      );
      if (argv.json) return printJson(data);
      printTable(
        data.queues.map((q) => ({ ...q, active: data.engine.pools.find((p) => p.name === q.queue)?.active ?? 0 })),
        ['queue', 'pending', 'pending_retry', 'running', 'failed', 'completed_24h', 'active'],
      );
      for (const p of data.engine.pools) if (p.last_error) say(`${p.name}: last error: ${p.last_error}`);
    })
    .demandCommand(1, 'name a queue command: stats');
}
