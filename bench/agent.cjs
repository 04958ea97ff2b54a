#!/usr/bin/env node
// The benchmarks' agent: an instant stand-in for `claude -p`. It records when its process started
// (performance.timeOrigin) and when its first line ran, moves its ticket to the next column with the
// real ticket.cjs loaded in this process (no second Node start), writes a result line for the
// transcript, records its end, and exits. One line per run is appended to BENCH_AGENT_LOG:
//   <run id> <ticket key> <agent type> <process start ms> <first line ms> <end ms>
'use strict';
const firstLine = Date.now();
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');

const NEXT = { 'coding-agent': 'code-reviewer', 'code-reviewer': 'security-reviewer', 'security-reviewer': 'done' };
const env = process.env;
const key = env.DISPATCH_TICKET_ID;
const to = env.BENCH_AGENT_NEXT || NEXT[env.DISPATCH_AGENT_TYPE] || 'done';

process.argv = [process.argv[0], env.DISPATCH_TICKET_BIN, 'move', key, to];
process.once('beforeExit', () => {
  const ok = !process.exitCode;
  process.stdout.write(JSON.stringify({ type: 'result', subtype: 'success', is_error: !ok, result: ok ? `moved ${key} to ${to}` : `could not move ${key}`, usage: { input_tokens: 1, output_tokens: 1 }, total_cost_usd: 0 }) + '\n');
  if (env.BENCH_AGENT_LOG) {
    fs.appendFileSync(env.BENCH_AGENT_LOG, `${env.DISPATCH_RUN_ID} ${key} ${env.DISPATCH_AGENT_TYPE} ${performance.timeOrigin.toFixed(1)} ${firstLine} ${Date.now()}\n`);
  }
});
require(env.DISPATCH_TICKET_BIN);
