// Start-up recovery. This MUST run before any pool takes a job: jobs left running by a dead daemon
// go back in line with their attempt refunded; every live run gets a job that will drive it (a
// running agent whose pid is still ours is adopted, a dead one is finalized as crashed from its
// transcript); claims whose run is not live (ended, or no run at all) are released and their
// projects marked due. Afterwards every ticket is either queued for work again or in human with a
// comment, and nothing can run twice.
import { liveRuns, releaseStaleClaims } from './runs.js';
import { recoverCheckRuns } from './checks.js';
import { jobKeys, type QueueBackend } from './queue/index.js';
import type { Db } from './db/connection.js';
import type { Logger } from './logger.js';

export interface RecoveryReport {
  jobsReset: number;
  liveRuns: number;
  claimsReleased: number;
  checksInterrupted: number;
}

export async function recover(db: Db, queue: QueueBackend, logger: Logger): Promise<RecoveryReport> {
  const jobsReset = await queue.resetOrphaned();
  const claimsReleased = releaseStaleClaims(db);
  // a check the dead daemon was running ends now; its merge job (reset above) runs it again
  const checksInterrupted = await recoverCheckRuns(db, logger);
  const runs = liveRuns(db);
  for (const run of runs) {
    const key = jobKeys.agentRun({ runId: run.id });
    const id = await queue.enqueue('agent-run', { runId: run.id }, { key });
    // a job for this run existed already; if it had failed for good, give it another attempt so the run is not forgotten
    if ((await queue.get(id))?.status === 'failed') await queue.retry(id);
  }
  const report = { jobsReset, liveRuns: runs.length, claimsReleased, checksInterrupted };
  if (jobsReset || runs.length || claimsReleased || checksInterrupted) logger.info('recovery', { ...report });
  return report;
}
