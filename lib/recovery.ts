// Start-up recovery. This MUST run before any pool takes a job: jobs left running by a dead daemon
// go back in line with their attempt refunded; every live run gets a job that will drive it (a
// running agent whose pid is still ours is adopted, a dead one is finalized as crashed from its
// transcript); claims whose run is not live (ended, or no run at all) are released and their
// projects marked due. Afterwards every ticket is either queued for work again or in human with a
// comment, and nothing can run twice.
import { liveRuns, releaseStaleClaims } from './runs.js';
import { recoverCheckRuns } from './checks.js';
import { jobByKey, jobKeys, QUEUE, resetOrphanedJobs, retryJob, type Queues } from './queues.js';
import type { Db } from './db/connection.js';
import type { Logger } from './logger.js';

export interface RecoveryReport {
  jobsReset: number;
  liveRuns: number;
  claimsReleased: number;
  checksInterrupted: number;
}

export async function recover(db: Db, queues: Queues, logger: Logger): Promise<RecoveryReport> {
  const jobsReset = resetOrphanedJobs(db);
  const claimsReleased = releaseStaleClaims(db);
  // a check the dead daemon was running ends now; its merge job (reset above) runs it again
  const checksInterrupted = await recoverCheckRuns(db, logger);
  const runs = liveRuns(db);
  for (const run of runs) {
    const key = jobKeys.agentRun({ runId: run.id });
    const job = await queues.agentRun.enqueue({ runId: run.id }, { idempotencyKey: key });
    if (job) continue;
    // a job for this run exists already; if it had failed for good, give it another attempt so the run is not forgotten
    const held = jobByKey(db, QUEUE.agentRun, key);
    if (held?.status === 'failed') retryJob(db, held.id);
  }
  const report = { jobsReset, liveRuns: runs.length, claimsReleased, checksInterrupted };
  if (jobsReset || runs.length || claimsReleased || checksInterrupted) logger.info('recovery', { ...report });
  return report;
}
