// The merge worker: merges a done ticket's branch into its project's main branch (lib/merge.ts
// does the git work, all-or-nothing, one merge per repository at a time). Refusals and conflicts
// are handled there: the ticket is already in human with a `merge` comment. An unexpected git
// error is retried; after the last attempt the ticket goes to human with the error, never lost.
import { HUMAN, DONE } from '../lib/columns.js';
// Two jobs at a time: a project's check may take minutes, and another project's merges need not
// wait for it (lib/merge.ts still takes one ticket at a time per repository).
import { commandEnv } from '../lib/checks.js';
import { mergeTicket } from '../lib/merge.js';
import { createPool, type Pool } from '../lib/pool.js';
import { mergePayload } from '../lib/queue/index.js';
import { addSystemComment, findTicket, moveTicket } from '../lib/tickets.js';
import type { WorkerDeps } from './types.js';

export function buildMergeWorker(deps: WorkerDeps): Pool {
  const { store, paths, logger, config } = deps;
  return createPool({
    name: 'merge',
    schema: mergePayload,
    backend: deps.queue,
    logger,
    concurrency: () => 2,
    handler: async (data, job) => {
      try {
        const outcome = await mergeTicket({ store, paths, ticketId: data.ticketId, logger, checkEnv: commandEnv(config.get()) });
        logger.info('merge', {
          ticket: data.ticketId,
          job: job.id,
          status: outcome.status,
          commit: outcome.commit,
          detail: outcome.detail,
        });
      } catch (err) {
        if (job.final) {
          const ticket = findTicket(store.db, data.ticketId);
          if (ticket?.column_id === DONE) {
            store.db
              .transaction(() => {
                moveTicket(store, ticket.id, HUMAN, { actor: 'merge', expectFrom: DONE });
                addSystemComment(
                  store.db,
                  ticket.id,
                  'merge',
                  `The merge failed ${job.attempt} times with an unexpected error: ${(err as Error).message}. The repository was left as it was. Fix the cause, then move the ticket back to done to merge again.`,
                  'merge',
                );
              })
              .immediate();
          }
        }
        throw err;
      }
    },
  });
}
