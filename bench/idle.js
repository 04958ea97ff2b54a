// The idle daemon: 100 registered active projects, no tickets, no work. An idle daemon does two
// kinds of work: a background (timers, the discovery re-scan of the projects folder) and the
// heartbeat scans, whose interval doubles after every empty scan (5 min, 10 min, ... capped at
// 24 h with the default config). A window of minutes sees the first but not the second, so both
// are measured and the hour is computed from them:
//   1. start, wait until the start-up work (first scan of every project, first backup) is over;
//   2. background: CPU over a window with no heartbeat due, extrapolated to an hour;
//   3. one empty scan: every heartbeat made due at once, the CPU of the 100 scans divided by 100;
//   4. CPU per hour = background + empty scans per hour × CPU per scan, for the first day after
//      start (the average hour of it: 8 scans per project) and for the first hour (3 per project).
// CPU comes from /proc/<pid>/task/*/schedstat (nanoseconds, every thread).
import { openDb } from '../dist/lib/db/connection.js';
import { defaultConfig } from '../dist/lib/config.js';
import { cpuSchedSeconds, note, report, rssMB, settle, sleep, startDaemon, tempRoot } from './lib.js';
import { seedHome } from './seed.js';

/** How many empty scans a project makes in its first `seconds` after start, with the backoff of `h`. */
export function emptyScans(seconds, h) {
  let t = 0;
  let n = 1; // the scan at start
  for (let streak = 1; ; streak++) {
    t += Math.min(h.max_interval_seconds, Math.round(h.base_interval_seconds * h.backoff_multiplier ** streak));
    if (t >= seconds) return n;
    n++;
  }
}

export async function idle({
  seconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60),
  projects = Number(process.env.BENCH_PROJECTS ?? 100),
} = {}) {
  console.log(
    `\nidle daemon (${projects} active projects, no tickets; background over ${seconds} s, then one empty scan of every project)`,
  );
  const root = tempRoot('pd-bench-idle-');
  seedHome(root, { projects, status: 'active' });
  const d = await startDaemon(root);
  try {
    const settled = await settle(d);
    const startCpu = cpuSchedSeconds(d.pid);
    note(`start-up (first scan of every project, first backup) over after ${settled.toFixed(1)} s, ${startCpu.toFixed(2)} s of CPU`);

    const cpu0 = cpuSchedSeconds(d.pid);
    const t0 = Date.now();
    let maxRss = 0;
    while (Date.now() - t0 < seconds * 1000) {
      maxRss = Math.max(maxRss, rssMB(d.pid));
      await sleep(1000);
    }
    const backgroundPerHour = (cpuSchedSeconds(d.pid) - cpu0) * (3600 / ((Date.now() - t0) / 1000));

    // every heartbeat due now; one wake pokes the scheduler, which then finds them all
    const db = openDb(d.dbPath);
    db.prepare(`UPDATE heartbeats SET next_check_at = ?`).run(Date.now());
    const completedBefore = db.prepare(`SELECT COUNT(*) AS n FROM job_events WHERE queue = 'scan' AND outcome = 'completed'`).get().n;
    const cpu1 = cpuSchedSeconds(d.pid);
    const wake = await d.api('POST', '/api/projects/p1/wake');
    if (wake.status !== 202) throw new Error(`wake answered ${wake.status}`);
    await settle(d);
    const scans =
      db.prepare(`SELECT COUNT(*) AS n FROM job_events WHERE queue = 'scan' AND outcome = 'completed'`).get().n - completedBefore;
    db.close();
    if (scans < projects) throw new Error(`expected ${projects} scans, saw ${scans}`);
    const perScan = (cpuSchedSeconds(d.pid) - cpu1) / scans;

    const h = defaultConfig().heartbeat;
    const dayScans = emptyScans(86_400, h);
    const hourScans = emptyScans(3_600, h);
    const perHourDay = backgroundPerHour + (projects * dayScans * perScan) / 24;
    const perHourFirst = backgroundPerHour + projects * hourScans * perScan;
    report('idle', 'background CPU per hour (timers, discovery re-scan)', backgroundPerHour, 's/h');
    report('idle', 'CPU of one empty scan', perScan * 1000, 'ms');
    report('idle', `CPU per hour, first day (${dayScans} scans per project)`, perHourDay, 's/h', { op: '<', value: 1 });
    report('idle', `CPU in the first hour (${hourScans} scans per project)`, perHourFirst, 's/h');
    report('idle', 'resident memory (max over the window)', maxRss, 'MB', { op: '<', value: 100 });
  } finally {
    await d.stop();
  }
}
