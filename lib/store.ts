// The handle every domain operation takes: the database, plus a notifier that the daemon points
// at the scheduler so a ticket entering an agent column wakes its project at once. The durable
// record of that wake is written in the same transaction as the change (heartbeats.next_check_at);
// `notify` only makes it immediate.
import type { Db } from './db/connection.js';

export interface Store {
  db: Db;
  notify(projectId: number): void;
}

export function createStore(db: Db, notify: (projectId: number) => void = () => {}): Store {
  return { db, notify };
}
