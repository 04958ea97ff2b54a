// `npm run bench`: every benchmark in turn, or the ones named on the command line or in
// BENCH_ONLY (comma separated): latency, pipeline, pages, inbox, ticketcli, idle, queue, usagelimit, search, live, worktrees, runners.
// Sizes come from BENCH_* variables (see BENCHMARKS.md). Prints each figure with its target and
// MET or MISSED, then a summary; exits 1 when a target was missed.
import { machine, queueBackend, results } from './lib.js';
import { latency } from './latency.js';
import { pipeline } from './pipeline.js';
import { pages } from './pages.js';
import { inbox } from './inbox.js';
import { ticketcli } from './ticketcli.js';
import { idle } from './idle.js';
import { queue } from './queue.js';
import { usagelimit } from './usagelimit.js';
import { search } from './search.js';
import { live } from './live.js';
import { worktrees } from './worktrees.js';
import { runners } from './runners.js';

const ALL = { latency, pipeline, pages, inbox, ticketcli, idle, queue, usagelimit, search, live, worktrees, runners };

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
for (const name of wanted)
  if (!ALL[name]) {
    console.error(`unknown benchmark "${name}"; choose from ${Object.keys(ALL).join(', ')}`);
    process.exit(2);
  }
const m = machine();
console.log(
  `machine: ${m.nproc} cpus (${m.cpu}), ${m.memGB} GB, node ${m.node}, load average at start ${m.loadavg}; queue backend ${queueBackend}`,
);
const started = Date.now();
for (const [name, fn] of Object.entries(ALL)) {
  if (wanted.length && !wanted.includes(name)) continue;
  const t = Date.now();
  await fn();
  console.log(`  (${name} took ${((Date.now() - t) / 1000).toFixed(0)} s)`);
}
const end = machine();
const missed = results.filter((r) => r.met === false);
console.log(
  `\n${results.filter((r) => r.met !== null).length} targets checked, ${missed.length} missed; ${((Date.now() - started) / 1000).toFixed(0)} s in all; load average at end ${end.loadavg}`,
);
for (const r of missed)
  console.log(`  MISSED: ${r.bench}: ${r.name} = ${r.value.toFixed(1)} ${r.unit} (target ${r.target.op} ${r.target.value})`);
process.exitCode = missed.length ? 1 : 0;
