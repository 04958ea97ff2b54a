// The notify worker: delivers one notification on one channel (lib/notifications.ts). It has its
// own small pool, so a webhook that hangs holds at most these slots, never an agent or a merge; every
// attempt has a timeout, and a failure is retried by the queue with a growing backoff, then kept as
// failed in the queue inspector. A channel switched off since the job was queued is skipped.
import { activeChannels, getNotification, messageOf, send } from '../lib/notifications.js';
import { createPool, PermanentError, type Pool } from '../lib/pool.js';
import { notifyPayload } from '../lib/queue/index.js';
import type { WorkerDeps } from './types.js';

export function buildNotifyWorker(deps: WorkerDeps): Pool {
  const { store, logger } = deps;
  return createPool({
    name: 'notify',
    schema: notifyPayload,
    backend: deps.queue,
    logger,
    concurrency: () => 2,
    handler: async (data, job) => {
      const row = getNotification(store.db, data.notificationId);
      if (!row) throw new PermanentError(`notification ${data.notificationId} no longer exists`);
      const cfg = deps.config.get().notifications;
      if (!activeChannels(cfg).includes(data.channel)) {
        logger.info('notification skipped: channel switched off', { notification: row.id, channel: data.channel, job: job.id });
        return;
      }
      const said = await send(data.channel, cfg, messageOf(store.db, row), `http://127.0.0.1:${deps.port()}`);
      logger.info('notification sent', { notification: row.id, channel: data.channel, job: job.id, result: said });
    },
  });
}
