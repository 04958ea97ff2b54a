#!/usr/bin/env node
// The benchmarks' agent: an instant stand-in for `claude -p`. It records when its process started
// (performance.timeOrigin) and when its first line ran, moves its ticket to the next column with the
// real ticket.cjs loaded in this process (no second Node start), writes a result line for the
// transcript, records its end, and exits. One line per run is appended to BENCH_AGENT_LOG:
//   <run id> <ticket key> <agent type> <process start ms> <first line ms> <end ms> [limited]
// Until BENCH_AGENT_LIMIT_UNTIL (epoch seconds) it answers like the claude CLI on a subscription
// whose usage limit is used up (a rejected rate_limit_event, an is_error result with status 429), exit 1.
'use strict';
const firstLine = Date.now();
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');

const NEXT = { 'coding-agent': 'code-reviewer', 'code-reviewer': 'security-reviewer', 'security-reviewer': 'done' };
const env = process.env;
const key = env.DISPATCH_TICKET_ID;
const to = env.BENCH_AGENT_NEXT || NEXT[env.DISPATCH_AGENT_TYPE] || 'done';

// the daemon's health check asks the agent CLI for its version, as it asks the real claude
if (process.argv.includes('--version')) {
  process.stdout.write('2.1.197 (Claude Code)\n');
  process.exit(0);
}

const limitUntil = Number(env.BENCH_AGENT_LIMIT_UNTIL || 0);
if (Date.now() < limitUntil * 1000) {
  const info = { status: 'rejected', resetsAt: limitUntil, rateLimitType: 'five_hour', isUsingOverage: false };
  process.stdout.write(JSON.stringify({ type: 'rate_limit_event', rate_limit_info: info }) + '\n');
  const text = "You've hit your session limit";
  process.stdout.write(
    JSON.stringify({ type: 'result', subtype: 'success', is_error: true, api_error_status: 429, result: text, total_cost_usd: 0 }) + '\n',
  );
  if (env.BENCH_AGENT_LOG) {
    fs.appendFileSync(
      env.BENCH_AGENT_LOG,
      `${env.DISPATCH_RUN_ID} ${key} ${env.DISPATCH_AGENT_TYPE} ${performance.timeOrigin.toFixed(1)} ${firstLine} ${Date.now()} limited\n`,
    );
  }
  process.exit(1);
}

process.argv = [process.argv[0], env.DISPATCH_TICKET_BIN, 'move', key, to];
process.once('beforeExit', () => {
  const ok = !process.exitCode;
  process.stdout.write(
    JSON.stringify({
      type: 'result',
      subtype: 'success',
      is_error: !ok,
      result: ok ? `moved ${key} to ${to}` : `could not move ${key}`,
      usage: { input_tokens: 1, output_tokens: 1 },
      total_cost_usd: 0,
    }) + '\n',
  );
  if (env.BENCH_AGENT_LOG) {
    fs.appendFileSync(
      env.BENCH_AGENT_LOG,
      `${env.DISPATCH_RUN_ID} ${key} ${env.DISPATCH_AGENT_TYPE} ${performance.timeOrigin.toFixed(1)} ${firstLine} ${Date.now()}\n`,
    );
  }
});
require(env.DISPATCH_TICKET_BIN);
