// The idle daemon: 100 registered projects, no tickets, no work. After a warm-up (the first scan
// of every project happens at start), CPU time is sampled over a window and extrapolated to an
// hour. CPU comes from /proc/<pid>/task/*/schedstat (nanoseconds, every thread) and, as a check,
// from utime+stime in /proc/<pid>/stat (10 ms ticks: coarse over a short window).
import { cpuSchedSeconds, cpuTicksSeconds, note, report, rssMB, sleep, startDaemon, tempRoot } from './lib.js';
import { seedHome } from './seed.js';

export async function idle({
  seconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60),
  warmup = Number(process.env.BENCH_IDLE_WARMUP_SECONDS ?? 15),
  projects = Number(process.env.BENCH_PROJECTS ?? 100),
} = {}) {
  console.log(`\nidle daemon (${projects} active projects, no tickets; ${warmup} s warm-up, ${seconds} s measured)`);
  const root = tempRoot('pd-bench-idle-');
  seedHome(root, { projects, status: 'active' });
  const d = await startDaemon(root);
  try {
    await sleep(warmup * 1000);
    const sched0 = cpuSchedSeconds(d.pid);
    const ticks0 = cpuTicksSeconds(d.pid);
    const t0 = Date.now();
    let maxRss = 0;
    while (Date.now() - t0 < seconds * 1000) {
      maxRss = Math.max(maxRss, rssMB(d.pid));
      await sleep(1000);
    }
    const window = (Date.now() - t0) / 1000;
    const perHour = (cpuSchedSeconds(d.pid) - sched0) * (3600 / window);
    const ticksPerHour = (cpuTicksSeconds(d.pid) - ticks0) * (3600 / window);
    const health = await d.api('GET', '/api/queues');
    report('idle', 'CPU per hour (schedstat, extrapolated)', perHour, 's/h', { op: '<', value: 1 });
    report('idle', 'CPU per hour (utime+stime ticks, extrapolated)', ticksPerHour, 's/h');
    report('idle', 'resident memory (max over the window)', maxRss, 'MB', { op: '<', value: 100 });
    note(`the ticks figure has a resolution of ${(0.01 * 3600 / window).toFixed(2)} s/h over this window; scan jobs completed in 24 h: ${health.body.queues.find((q) => q.queue === 'scan')?.completed_24h}`);
  } finally {
    await d.stop();
  }
}
